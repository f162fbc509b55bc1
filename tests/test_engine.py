"""The background engine: one queued job per pair however many requests arrive, one run at a
time, a failing pair that never stops the others, a supervisor that restarts a dead thread,
idempotent start and stop, jobs re-queued after a crash, and live setups that open and close."""

import dataclasses
import sys
import threading
import time

import pandas as pd
import pytest

from alpha12 import cycle, models, snapshots, training
from alpha12 import engine as engine_module
from alpha12.clock import ManualClock
from alpha12.engine import Engine
from alpha12.services import Alpha12
from alpha12.sources.replay import SyntheticReplay
from alpha12.store import SnapshotQuery

HISTORY_DAYS = 10


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the engine")
        time.sleep(0.01)


def engine_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("alpha12-") and t.is_alive()]


@pytest.fixture
def make_engine(settings):
    """make_engine(assets, intervals, history_days) -> a stopped Engine over a fresh store
    and a manual clock at the synthetic replay's start, ticking every 10 ms when started."""
    opened = []

    def build(assets=("BTC",), intervals=("1h",), history_days=HISTORY_DAYS) -> Engine:
        source = SyntheticReplay(12, history_days)
        app = Alpha12.open(
            settings=dataclasses.replace(settings, assets=assets, intervals=intervals),
            clock=ManualClock(source.default_start),
            source=source,
        )
        engine = Engine(app.context, tick_seconds=0.01)
        opened.append((app, engine))
        return engine

    yield build
    for app, engine in opened:
        engine.stop()
        app.close()


@pytest.fixture
def no_warm_start(monkeypatch) -> list:
    """Replace the (slow) warm start with a stub that records its calls."""
    calls = []
    monkeypatch.setattr(engine_module, "warm_start", lambda *args: calls.append(args) or {})
    return calls


def jobs(engine) -> pd.DataFrame:
    return engine.store.query("SELECT * FROM jobs ORDER BY id")


def concurrent_requests(engine, n: int = 100) -> list[int]:
    barrier, ids = threading.Barrier(n), []

    def request() -> None:
        barrier.wait()
        ids.append(engine.request_retrain("BTC", "1h"))

    threads = [threading.Thread(target=request) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == n
    return ids


# --- the job queue --------------------------------------------------------------------------


def test_a_hundred_concurrent_requests_give_one_job_and_one_run_at_a_time(make_engine, monkeypatch):
    engine = make_engine()
    ids = concurrent_requests(engine)
    assert len(set(ids)) == 1
    assert jobs(engine)[["id", "status"]].values.tolist() == [[ids[0], "queued"]]

    # Hold the forced retrain inside the trainer, counting how many run at once.
    release, running, most = threading.Event(), [], []
    real_assess = engine.monitor.assess

    def held_assess(*args):
        running.append(1)
        most.append(len(running))
        release.wait(10)
        running.pop()
        return real_assess(*args)

    monkeypatch.setattr(engine.monitor, "assess", held_assess)
    engine.tick()  # collects, analyses and schedules the first monitor run
    engine.tick()  # claims the job
    wait_for(lambda: running)
    assert jobs(engine)["status"].tolist() == ["running"]
    assert set(concurrent_requests(engine)) == {ids[0]}  # joined to the running job
    for _ in range(5):
        engine.tick()  # the trainer is busy: nothing else is claimed
    assert len(jobs(engine)) == 1 and most == [1]

    release.set()
    engine._training.result(timeout=30)
    done = jobs(engine).iloc[0]
    assert (done["status"], done["progress"]) == ("done", 1.0)
    assert done["message"].startswith("skipped_insufficient_data")  # a fresh store, no backfill
    decisions = engine.store.query("SELECT trigger, action FROM recalibrations")
    assert decisions.values.tolist() == [["forced", "skipped_insufficient_data"]]
    assert most == [1]
    assert engine.request_retrain("BTC", "1h") != ids[0]  # a new request after it finished


def test_jobs_left_running_by_a_crash_are_requeued_on_start(
    make_engine, no_warm_start, monkeypatch
):
    crashed = make_engine()
    job = crashed.request_retrain("BTC", "1h")
    assert crashed._claim_job()["id"] == job  # claimed, then the process died
    assert jobs(crashed)["status"].tolist() == ["running"]

    restarted = Engine(crashed.context, tick_seconds=0.01)
    monkeypatch.setattr(restarted, "tick", lambda: None)
    restarted.start()
    requeued = jobs(restarted).iloc[0]
    assert (requeued["status"], requeued["message"]) == ("queued", "re-queued after a restart")
    restarted.stop()
    monkeypatch.undo()
    restarted.tick()
    restarted.tick()
    restarted._training.result(timeout=30)
    assert jobs(restarted)["status"].tolist() == ["done"]


# --- failures ---------------------------------------------------------------------------------


def test_a_failing_pair_is_an_event_and_the_others_keep_running(make_engine, monkeypatch):
    engine = make_engine(assets=("BTC", "ETH"))
    real_step, attempts = cycle._pair_work, []

    def step(result, tail, values):  # the per-pair part of the engine's batched analysis
        if tail.asset == "ETH":
            attempts.append(tail.interval)
            raise RuntimeError("ETH analysis exploded")
        return real_step(result, tail, values)

    monkeypatch.setattr(cycle, "_pair_work", step)

    def snapshots(asset: str) -> int:
        return engine.store.scalar("SELECT count(*) FROM snapshots WHERE asset = ?", [asset])

    def failures() -> pd.DataFrame:
        return engine.store.query(
            "SELECT * FROM events WHERE level = 'error' AND component = 'engine'"
        )

    engine.tick()
    assert snapshots("BTC") == HISTORY_DAYS * 24 and snapshots("ETH") == 0
    event = failures().iloc[0]
    assert (event["asset"], event["interval"]) == ("ETH", "1h")
    assert event["message"] == "RuntimeError: ETH analysis exploded"
    for hour in range(1, 4):
        engine.clock.advance(hours=1)
        engine.tick()
        assert snapshots("BTC") == HISTORY_DAYS * 24 + hour
        assert len(attempts) == hour + 1  # ETH is retried every bar, and fails every time
    assert set(failures()["asset"]) == {"ETH"}
    assert engine.store.last_bar_ts("ETH", "1h") == engine.store.last_bar_ts("BTC", "1h")


def test_a_pair_failing_late_in_the_batched_cycle_costs_only_that_pair(make_engine, monkeypatch):
    engine = make_engine(assets=("BTC", "ETH"))
    real_mature = cycle._mature

    def mature(item, settings):  # the last per-pair step, after the shared snapshot write
        if item.result.asset == "ETH":
            raise RuntimeError("ETH targets exploded")
        return real_mature(item, settings)

    monkeypatch.setattr(cycle, "_mature", mature)
    engine.tick()

    def labelled(asset: str) -> int:
        return engine.store.scalar(
            "SELECT count(*) FROM snapshots WHERE asset = ? AND target IS NOT NULL", [asset]
        )

    assert labelled("BTC") > 0 and labelled("ETH") == 0
    errors = engine.store.query("SELECT asset, message FROM events WHERE level = 'error'")
    assert errors.to_dict("records") == [
        {"asset": "ETH", "message": "RuntimeError: ETH targets exploded"}
    ]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_engine_thread_is_restarted_and_recorded(make_engine, no_warm_start, monkeypatch):
    engine = make_engine()
    ticks, real_tick = [], engine.tick

    def tick() -> None:
        ticks.append(threading.current_thread().name)
        if len(ticks) == 1:
            raise SystemExit("injected")  # kills the thread without a traceback
        real_tick()

    monkeypatch.setattr(engine, "tick", tick)
    engine.start()
    wait_for(lambda: engine.restarts == 1 and len(ticks) >= 3)
    assert engine.running
    deaths = engine.store.query("SELECT * FROM events WHERE message LIKE '%died%'")
    assert deaths["message"].tolist() == [
        "the engine thread died (SystemExit: injected); restarting it"
    ]
    assert deaths["level"].tolist() == ["error"]
    wait_for(lambda: engine.store.get_state("engine")["restarts"] == 1)
    engine.stop()
    assert engine.restarts == 1 and engine.store.get_state("engine")["state"] == "stopped"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_stop_while_the_supervisor_reports_a_death_leaves_nothing_running(
    make_engine, no_warm_start, monkeypatch
):
    """The death alert can take seconds to send; a stop that comes meanwhile must not
    return with a restarted thread still using the store it is about to close."""
    engine = make_engine()
    alerting = threading.Event()
    monkeypatch.setattr(engine, "tick", lambda: sys.exit("injected"))
    monkeypatch.setattr(engine, "_alert", lambda *args: alerting.set() or time.sleep(0.5))
    engine.start()
    assert alerting.wait(10)
    engine.stop()
    assert engine.restarts == 1 and not engine.running  # no thread left to use the store


def test_a_stalled_engine_is_shown_as_stalled_until_it_beats_again(
    make_engine, no_warm_start, monkeypatch
):
    engine = make_engine()  # 10 ms ticks: stalled once its heartbeat is 0.6 s old
    stuck, real_tick = threading.Event(), engine.tick

    def tick() -> None:
        if not stuck.is_set():
            stuck.wait(10)  # one tick that hangs until released
        real_tick()

    monkeypatch.setattr(engine, "tick", tick)
    engine.start()
    wait_for(lambda: engine.status()["state"] == "stalled")
    status = engine.status()
    assert status["running"] and status["heartbeat_age_s"] > 60 * engine.tick_seconds
    assert status["heartbeat"] == engine.last_heartbeat  # when it last beat
    stuck.set()
    wait_for(lambda: engine.status()["state"] == "running")


def test_another_process_reads_a_stopped_heartbeat_as_stalled(make_engine, no_warm_start):
    engine = make_engine()
    engine.start()
    wait_for(lambda: engine.store.get_state("engine") is not None)
    saved = engine.store.get_state("engine")
    engine.stop()
    # As a crashed app leaves it: "running", with a heartbeat a minute old.
    old = pd.Timestamp(saved["heartbeat_wall"]) - pd.Timedelta(minutes=1)
    engine.store.set_state("engine", {**saved, "state": "running", "heartbeat_wall": str(old)})
    reader = Engine(engine.context)  # what the CLI's status sees: not its own engine
    status = reader.status()
    assert (status["state"], status["running"]) == ("stalled", False)
    assert status["heartbeat"] == old and status["heartbeat_age_s"] >= 60


# --- lifecycle ---------------------------------------------------------------------------------


def test_start_and_stop_are_idempotent(make_engine, no_warm_start):
    engine = make_engine()
    engine.start()
    first = engine._thread
    engine.start()
    assert engine._thread is first
    assert sorted(engine_threads()).count("alpha12-engine") == 1
    assert engine_threads().count("alpha12-supervisor") == 1
    wait_for(lambda: len(no_warm_start) == 1)  # a new store warms up once
    engine.stop()
    engine.stop()
    assert not engine.running and engine.state == "stopped"
    assert "alpha12-engine" not in engine_threads()
    assert "alpha12-supervisor" not in engine_threads()
    engine.start()  # and it starts again after a stop
    assert engine.running
    engine.stop()
    assert not engine.running


def test_the_monitor_runs_every_monitor_period_of_clock_time(make_engine):
    engine = make_engine(intervals=("1h", "4h"))
    engine.tick()
    engine.clock.advance(minutes=59)
    engine.tick()
    assert engine.store.scalar("SELECT count(*) FROM recalibrations") == 0
    engine.clock.advance(minutes=1)
    engine.tick()
    engine._training.result(timeout=30)
    runs = engine.store.query("SELECT interval, trigger FROM recalibrations ORDER BY id")
    assert runs.values.tolist() == [["1h", "monitor"], ["4h", "monitor"]]


# --- the live cycle ---------------------------------------------------------------------------


@pytest.mark.slow
def test_live_setups_open_and_close_as_bars_arrive(make_engine):
    """Hour by hour, the engine predicts with the serving model, opens setups and closes them
    with the tracker, the way the targets say they resolve."""
    engine = make_engine(history_days=40)
    settings, start = engine.context.settings, engine.clock.now()
    engine.store.upsert_bars("BTC", "1h", engine.context.source.fetch("BTC", "1h", None, start))
    cycle.backfill_pair(engine.store, settings, "BTC", "1h")
    frame = training.training_frame(engine.store, settings, "BTC", "1h", start)
    timeframe = settings.timeframe("1h")
    engine.registry.register("BTC", "1h", models.fit(frame, timeframe), start, "test")
    engine.context.settings = settings.with_timeframe("1h", entry_threshold=0.51)
    for _ in range(36):
        engine.clock.advance(hours=1)
        engine.tick()
    setups = engine.store.query("SELECT * FROM setups ORDER BY ts")
    closed = setups[setups["status"] == "closed"]
    assert len(setups) >= 3 and len(closed) >= 2
    assert (setups["status"] == "open").sum() <= 1  # one open setup per pair at a time
    assert set(setups["model_version"]) == {1} and set(setups["origin"]) == {"live"}
    flagged, _ = engine.store.snapshot_page(
        SnapshotQuery(asset="BTC", interval="1h", setup_generated=True), "ts", False, 10_000, 0
    )
    assert flagged["ts"].tolist() == setups["ts"].tolist()  # flagged exactly where one opened
    bars = engine.store.read_bars("BTC", "1h")
    cost = settings.round_trip_cost_bps
    outcomes = {
        direction: snapshots.outcomes(bars, "1h", timeframe, cost, direction).set_index(bars["ts"])
        for direction in (1, -1)
    }
    for trade in closed.itertuples():
        expected = outcomes[trade.direction].loc[trade.ts]
        assert (trade.exit_ts, trade.exit_reason) == (
            expected["target_ts"],
            expected["exit_reason"],
        )
        assert trade.pnl_pct == pytest.approx(expected["pnl_pct"])
    errors = engine.store.query("SELECT * FROM events WHERE level = 'error'")
    assert errors.empty, errors["message"].tolist()
