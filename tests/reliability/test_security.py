"""Security promises, each proven against the real app, store and registry:

- the server listens on loopback only (config, `make run`, and a real server's sockets);
- with ALPHA12_ADMIN_PASSWORD set, every mutating action of every page (found by scanning
  pages/) refuses a missing or wrong password and changes nothing, and works with the right one;
- every SQL path is parameterised: hostile strings through the snapshot filters and the CSV
  importer match literally or fail with a plain validation error, and no table is harmed; the
  only pieces formatted into SQL text are identifiers from fixed lists (checked over alpha12/);
- models are read only from the registry folder and only when their sha256 matches;
- uploads are capped (browser and server) and the admin password is never written anywhere.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from hypothesis import HealthCheck, given, settings, strategies
from streamlit.testing.v1 import AppTest

from alpha12.clock import ManualClock
from alpha12.features import FEATURE_NAMES
from alpha12.registry import RegistryError
from alpha12.snapshots import SNAPSHOT_SOURCE
from alpha12.sources.csv_files import MAX_UPLOAD_BYTES, MAX_UPLOAD_MB
from alpha12.store import SnapshotQuery
from alpha12.ui import WRONG_PASSWORD
from tests.app.helpers import open_page
from tests.reliability.small_store import (
    ASSET,
    SWAPPED_INTERVAL,
    app_variables,
    copy_small_store,
    open_on_manual_clock,
    open_small_store,
)

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-4c9f1e-admin-only"  # unique enough that any occurrence is a leak
HOSTILE = (
    "'; DROP TABLE bars; --",
    "x' OR '1'='1",
    "' OR 1=1 --",
    'quote"double',
    "back\\slash\\",
    "%",
    "_",
    "?",
    "$1",
    "Robert'); DROP TABLE snapshots;--",
    "1; DELETE FROM models",
    "ünïcødé ✓ 价格 🚀",
)


def table_names(app) -> list[str]:
    """Every table of the store, as the schema has them (a new table is covered at once)."""
    return app.store.query("SELECT table_name FROM duckdb_tables() ORDER BY 1")[
        "table_name"
    ].tolist()


# -- localhost binding ---------------------------------------------------------------------


def test_streamlit_config_binds_to_localhost_and_caps_uploads():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    assert config["server"]["maxUploadSize"] == MAX_UPLOAD_MB


def test_make_run_does_not_override_the_address():
    recipe = make_recipe("run")
    assert any("streamlit run app.py" in line for line in recipe), recipe
    assert not any(re.search(r"server[._]address|--server\.", line, re.I) for line in recipe)


def make_recipe(target: str) -> list[str]:
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_real_server_listens_on_loopback_only(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPHA12_", "STREAMLIT_"))}
    env.update(app_variables(tmp_path), ALPHA12_ENGINE="off", ALPHA12_ADMIN_PASSWORD=PASSWORD)
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        addresses = listening_addresses(port, timeout=60)
        assert addresses, "the server never listened"
        assert addresses <= {"127.0.0.1", "::1"}, addresses
        outside = non_loopback_address()
        if outside:  # connecting through the machine's network address is refused
            with pytest.raises(OSError), socket.create_connection((outside, port), timeout=2):
                pass
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0].decode(errors="replace")
    assert PASSWORD not in output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_addresses(port: int, timeout: float) -> set[str]:
    """The local addresses with a socket listening on `port` (from /proc/net/tcp and tcp6)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {
            address
            for table in ("tcp", "tcp6")
            for address, state in proc_net_sockets(table, port)
            if state == "0A"  # LISTEN
        }
        if found:
            return found
        time.sleep(0.2)
    return set()


def proc_net_sockets(table: str, port: int):
    path = Path("/proc/net") / table
    if not path.exists():
        return
    for line in path.read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        hex_address, hex_port = local.split(":")
        if int(hex_port, 16) == port:
            yield decode_address(hex_address), state


def decode_address(hex_address: str) -> str:
    """/proc/net's address: 32-bit words in host (little-endian) byte order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(words) == 4 else socket.AF_INET6
    address = socket.inet_ntop(family, words)
    return address.removeprefix("::ffff:")


def non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


# -- admin password ----------------------------------------------------------------------


@pytest.fixture
def admin_env(monkeypatch, tmp_path):
    """The app on a private copy of the small store, engine off, admin password set."""
    for name in [n for n in os.environ if n.startswith("ALPHA12_")]:
        monkeypatch.delenv(name)
    variables = {**app_variables(tmp_path), "ALPHA12_ENGINE": "off"}
    for name, value in {**variables, "ALPHA12_ADMIN_PASSWORD": PASSWORD}.items():
        monkeypatch.setenv(name, value)
    copy_small_store(tmp_path)
    yield tmp_path
    st.cache_resource.clear()


def test_every_mutating_control_of_the_pages_is_covered():
    """A new button or form that changes something fails this test until it is added to
    ACTIONS, and so to the refusal test below."""
    found = set()
    for path in (REPO / "pages").glob("*.py"):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and call_name(node) in (
                "ui.confirmed_action",
                "st.form_submit_button",
                "st.button",
            ):
                if any(k.arg == "disabled" for k in node.keywords):
                    continue  # a placeholder shown while a job runs
                found.add((path.stem, ast.get_source_segment(source, node.args[0])))
    assert found == set(ACTIONS)


def call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return ""


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def confirm(at: AppTest, key: str, password: str | None) -> None:
    if f"{key}:confirm" not in [b.key for b in at.button]:
        at.button(key=f"{key}:ask").click()
        run(at)
    if password is not None:
        at.text_input(key=f"{key}:password").set_value(password)
    at.button(key=f"{key}:confirm").click()
    run(at)


def save_settings(at: AppTest, password: str | None) -> None:
    next(n for n in at.number_input if n.label == "win_rate").set_value(0.5)
    if password is not None:
        at.text_input(key="settings_password").set_value(password)
    next(b for b in at.button if b.label == "Save").click()
    run(at)


def upload(at: AppTest) -> None:
    at.file_uploader(key="upload_file").set_value(("XYZ_1h.csv", csv_bytes(48), "text/csv"))
    run(at)


def queue_lab(at: AppTest) -> None:
    """A lab run waiting in the queue (the engine is off), so its Cancel button shows."""
    at.session_state["alpha12"].lab.request([(ASSET, "1h")], "seed", oracle_candidates=None)
    run(at)


def finish_lab(at: AppTest) -> None:
    """A finished lab run of a custom policy, worked by the engine's job runner, so its
    thresholds can be applied."""
    app = at.session_state["alpha12"]
    app.lab.request([(ASSET, "1h")], "custom:win_rate=0.5", oracle_candidates=None)
    app.engine._run_job(app.engine._claim_job())
    run(at)


REFUSED_PASSWORDS = (None, "wrong", PASSWORD.upper())  # none, wrong, and wrong case
# Every mutating control of the pages, as (page, its key or label as written in the page) ->
# (what it does, the key driven here or None for the settings form, a step before acting).
# A control in a loop (one retrain button per timeframe) is driven for one of its keys.
ACTIONS = {
    ("overview", 'f"retrain-{interval}"'): ("overview retrain per timeframe", "retrain-5m", None),
    ("timeframe", 'f"retrain-{asset}-{interval}"'): (
        "timeframe retrain of one pair",
        f"retrain-{ASSET}-5m",
        None,
    ),
    ("models", 'f"rollback-{asset}-{interval}"'): (
        "roll back a model",
        f"rollback-{ASSET}-{SWAPPED_INTERVAL}",
        None,
    ),
    ("system", '"upload"'): ("CSV upload", "upload", upload),
    ("system", '"Save"'): ("settings save", None, None),
    ("lab", '"lab-run"'): ("queue a lab run", "lab-run", None),
    ("lab", '"lab-sweep"'): ("queue a sweep", "lab-sweep", None),
    ("lab", 'f"lab-cancel-{run_id}"'): ("cancel a lab run", "lab-cancel-1", queue_lab),
    ("lab", 'f"lab-apply-{run_id}"'): ("apply a lab policy", "lab-apply-1", finish_lab),
    ("system", '"test-alert"'): ("send a test alert", "test-alert", None),
    ("system", '"backup"'): ("back up now", "backup", None),
}


@pytest.mark.parametrize("control", list(ACTIONS), ids=[a[0] for a in ACTIONS.values()])
def test_mutating_action_refuses_without_the_admin_password(admin_env, control):
    page = control[0]
    action, key, prepare = ACTIONS[control]
    at = open_page(page)
    app = at.session_state["alpha12"]
    if prepare:
        prepare(at)

    def act(password):
        if key is None:
            save_settings(at, password)
        else:
            confirm(at, key, password)

    before = snapshot_of(app, admin_env)
    for password in REFUSED_PASSWORDS:
        act(password)
        assert WRONG_PASSWORD in [e.value for e in at.error], (action, password)
        assert snapshot_of(app, admin_env) == before, (action, password)
    act(PASSWORD)
    assert WRONG_PASSWORD not in [e.value for e in at.error]
    assert snapshot_of(app, admin_env) != before, f"{action}: the right password changed nothing"


def snapshot_of(app, folder: Path) -> dict:
    """Everything an action could change: every table's rows (count and a hash of them all)
    and every model file's bytes."""
    tables = {
        t: app.store.rows(f"SELECT count(*), sum(hash(x)::HUGEINT) FROM {t} x")
        for t in table_names(app)
    }
    files = {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((folder / "models").rglob("*"))
        if p.is_file()
    }
    return {"tables": tables, "files": files}


def wait_for_jobs(app, timeout: float = 120) -> None:
    """Until no job is queued or running (the engine's trainer thread works them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.open_jobs().empty:
            return
        app.engine.tick()
        time.sleep(0.2)
    raise AssertionError(f"jobs still open after {timeout} s: {app.open_jobs()}")


# -- the admin password is never written anywhere --------------------------------------------


def test_admin_password_is_never_logged_or_stored(admin_env, caplog, capsys, monkeypatch):
    caplog.set_level(logging.DEBUG)
    log_file = admin_env / "logs" / "alpha12.log"
    monkeypatch.setenv("ALPHA12_LOG_FILE", str(log_file))
    monkeypatch.setenv("ALPHA12_LOG_LEVEL", "DEBUG")
    at = open_page("overview")
    app = at.session_state["alpha12"]
    confirm(at, "retrain-1d", "wrong")
    confirm(at, "retrain-1d", PASSWORD)
    wait_for_jobs(app)  # the engine's ticks take the job (1d: too few rows, so it is quick)
    at.switch_page("pages/system.py")
    run(at)
    save_settings(at, PASSWORD[:-1])
    save_settings(at, PASSWORD)
    upload(at)
    confirm(at, "upload", PASSWORD)
    confirm(at, "test-alert", PASSWORD)
    confirm(at, "backup", PASSWORD)
    at.switch_page("pages/models.py")
    run(at)
    confirm(at, f"rollback-{ASSET}-{SWAPPED_INTERVAL}", PASSWORD)
    # the actions really ran
    assert app.store.scalar("SELECT count(*) FROM jobs WHERE status = 'done'") == 1
    assert app.settings.timeframe("5m").win_rate == 0.5
    assert app.store.scalar("SELECT count(*) FROM bars WHERE asset = 'XYZ'") == 48
    assert app.registry.active_version(ASSET, SWAPPED_INTERVAL) == 1
    assert len(list(admin_env.glob("backup-*/manifest.json"))) == 1
    logged = log_file.read_text()  # the log file, read back like every other file below
    assert (
        "forced retrain" in logged and "imported 48 bars" in logged and "backup written" in logged
    )
    dumps = [app.store.query(f"SELECT * FROM {t}").to_csv() for t in table_names(app)]
    assert not [d for d in dumps if PASSWORD in d]
    st.cache_resource.clear()  # closes the store: its file and WAL are complete on disk
    written = [p for p in admin_env.rglob("*") if p.is_file()]
    assert written
    leaked = [p for p in written if PASSWORD.encode() in p.read_bytes()]
    assert not leaked
    captured = capsys.readouterr()
    assert PASSWORD not in caplog.text + captured.out + captured.err


# -- SQL injection ---------------------------------------------------------------------------


@pytest.fixture
def hostile_app(tmp_path):
    """The small store plus, for every hostile string, the 1d snapshots copied under that
    asset, interval and source (so a filter has something literal to match)."""
    app = open_small_store(tmp_path)
    for column in ("asset", "interval", "source"):
        for value in HOSTILE:
            app.store.rows(
                f"INSERT INTO snapshots SELECT * REPLACE (nextval('snapshot_ids') AS id, "
                f"? AS {column}) FROM snapshots WHERE asset = ? AND interval = '1d' "
                "AND source = ?",
                [value, ASSET, SNAPSHOT_SOURCE],
            )
    yield app
    app.close()


def per_pair_rows(app) -> int:
    return app.store.scalar(
        "SELECT count(*) FROM snapshots WHERE asset = ? AND interval = '1d' AND source = ?",
        [ASSET, SNAPSHOT_SOURCE],
    )


def table_counts(app) -> dict[str, int]:
    return {t: app.store.scalar(f"SELECT count(*) FROM {t}") for t in table_names(app)}


def test_snapshot_filters_match_hostile_strings_literally(hostile_app):
    app = hostile_app
    expected = per_pair_rows(app)
    assert expected > 0
    before = table_counts(app)
    cases = 0
    for value in HOSTILE:
        for column in ("asset", "interval", "source"):
            query = SnapshotQuery(**{column: value})
            page, total = app.snapshot_page(query, limit=1000)
            assert total == expected == len(page), (column, value)
            assert (page[column] == value).all()
            exported = app.snapshot_export(query, "csv")
            assert len(exported.decode().splitlines()) == expected + 1  # and the header
            sample = app.feature_sample(query, FEATURE_NAMES[0])
            assert len(sample) <= expected
            cases += 1
        assert app.recalibration_log(asset=value, interval=value).empty
        assert app.trades(value, value).empty
        assert app.latest_job(value, value) is None
    assert cases == len(HOSTILE) * 3
    assert table_counts(app) == before


def test_hostile_sort_feature_and_format_are_refused_plainly(hostile_app):
    for value in HOSTILE:
        with pytest.raises(ValueError, match="cannot sort"):
            hostile_app.snapshot_page(SnapshotQuery(), order_by=value)
        with pytest.raises(ValueError, match="unknown feature"):
            hostile_app.feature_sample(SnapshotQuery(), value)
        with pytest.raises(ValueError, match="unknown export format"):
            hostile_app.snapshot_export(SnapshotQuery(), value)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=strategies.text(
        strategies.characters(codec="utf-8", exclude_characters="\x00"), max_size=40
    )
)
def test_any_text_filter_matches_only_itself(hostile_app, value):
    """200 arbitrary strings: an asset filter counts exactly the rows stored under it."""
    stored = set(HOSTILE) | {ASSET}
    total = hostile_app.snapshot_page(SnapshotQuery(asset=value), limit=1)[1]
    if value in stored:
        assert total > 0
    else:
        assert total == 0


def test_export_works_in_a_temp_folder_with_a_quote(hostile_app, tmp_path, monkeypatch):
    """The export's file path is a parameter, not text in the SQL: any folder name works."""
    folder = tmp_path / "it's; DROP TABLE bars; --"
    folder.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    query = SnapshotQuery(asset=ASSET, interval="1d", source=SNAPSHOT_SOURCE)
    exported = hostile_app.snapshot_export(query, "csv")
    assert len(exported.decode().splitlines()) == per_pair_rows(hostile_app) + 1


def csv_bytes(rows: int, header: str = "timestamp,open,high,low,close,volume", bad=()) -> bytes:
    """`rows` valid hourly bars in 2024 (cells of the rows in `bad` replaced by a hostile
    string each)."""
    lines = [header]
    for n in range(rows):
        ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=n)
        cells = [ts.isoformat(), "100", "101", "99", "100.5", "10"]
        if n in bad:
            cells[4] = HOSTILE[n % len(HOSTILE)].replace(",", ";")
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()


def write_csv(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def test_csv_importer_stores_hostile_names_literally_or_refuses_them(tmp_path):
    app = open_small_store(tmp_path, clock=ManualClock(pd.Timestamp("2025-01-13", tz="UTC")))
    try:
        before = set(
            app.store.query("SELECT table_name FROM information_schema.tables")["table_name"]
        )
        bars_before = app.store.scalar("SELECT count(*) FROM bars")
        imported = 0
        for n, value in enumerate(HOSTILE):
            folder = tmp_path / f"files{n}"
            folder.mkdir()
            # a hostile file name: imported under an explicit asset, its name kept literally
            path = write_csv(folder, f"{value}_1h.csv", csv_bytes(24))
            [report] = app.import_csv(path, asset=f"FILE{n}", interval="1h")
            assert report.error is None and report.imported == 24
            imported += 24
            origins = app.store.query(
                "SELECT DISTINCT origin FROM rejections WHERE asset = ?", [f"FILE{n}"]
            )["origin"].tolist()
            assert origins in ([], [f"csv:{value}_1h.csv"])
            # a hostile asset: a plain validation error, nothing stored
            [refused] = app.import_csv(path, asset=value, interval="1h")
            assert "asset name" in refused.error
            assert app.store.scalar("SELECT count(*) FROM bars WHERE asset = ?", [value]) == 0
            # a hostile extra column is ignored; a hostile name for a needed one is refused
            extra = "timestamp,open,high,low,close,volume," + value.replace(",", ";")
            [report] = app.import_csv(
                write_csv(folder, "EXTRA_1h.csv", csv_bytes(24, extra)), asset=f"EXTRA{n}"
            )
            assert report.error is None and report.imported == 24
            imported += 24
            missing = "timestamp,open,high,low,close," + value.replace(",", ";")
            [report] = app.import_csv(write_csv(folder, f"MISS{n}_1h.csv", csv_bytes(24, missing)))
            assert report.error and "volume" in report.error
            # hostile cells: exactly those rows rejected, the others stored
            [report] = app.import_csv(
                write_csv(folder, f"CELL{n}_1h.csv", csv_bytes(24, bad=(3, 7, 11)))
            )
            assert report.error is None and (report.imported, report.rejected_total) == (21, 3)
            imported += 21
        assert app.store.scalar("SELECT count(*) FROM bars") == bars_before + imported
        after = set(
            app.store.query("SELECT table_name FROM information_schema.tables")["table_name"]
        )
        assert after == before
    finally:
        app.close()


# Every expression formatted into SQL text in alpha12/, and why it is safe. A new one fails
# this test until it is reviewed and added here.
SQL_INTERPOLATIONS = {
    '", ".join(FEATURE_NAMES)': "the fixed feature list",
    "', '.join(FEATURE_NAMES)": "the fixed feature list",
    "names": "column names from FEATURE_NAMES/TARGET_COLUMNS or frames built in code",
    "features": "column definitions built from FEATURE_NAMES",
    "where": "clauses of fixed column names with ? placeholders (store.connection.equal_to)",
    "' AND '.join(clauses)": "the same kind of fixed clauses, built in the store",
    "', '.join(_COLUMNS)": "the recalibrations table's fixed column list",
    "', '.join('?' * len(_COLUMNS))": "placeholders only",
    "', '.join('?' * len(row))": "placeholders only (the registry's fixed models row)",
    "order": "ORDER BY a column checked against SNAPSHOT_COLUMNS, or ASC/DESC",
    "order_by": "checked against SNAPSHOT_COLUMNS before use",
    "'DESC' if descending else 'ASC'": "one of two constants",
    "feature": "checked against FEATURE_NAMES before use",
    "int(rows)": "an int",
    "limit": "LIMIT of an int",
    "options": "one of two constant COPY option lists",
    "_ARCHIVABLE": "a constant query with ? placeholders (store/snapshots.py)",
    "name": "a constant table name (store.schema._snapshots_table)",
    "key": "a constant UNIQUE clause, or nothing (store.schema._snapshots_table)",
    "_quoted(name)": "a table/database name from DuckDB's own catalogue, quoted (store/backup.py)",
    "BACKUP_ALIAS": "a constant database alias (store/backup.py)",
}
SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|COPY|DROP)\b")


def test_sql_text_interpolates_only_reviewed_identifiers():
    unreviewed = []
    formatted = 0
    for path in sorted((REPO / "alpha12").rglob("*.py")):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.JoinedStr):
                continue
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if not SQL_WORDS.search(text):
                continue
            for value in node.values:
                if isinstance(value, ast.FormattedValue):
                    formatted += 1
                    expression = ast.get_source_segment(source, value.value)
                    if expression not in SQL_INTERPOLATIONS:
                        unreviewed.append(f"{path.name}:{node.lineno}: {expression}")
    assert formatted > 0  # the scan sees the SQL it is meant to check
    assert not unreviewed


# -- models only from the registry folder, only with a matching sha256 --------------------


@pytest.fixture
def manual_app(tmp_path):
    """The small store on a manual clock at its replay time, for ticks that are exact."""
    app = open_on_manual_clock(tmp_path)
    yield app
    app.close()


def tick_for_new_bars(app, bars: int = 3):
    """Advance market time by a few 5m bars and run the engine's cycle once."""
    latest = app.store.scalar("SELECT max(id) FROM snapshots")
    app.clock.advance(pd.Timedelta(minutes=5 * bars))
    app.engine.tick()
    return app.store.query(
        "SELECT model_version, probability FROM snapshots WHERE id > ? AND asset = ? "
        "AND interval = ?",
        [latest, ASSET, SWAPPED_INTERVAL],
    )


def registry_events(app) -> list[str]:
    return app.store.query("SELECT message FROM events WHERE component = 'registry' ORDER BY id")[
        "message"
    ].tolist()


def test_swapped_model_is_refused_and_the_previous_version_serves(manual_app):
    app = manual_app
    pair = app.registry.pair_dir(ASSET, SWAPPED_INTERVAL)
    assert app.registry.active_version(ASSET, SWAPPED_INTERVAL) == 2
    assert set(tick_for_new_bars(app)["model_version"]) == {2}
    other = app.registry.pair_dir(ASSET, "15m") / "model.joblib"  # a valid model, wrong pair
    for copy in (pair / "model.joblib", pair / "versions" / "v2" / "model.joblib"):
        shutil.copy(other, copy)
    fresh = tick_for_new_bars(app)
    assert len(fresh) and set(fresh["model_version"]) == {1}  # the retired v1 serves
    assert fresh["probability"].notna().all()
    refused = [m for m in registry_events(app) if "refused" in m and "sha256" in m]
    assert len(refused) == 2  # both copies of v2, each reported once
    assert app.model_card(ASSET, SWAPPED_INTERVAL)["version"] == 1
    tick_for_new_bars(app)
    assert len([m for m in registry_events(app) if "refused" in m]) == 2  # not repeated


def test_swapped_top_level_copy_is_repaired_from_the_kept_version(manual_app):
    app = manual_app
    pair = app.registry.pair_dir(ASSET, SWAPPED_INTERVAL)
    kept = (pair / "versions" / "v2" / "model.joblib").read_bytes()
    shutil.copy(app.registry.pair_dir(ASSET, "15m") / "model.joblib", pair / "model.joblib")
    assert set(tick_for_new_bars(app)["model_version"]) == {2}
    assert (pair / "model.joblib").read_bytes() == kept
    assert any("restored" in m for m in registry_events(app))


@pytest.mark.parametrize("outside", ["../../evil.joblib", "absolute"])
def test_models_table_path_outside_the_folder_is_never_read(
    manual_app, tmp_path, outside, monkeypatch
):
    """The table's path column is never used to load: the registry reads its own folder, and
    a sha256 pointed at another file makes the version refused, not that file loaded."""
    app = manual_app
    evil = tmp_path / "evil.joblib"
    shutil.copy(app.registry.pair_dir(ASSET, "15m") / "model.joblib", evil)
    path = str(evil) if outside == "absolute" else outside
    app.store.rows(
        "UPDATE models SET path = ?, sha256 = ? WHERE asset = ? AND interval = ? AND version = 2",
        [path, hashlib.sha256(evil.read_bytes()).hexdigest(), ASSET, SWAPPED_INTERVAL],
    )
    app.registry._servable.clear()  # the table was changed behind the registry's back
    read = []
    original = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: read.append(p.resolve()) or original(p))
    served = app.registry.load_active(ASSET, SWAPPED_INTERVAL)
    assert served.version == 1
    root = app.registry.root.resolve()
    assert read and all(p.is_relative_to(root) for p in read)
    assert evil.resolve() not in read


@pytest.mark.parametrize("asset", ["../evil", "../../etc/x", "/abs", ".hidden", "a/b"])
def test_asset_names_cannot_leave_the_models_folder(manual_app, asset):
    with pytest.raises(RegistryError, match="not a name"):
        manual_app.registry.pair_dir(asset, "5m")
    assert not (manual_app.registry.root.parent / "evil_5m").exists()


# -- upload cap ----------------------------------------------------------------------------


def test_over_cap_upload_is_refused_before_the_store_is_touched(manual_app, monkeypatch):
    app = manual_app
    touched = []
    monkeypatch.setattr(app.store, "transaction", lambda: touched.append(1))
    monkeypatch.setattr(app.store, "log_event", lambda *a, **k: touched.append(1))
    before = table_counts(app)
    head = csv_bytes(24)
    data = head + b"#" * (MAX_UPLOAD_BYTES + 1 - len(head))
    [report] = app.import_csv_upload("BIG_1h.csv", data)
    assert report.error and f"{MAX_UPLOAD_MB} MB" in report.error
    assert report.imported == 0 and not touched
    assert table_counts(app) == before
    monkeypatch.undo()
    [report] = app.import_csv_upload("UNDER_1h.csv", head)  # at the cap's side: imported
    assert report.error is None and report.imported == 24


def test_upload_file_name_never_picks_a_path(manual_app):
    for name in ("../../UP_1h.csv", "/etc/UP_1h.csv", "..", "", "a\\..\\UP_1h.csv"):
        [report] = manual_app.import_csv_upload(name, csv_bytes(24), asset="UP", interval="1h")
        assert report.error is None and report.path == name
    assert manual_app.store.scalar("SELECT count(*) FROM bars WHERE asset = 'UP'") == 24


def test_page_shows_a_plain_error_for_an_over_cap_upload(admin_env, monkeypatch):
    monkeypatch.setattr(
        "alpha12.sources.csv_files.MAX_UPLOAD_BYTES", 1000
    )  # a small cap, same code
    at = open_page("system")
    at.file_uploader(key="upload_file").set_value(("XYZ_1h.csv", csv_bytes(48), "text/csv"))
    run(at)
    confirm(at, "upload", PASSWORD)
    errors = [e.value for e in at.error]
    assert any("over the upload limit" in e for e in errors), errors
    app = at.session_state["alpha12"]
    assert app.store.scalar("SELECT count(*) FROM bars WHERE asset = 'XYZ'") == 0
