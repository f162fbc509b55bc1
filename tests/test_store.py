"""The DuckDB store: versioned schema, idempotent bar upserts, ranged reads, and one owner."""

import ctypes
import threading
import time

import pandas as pd
import pytest

from alpha12.features import FEATURE_NAMES
from alpha12.store import SCHEMA_VERSION, Store, StoreError

TABLES = {
    "bars",
    "rejections",
    "snapshots",
    "setups",
    "models",
    "recalibrations",
    "jobs",
    "events",
    "state",
    "settings_audit",
    "schema_version",
    "lab_runs",
    "lab_parts",
    "lab_results",
}


def table_names(store: Store) -> set[str]:
    return set(store.query("SELECT table_name FROM information_schema.tables")["table_name"])


def test_schema_is_created_and_versioned(store):
    assert table_names(store) >= TABLES
    versions = store.query("SELECT version FROM schema_version ORDER BY version")["version"]
    assert versions.tolist() == list(range(1, SCHEMA_VERSION + 1))
    snapshot_columns = set(store.query("DESCRIBE snapshots")["column_name"])
    assert set(FEATURE_NAMES) <= snapshot_columns


def test_reopening_keeps_data_and_does_not_migrate_again(settings, make_bars):
    first = Store(settings.db_path)
    first.upsert_bars("BTC", "5m", make_bars(10))
    first.close()
    again = Store(settings.db_path)
    try:
        assert again.scalar("SELECT count(*) FROM schema_version") == SCHEMA_VERSION
        assert again.scalar("SELECT count(*) FROM bars") == 10
    finally:
        again.close()


def test_a_newer_schema_is_refused(settings):
    store = Store(settings.db_path)
    store.rows("INSERT INTO schema_version VALUES (?)", [SCHEMA_VERSION + 1])
    store.close()
    with pytest.raises(StoreError, match="newer alpha12"):
        Store(settings.db_path)


def test_upsert_is_idempotent(store, make_bars):
    bars = make_bars(50)
    assert store.upsert_bars("BTC", "5m", bars) == 50
    assert store.upsert_bars("BTC", "5m", bars) == 0
    assert store.scalar("SELECT count(*) FROM bars") == 50
    # an overlapping batch adds only the new bars, and other pairs are separate
    longer = make_bars(60)
    assert store.upsert_bars("BTC", "5m", longer) == 10
    assert store.upsert_bars("BTC", "1h", longer) == 60
    assert store.upsert_bars("ETH", "5m", longer) == 60
    assert store.scalar("SELECT count(*) FROM bars") == 180
    assert store.upsert_bars("BTC", "5m", longer.iloc[:0]) == 0


def test_read_bars_round_trips_in_the_bars_convention(store, make_bars):
    bars = make_bars(30)
    store.upsert_bars("BTC", "5m", bars)
    read = store.read_bars("BTC", "5m")
    assert str(read["ts"].dtype).endswith(", UTC]")
    pd.testing.assert_frame_equal(
        read, bars.assign(ts=bars["ts"].astype(read["ts"].dtype)), check_exact=True
    )


def test_read_bars_with_start_end_and_tail(store, make_bars):
    bars = make_bars(30)  # 00:00 .. 02:25
    store.upsert_bars("BTC", "5m", bars)
    start = pd.Timestamp("2025-01-01 00:50", tz="UTC")
    end = pd.Timestamp("2025-01-01 01:10", tz="UTC")
    window = store.read_bars("BTC", "5m", start=start, end=end)
    assert window["ts"].tolist() == bars["ts"].iloc[10:15].tolist()  # both ends inclusive
    assert store.read_bars("BTC", "5m", tail=4)["ts"].tolist() == bars["ts"].iloc[-4:].tolist()
    tail_before = store.read_bars("BTC", "5m", end=end, tail=3)
    assert tail_before["ts"].tolist() == bars["ts"].iloc[12:15].tolist()
    assert store.read_bars("BTC", "1h").empty
    assert list(store.read_bars("BTC", "1h").columns) == list(bars.columns)
    assert store.last_bar_ts("BTC", "5m") == bars["ts"].iloc[-1]
    assert store.last_bar_ts("BTC", "1h") is None


def test_summary_counts_bars_and_rejections(store, make_bars, clock):
    store.upsert_bars("BTC", "5m", make_bars(12))
    store.upsert_bars("ETH", "1h", make_bars(3, "1h"))
    counts = {"missing value": 2, "negative volume": 1}
    store.record_rejections("BTC", "5m", "test", counts, clock.now())
    summary = store.bar_summary().set_index(["asset", "interval"])
    assert summary.loc[("BTC", "5m"), "bars"] == 12
    assert summary.loc[("BTC", "5m"), "rejected"] == 3
    assert summary.loc[("ETH", "1h"), "rejected"] == 0
    assert summary.loc[("ETH", "1h"), "last_bar"] == pd.Timestamp("2025-01-01 02:00", tz="UTC")
    assert store.bar_assets() == ["BTC", "ETH"]


def test_events_and_state(store, clock):
    store.log_event(clock.now(), "info", "test", "hello")
    store.log_event(clock.now(), "error", "test", "broken", "BTC", "5m")
    assert store.events()["message"].tolist() == ["broken", "hello"]
    assert store.events(min_level="error")["asset"].tolist() == ["BTC"]
    store.set_state("k", {"a": 1})
    store.set_state("k", {"a": 2})
    assert store.get_state("k") == {"a": 2}
    assert store.get_state("missing", "default") == "default"


def test_a_failed_transaction_leaves_nothing(store, make_bars):
    with pytest.raises(RuntimeError), store.transaction() as cursor:
        cursor.execute("INSERT INTO state VALUES ('half', '1')")
        raise RuntimeError("boom")
    assert store.get_state("half") is None


def c_heap_in_use_mb() -> float | None:
    """glibc's bytes in use (small blocks and mmapped ones), or None off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        info = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    info.restype = type(
        "Mallinfo2",
        (ctypes.Structure,),
        {"_fields_": [(name, ctypes.c_size_t) for name in names.split()]},
    )
    found = info()
    return (found.uordblks + found.hblkhd) / 2**20


def test_a_reopen_hands_back_the_c_heap_duckdb_keeps_and_keeps_every_row(store):
    if c_heap_in_use_mb() is None:
        pytest.skip("needs glibc's mallinfo2")
    store.rows(
        "CREATE TABLE keys AS SELECT 'A' || (i % 20) AS asset, 'iv' || (i % 5) AS iv, i "
        "FROM range(2000) t(i)"
    )
    before = c_heap_in_use_mb()
    for n in range(1500):  # a semi-join on two text keys, as the views' queries make
        store.rows(
            "SELECT count(*) FROM keys WHERE (asset, iv) IN "
            "(SELECT asset, iv FROM keys WHERE i < ?)",
            [n % 100 + 10],
        )
    kept = c_heap_in_use_mb() - before
    assert kept > 1.5, f"DuckDB kept only {kept:.1f} MB: the premise of reopen() is gone"
    store.reopen()
    assert c_heap_in_use_mb() - before < 0.3 * kept
    assert store.scalar("SELECT count(*) FROM keys") == 2000


def test_a_reopen_waits_for_the_work_in_flight_and_holds_new_work_back(store):
    in_transaction, finish = threading.Event(), threading.Event()

    def writer() -> None:
        with store.transaction() as cursor:
            cursor.execute("INSERT INTO state VALUES ('during', '1')")
            in_transaction.set()
            finish.wait(10)

    threads = [threading.Thread(target=writer), threading.Thread(target=store.reopen)]
    threads[0].start()
    assert in_transaction.wait(10)
    threads[1].start()
    reader = threading.Thread(target=lambda: store.get_state("during"))
    time.sleep(0.2)
    reader.start()
    time.sleep(0.2)
    assert threads[1].is_alive() and reader.is_alive()  # both wait for the transaction
    finish.set()
    for thread in [*threads, reader]:
        thread.join(10)
        assert not thread.is_alive()
    assert store.get_state("during") == 1  # committed before the reopen, read after it


def test_a_reopen_gives_up_on_work_that_outlasts_its_timeout_and_changes_nothing(store):
    in_block, finish = threading.Event(), threading.Event()

    def long_read() -> None:
        with store.cursor() as cursor:
            in_block.set()
            finish.wait(10)
            cursor.execute("SELECT 1").fetchall()  # the same cursor, still open

    reader = threading.Thread(target=long_read)
    reader.start()
    assert in_block.wait(10)
    started = time.monotonic()
    assert store.reopen(timeout=0.3) is False
    assert 0.3 <= time.monotonic() - started < 5
    assert store.scalar("SELECT 42") == 42  # new work is no longer held back
    finish.set()
    reader.join(10)
    assert not reader.is_alive()
    assert store.reopen(timeout=0.3) is True


def test_a_closed_store_says_so_and_a_reopen_inside_a_cursor_block_is_refused(settings):
    store = Store(settings.db_path)
    with store.cursor(), pytest.raises(RuntimeError, match="wait for itself"):
        store.reopen()
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.scalar("SELECT 1")


def test_a_close_waits_for_the_work_in_flight_and_refuses_work_that_outlasts_it(settings):
    store = Store(settings.db_path)
    in_block, finish = threading.Event(), threading.Event()

    def long_read() -> None:
        with store.cursor() as cursor:
            in_block.set()
            finish.wait(10)
            cursor.execute("SELECT 1").fetchall()  # DuckDB refuses to close a busy cursor

    reader = threading.Thread(target=long_read)
    reader.start()
    assert in_block.wait(10)
    with pytest.raises(StoreError, match=r"still in use by another thread after 0\.2 s"):
        store.close(timeout=0.2)
    assert store.scalar("SELECT 42") == 42  # a refused close changes nothing
    threading.Timer(0.3, finish.set).start()
    store.close()  # waits for the reader's block to end
    reader.join(10)
    assert not reader.is_alive()
    with pytest.raises(StoreError, match="is closed"):
        store.scalar("SELECT 1")


def test_second_process_gets_a_plain_message_naming_the_file(store, run_cli):
    held = store.path  # the fixture holds the file open read-write
    completed = run_cli("--db", held, "status", timeout=60)
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert str(held) in lines[0]
    assert "in use" in lines[0]


def test_a_version_1_store_migrates_with_its_snapshots_and_keys(settings):
    """v2 dropped the snapshots' UNIQUE index; the rows stay and the key stays unique."""
    import duckdb

    from alpha12 import snapshots
    from alpha12.store.schema import _schema_v1

    old = duckdb.connect(str(settings.db_path))
    old.execute("CREATE TABLE schema_version (version INTEGER)")
    for statement in _schema_v1():
        old.execute(statement)
    old.execute("INSERT INTO schema_version VALUES (1)")
    old.execute(
        "INSERT INTO snapshots (asset, interval, ts, source, rsi_14) "
        "VALUES ('BTC', '1h', '2025-01-01 00:00+00', ?, 55.5)",
        [snapshots.SNAPSHOT_SOURCE],
    )
    old.close()
    migrated = Store(settings.db_path)
    try:
        assert migrated.scalar("SELECT max(version) FROM schema_version") == SCHEMA_VERSION
        assert migrated.scalar("SELECT rsi_14 FROM snapshots") == 55.5
        row = pd.DataFrame({"ts": [pd.Timestamp("2025-01-01", tz="UTC")]})
        for name in FEATURE_NAMES:
            row[name] = 1.0
        for column in ("target", "pnl_pct"):
            row[column] = float("nan")
        row["target_ts"] = pd.Series(pd.NaT, dtype="datetime64[us, UTC]")
        again = snapshots.for_pair(row, "BTC", "1h")
        assert migrated.insert_snapshots(again) == 0  # the key is taken
        assert migrated.scalar("SELECT count(*) FROM snapshots") == 1
    finally:
        migrated.close()
