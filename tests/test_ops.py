"""Running alpha12 like a service, against real stores, engines, receivers and files:

- logging: every event is a log record at its level with its pair; the CLI's --log-file gets
  the lines, --log-json lines parse, --log-level filters;
- alerts: the engine's forced retrains (decided or failed), a dead engine thread and a source
  down too long reach a real HTTP receiver on 127.0.0.1; a hanging receiver delays no tick;
- backup taken while the engine runs restores to a store with the manifest's counts and
  verified models; the CLI's backup/restore round trip, restore refusing an existing target;
- import-ccxt through the bars gate (the exchange class patched), and a plain message without
  ccxt; `run` without a terminal prints plain text; DuckDB's memory limit is applied.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from alpha12 import cli, context
from alpha12.alerts import AlertSettings
from alpha12.backup import Manifest, restore
from alpha12.clock import ManualClock
from alpha12.config import SettingsError, load_settings
from alpha12.engine import Engine
from alpha12.formatting import MISSING
from alpha12.registry import Registry
from alpha12.services import Alpha12
from alpha12.sources import TemporarySourceError
from alpha12.store import Store
from alpha12.timeframes import INTERVALS
from tests.reliability.small_store import (
    ASSET,
    app_variables,
    copy_small_store,
    small_settings,
)
from tests.test_alerts import Receiver, serve
from tests.test_monitor import add_trades

TICKS = 15


@pytest.fixture
def receiver():
    yield from serve(Receiver())


@pytest.fixture
def hanging():
    yield from serve(Receiver(hang_s=5.0, hang_first=10**6))  # every request hangs


def open_small(folder: Path, urls: tuple[str, ...] = (), source=None) -> Alpha12:
    """A private copy of the small store on a manual clock at its replay time, alerts to
    `urls` with no rate limit."""
    copy_small_store(folder)
    settings = dataclasses.replace(
        small_settings(folder),
        alerts=AlertSettings(urls=urls, rate_limit_minutes=0, source_down_minutes=0),
    )
    probe = Alpha12.open(settings=settings)
    now = probe.clock.now()
    probe.close()
    return Alpha12.open(settings=settings, clock=ManualClock(now), source=source)


def table_counts(store: Store, tables) -> dict[str, int]:
    return {t: store.scalar(f"SELECT count(*) FROM {t}") for t in tables}


def run_main(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- logging -------------------------------------------------------------------------------


def test_every_event_is_a_log_record_at_its_level(store, clock, caplog):
    caplog.set_level(logging.DEBUG, logger="alpha12")
    expected = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
    for level in expected:
        store.log_event(clock.now(), level, "collector", f"a {level} event", "ETH", "4h")
    records = [r for r in caplog.records if r.name == "alpha12.collector"]
    assert [(r.levelno, r.getMessage(), r.asset, r.interval) for r in records] == [
        (number, f"a {level} event", "ETH", "4h") for level, number in expected.items()
    ]
    assert len(store.events(10)) == 3  # and each is still a row of the table


def test_engine_decisions_and_state_changes_are_logged(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="alpha12")
    app = open_small(tmp_path)
    engine = Engine(app.context, tick_seconds=0.01)
    try:
        engine.start()
        engine.stop()
        monkeypatch.setattr(app.monitor, "recalibrate_many", explode)
        engine.request_retrain(ASSET, "1h")
        engine.tick()
        engine._training.result(timeout=60)
    finally:
        engine.stop()
        app.close()
    states = [r.getMessage() for r in caplog.records if r.name == "alpha12.engine"]
    assert "engine stopped -> running" in states and "engine running -> stopped" in states
    [failed] = [r for r in caplog.records if "forced retrain failed" in r.getMessage()]
    assert (failed.levelno, failed.asset, failed.interval) == (logging.ERROR, ASSET, "1h")


def explode(*args, **kwargs):
    raise RuntimeError("training exploded")


def test_cli_logs_to_a_file_as_json_lines_at_the_chosen_level(isolated_env, tmp_path, capsys):
    log_file = tmp_path / "logs" / "alpha12.log"
    db = tmp_path / "s.duckdb"
    code, _, err = run_main(capsys, "--log-file", log_file, "--log-json", "--db", db, "status")
    assert code == 0, err
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    opened = [line for line in lines if line["message"].startswith("opened the store")]
    assert opened and opened[0]["level"] == "INFO" and str(db) in opened[0]["message"]
    log_file.unlink()
    code, _, err = run_main(
        capsys, "--log-level", "warning", "--log-file", log_file, "--db", db, "status"
    )
    assert code == 0 and not log_file.read_text()  # nothing at warning or above happened


# -- alerts --------------------------------------------------------------------------------


def test_forced_retrain_outcomes_reach_a_real_receiver(tmp_path, receiver, monkeypatch):
    app = open_small(tmp_path, (receiver.url(),))
    engine = Engine(app.context, tick_seconds=0.01)
    try:
        engine.request_retrain(ASSET, "1h")
        engine.tick()
        engine._training.result(timeout=120)
        action = app.latest_job(ASSET, "1h")["message"].split(":")[0]
        # a real training ran: its challenger compared, or in shadow for want of fair rows
        assert action in ("recalibrated", "rejected_challenger", "shadowed_challenger")
        monkeypatch.setattr(app.monitor, "recalibrate_many", explode)
        engine.request_retrain(ASSET, "1h")
        engine.tick()
        engine._training.result(timeout=60)
        alerted = action != "shadowed_challenger"  # a challenger put in shadow alerts nobody
        got = receiver.wait_for(1 + alerted)
    finally:
        engine.stop()
        app.close()
    kind = "recalibrated" if action == "recalibrated" else "rejected"
    assert [g["title"] for g in got] == [
        *([f"alpha12: {ASSET} 1h {action}"] if alerted else []),
        f"alpha12: {ASSET} 1h failed",
    ]
    assert "training exploded" in got[-1]["message"]
    events = app_events(tmp_path)
    assert not alerted or any(m.startswith(f"alert {kind} {ASSET} 1h sent") for m in events)


def app_events(folder: Path) -> list[str]:
    store = Store(folder / "storage.duckdb")
    try:
        return store.events(200)["message"].tolist()
    finally:
        store.close()


def test_a_degraded_pair_reaches_a_real_receiver(tmp_path, receiver):
    """The engine's monitor run finds a pair whose serving model lost 40 trades in a row (the
    default trigger's interval lies wholly below the thresholds) and alerts it."""
    app = open_small(tmp_path, (receiver.url(),))
    engine = Engine(app.context, tick_seconds=0.01)
    try:
        served = app.registry.load_timeframe_model(ASSET, "1h")
        add_trades(app, "1h", [-1.0] * 40, served.version, served.scope, asset=ASSET)
        engine._monitor_run()
        degraded = receiver.wait_for_title(f"alpha12: {ASSET} 1h degraded")
    finally:
        engine.stop()
        app.close()
    assert degraded and "win rate" in degraded[0]["message"]
    assert any(m.startswith(f"alert degraded {ASSET} 1h sent") for m in app_events(tmp_path))


def test_a_dead_engine_thread_is_alerted(tmp_path, receiver, monkeypatch):
    app = open_small(tmp_path, (receiver.url(),))
    engine = Engine(app.context, tick_seconds=0.05)
    monkeypatch.setattr(engine, "tick", explode)
    try:
        engine.start()
        got = receiver.wait_for(1)
    finally:
        engine.stop()
        app.close()
    assert got and got[0]["title"] == "alpha12 engine died"
    assert "RuntimeError: training exploded" in got[0]["message"]


def test_a_stalled_engine_is_alerted_once(tmp_path, receiver, monkeypatch):
    app = open_small(tmp_path, (receiver.url(),))
    engine = Engine(app.context, tick_seconds=0.02)  # stalled after 60 ticks: 1.2 s
    monkeypatch.setattr(engine, "tick", lambda: time.sleep(3.0))  # one stuck tick
    try:
        engine._heartbeat()
        engine.start()
        got = receiver.wait_for(1)
        time.sleep(1.0)  # the supervisor keeps looking while the tick is stuck
    finally:
        engine.stop()
        app.close()
    assert [g["title"] for g in receiver.received] == ["alpha12 engine stalled"]
    assert "heartbeat is" in got[0]["message"]


class DownSource:
    """The synthetic replay's name and liveness, but every fetch fails for a while."""

    def __init__(self, source):
        self.name, self.live, self.default_start = "down source", False, source.default_start

    def fetch(self, asset, interval, start, end):
        raise TemporarySourceError("the exchange is down")


def tick_seconds(app: Alpha12) -> list[float]:
    """Seconds of TICKS engine ticks, each an hour of clock later (every pair due)."""
    engine = Engine(app.context)
    durations = []
    for _ in range(TICKS):
        app.clock.advance(pd.Timedelta(hours=1))
        started = time.perf_counter()
        engine.tick()
        durations.append(time.perf_counter() - started)
    engine.stop(timeout=120)  # the monitor runs the ticks started end before the store closes
    return durations


@pytest.mark.slow
def test_source_down_is_alerted_and_a_hanging_receiver_delays_no_tick(
    tmp_path, receiver, hanging, monkeypatch
):
    timed = {}
    for name, target in (("normal", receiver), ("hanging", hanging)):
        if target is hanging:  # closing gives queued alerts 5 s: every send hangs, so it waits
            monkeypatch.setattr(context, "ALERTS_CLOSE_TIMEOUT_S", 0.1)
        folder = tmp_path / name
        folder.mkdir()
        app = open_small(folder, (target.url(),))
        app.context.source = DownSource(app.context.source)
        try:
            timed[name] = tick_seconds(app)
            queued = app.context.alerter.counters.queued
        finally:
            app.context.alerter.close(0.1)
            app.close()
        assert queued >= TICKS, (name, queued)  # every tick raised source_down alerts
    assert any(g["title"] == f"alpha12: no bars for {ASSET} 1h" for g in receiver.received)
    normal, slow = timed["normal"], timed["hanging"]
    # each hanging send holds the alerter's thread 5 s; were a tick to wait, it would show
    assert max(slow) < 2 * max(normal) + 0.5, (normal, slow)
    assert statistics.median(slow) < 2 * statistics.median(normal) + 0.1, (normal, slow)


# -- backup and restore --------------------------------------------------------------------


def test_backup_while_the_engine_runs_restores_equal_counts_and_verified_models(tmp_path):
    copy_small_store(tmp_path)
    app = Alpha12.open(settings=small_settings(tmp_path))  # its replay clock runs on
    engine = Engine(app.context, tick_seconds=0.05)
    engine.start()
    try:
        wait_until(lambda: engine.last_heartbeat is not None)
        manifest = app.backup(tmp_path / "backup")
        beats = engine.last_heartbeat
        wait_until(lambda: engine.last_heartbeat != beats)  # still ticking after the copy
    finally:
        engine.stop()
        app.close()
    restore(tmp_path / "backup", tmp_path / "new" / "s.duckdb", tmp_path / "new" / "models")
    restored = Store(tmp_path / "new" / "s.duckdb")
    try:
        assert table_counts(restored, manifest.tables) == manifest.tables
        registry = Registry(
            tmp_path / "new" / "models", restored, ManualClock(pd.Timestamp.now("UTC"))
        )
        served = [i for i in (*INTERVALS, "all") if registry.active_version(ASSET, i)]
        assert len(served) >= 3, served
        for interval in served:  # loaded only when its file's sha256 matches the table's
            assert registry.load_active(ASSET, interval).interval == interval
    finally:
        restored.close()


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_cli_backup_and_restore_round_trip(isolated_env, tmp_path, capsys, monkeypatch):
    for name, value in app_variables(tmp_path).items():
        monkeypatch.setenv(name, value)
    copy_small_store(tmp_path)
    db = tmp_path / "storage.duckdb"
    code, out, err = run_main(capsys, "--db", db, "backup", "--to", tmp_path / "b")
    assert code == 0, err
    assert "backup: 100%" in out and "backup verified" in out  # progress, then the result
    manifest = Manifest.read(tmp_path / "b")
    new = tmp_path / "restored.duckdb"
    code, out, err = run_main(
        capsys, "--db", new, "restore", tmp_path / "b", "--models", tmp_path / "m2"
    )
    assert code == 0, err
    restored = Store(new)
    try:
        assert table_counts(restored, manifest.tables) == manifest.tables
    finally:
        restored.close()
    assert sorted(p.name for p in (tmp_path / "m2").rglob("*.joblib"))
    before = new.read_bytes()
    code, out, err = run_main(
        capsys, "--db", new, "restore", tmp_path / "b", "--models", tmp_path / "m3"
    )
    assert code == 2 and "already exists" in err and "Traceback" not in err
    assert new.read_bytes() == before and not (tmp_path / "m3").exists()


def test_restore_never_opens_the_store_of_db(isolated_env, tmp_path, capsys, monkeypatch):
    """restore's --db is the new store; the store the settings name is never opened (it may
    be held by the running app)."""
    opened = []
    monkeypatch.setattr(Store, "__init__", lambda self, *a, **k: opened.append(a))
    code, _, err = run_main(capsys, "--db", tmp_path / "n.duckdb", "restore", tmp_path / "none")
    assert code == 2 and "not an alpha12 backup" in err and opened == []


# -- import-ccxt ---------------------------------------------------------------------------


def test_import_ccxt_goes_through_the_gate_with_progress(
    isolated_env, tmp_path, capsys, monkeypatch
):
    ccxt = pytest.importorskip("ccxt")
    from tests.test_exchange import FakeExchange, market_rows

    monkeypatch.setattr(ccxt, "binance", FakeExchange)
    monkeypatch.setattr(FakeExchange, "faults", {})
    monkeypatch.setattr(FakeExchange, "calls", [])
    db = tmp_path / "x.duckdb"
    args = (
        "--db",
        db,
        "import-ccxt",
        "--asset",
        "BTC",
        "--interval",
        "1h",
        "--since",
        "2025-01-02",
    )
    code, out, err = run_main(capsys, *args)
    assert code == 0, err
    listed = [
        row
        for row in market_rows("1h")
        if row[0] >= pd.Timestamp("2025-01-02", tz="UTC").value // 10**6
    ]
    assert f"{len(listed):,} imported" in out and "BTC 1h: 100%" in out
    store = Store(db)
    try:
        bars = store.read_bars("BTC", "1h")
        assert len(bars) == len(listed)  # every bar the exchange had, each once
        assert store.events(5)["component"].tolist()[0] == "ccxt-import"
    finally:
        store.close()
    code, out, err = run_main(capsys, *args)
    assert code == 0 and "0 imported" in out  # idempotent


def test_import_ccxt_without_ccxt_is_a_plain_message(isolated_env, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ccxt", None)  # as if it were not installed
    code, _, err = run_main(
        capsys,
        "--db",
        tmp_path / "x.duckdb",
        "import-ccxt",
        "--asset",
        "BTC",
        "--interval",
        "1h",
        "--since",
        "2025-01-01",
    )
    assert code == 2 and "needs the optional package ccxt (pip install ccxt)" in err
    assert "Traceback" not in err


# -- terminal and memory -------------------------------------------------------------------


def test_run_without_a_terminal_prints_plain_text(isolated_env, tmp_path, capsys, monkeypatch):
    for name, value in app_variables(tmp_path).items():
        monkeypatch.setenv(name, value)
    copy_small_store(tmp_path)
    code, out, err = run_main(capsys, "run", "--for", "1")
    assert code == 0, err
    assert "\x1b[" not in out and "\x1b[" not in err  # no ANSI colour or cursor codes
    assert "REPLAYED market" in out and "engine" in out and "win rate" in out
    assert f"{ASSET}" in out and "5m" in out


def test_status_reads_durations_and_percentages(isolated_env, tmp_path, capsys, monkeypatch):
    for name, value in app_variables(tmp_path).items():
        monkeypatch.setenv(name, value)
    copy_small_store(tmp_path)
    code, out, err = run_main(capsys, "status")
    assert code == 0, err
    assert "\x1b[" not in out
    assert re.search(r"\b(\d+m \d\ds|\d+h \d\dm|\d+d \d+h)\b", out), out  # ages as durations
    assert "nan" not in out.lower() and MISSING in out  # no trades yet: no made-up win rate


def test_the_memory_limit_reaches_duckdb_and_is_validated(tmp_path, settings):
    app = Alpha12.open(settings=dataclasses.replace(settings, memory_limit="256MB"))
    try:
        assert app.store.memory_limit() == "244.1 MiB"  # DuckDB's words for 256 MB
    finally:
        app.close()
    with pytest.raises(SettingsError, match="memory_limit"):
        load_settings(env={"ALPHA12_MEMORY_LIMIT": "lots", "ALPHA12_CONFIG": str(tmp_path / "x")})
