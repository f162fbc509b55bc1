"""Concurrency: two app sessions and the engine thread on one store, while threads fire 100
forced-retrain requests (per pair and per timeframe) and settings edits during monitor runs,
and the engine reopens the store after every monitor run and job.

Proven: no lost update (every settings edit is audited, each key's audit chain is unbroken and
the final settings are each key's last write, in memory, in the store and after a reopen); no
duplicate job (a watcher never sees two open retrain jobs of one pair; every request got the
id of a job of its pair); no deadlock (every thread, job and session finishes in time).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import pytest
import streamlit as st

from alpha12 import engine as engine_module
from alpha12.monitor import PerformanceMonitor
from alpha12.services import Alpha12
from alpha12.store import Store
from tests.app.helpers import open_page
from tests.reliability.small_store import ASSET, app_variables, copy_small_store, small_settings

REPO = Path(__file__).resolve().parents[2]
INTERVALS = ("5m", "15m", "1h", "4h", "1d")
REQUESTS = 100
REQUEST_THREADS = 4
# Two threads edit keys of the same timeframes (the overrides of a timeframe are one record),
# but never the same key, so each key's last write is known.
EDITS = {
    "edits-a": [("5m", "win_rate"), ("15m", "min_trades"), ("1h", "cooldown_hours")],
    "edits-b": [("5m", "cooldown_hours"), ("15m", "win_rate"), ("1h", "min_trades")],
}
EDIT_ROUNDS = 12
JOIN_SECONDS = 60


def edit_value(key: str, round_: int) -> float | int:
    """Valid values that differ from the defaults and from one round to the next (so every
    edit is a change, with an audit row)."""
    return {
        "win_rate": round(0.30 + 0.01 * round_, 2),
        "min_trades": 100 + round_,
        "cooldown_hours": 100.0 + round_,
    }[key]


class MonitorRuns:
    """Records when the engine's monitor runs start and end, and counts the store's reopenings
    (a spy; behaviour unchanged)."""

    def __init__(self):
        self.spans: list[list[float]] = []
        self.started = threading.Event()
        self.reopens = 0

    def wrap(self, run):
        def spied(monitor, *args, **kwargs):
            span = [time.monotonic(), float("inf")]
            self.spans.append(span)
            self.started.set()
            try:
                return run(monitor, *args, **kwargs)
            finally:
                span[1] = time.monotonic()

        return spied

    def count_reopens(self, reopen):
        def spied(store) -> None:
            reopen(store)
            self.reopens += 1

        return spied

    def overlapping(self, moments: list[float]) -> int:
        return sum(any(start <= m <= end for start, end in self.spans) for m in moments)


@pytest.fixture
def engine_env(monkeypatch, tmp_path):
    """The app on a private small store with its engine thread on, a monitor period of
    30 market minutes (3 s at the replay's 600x) and the store reopened after every piece of
    training work (Connection.reopen waits for the queries in flight and holds new ones)."""
    for name in [n for n in os.environ if n.startswith("ALPHA12_")]:
        monkeypatch.delenv(name)
    variables = {
        **app_variables(tmp_path),
        "ALPHA12_ENGINE": "on",
        "ALPHA12_MONITOR_PERIOD_MINUTES": "30",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    copy_small_store(tmp_path)
    runs = MonitorRuns()
    monkeypatch.setattr(
        PerformanceMonitor,
        "monitor_all_timeframes",
        runs.wrap(PerformanceMonitor.monitor_all_timeframes),
    )
    monkeypatch.setattr(engine_module, "STORE_REOPEN_SECONDS", 0)
    monkeypatch.setattr(Store, "reopen", runs.count_reopens(Store.reopen))
    yield tmp_path, runs
    st.cache_resource.clear()  # stops the engine and closes the store


class DuplicateWatcher(threading.Thread):
    """Polls the jobs table: a pair with two open retrain jobs at once is a duplicate."""

    def __init__(self, app: Alpha12):
        super().__init__(name="duplicate-watcher", daemon=True)
        self.app = app
        self.stop = threading.Event()
        self.polls = 0
        self.duplicates: list = []

    def run(self) -> None:
        while not self.stop.is_set():
            found = self.app.store.query(
                "SELECT asset, interval, count(*) AS n FROM jobs WHERE kind = 'retrain' "
                "AND status IN ('queued', 'running') GROUP BY ALL HAVING count(*) > 1"
            )
            self.polls += 1
            if not found.empty:
                self.duplicates.append(found.to_dict("records"))
            time.sleep(0.01)


def fire_requests(app: Alpha12, seed: int, count: int, results: list, moments: list) -> None:
    """`count` forced-retrain requests: per pair, or for a whole timeframe."""
    rng = random.Random(seed)
    for _ in range(count):
        interval = rng.choice(INTERVALS)
        moments.append(time.monotonic())
        if rng.random() < 0.7:
            results.append(((ASSET, interval), app.request_retrain(ASSET, interval, "thread")))
        else:
            [job_id] = app.request_retrain_timeframe(interval, "thread")
            results.append(((ASSET, interval), job_id))
        time.sleep(rng.uniform(0.0, 0.06))


def fire_edits(app: Alpha12, keys, problems: list, moments: list) -> None:
    for round_ in range(1, EDIT_ROUNDS + 1):
        for interval, key in keys:
            moments.append(time.monotonic())
            problems.extend(app.update_timeframe_settings(interval, {key: edit_value(key, round_)}))
        time.sleep(0.02)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s (deadlock?)")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sessions_engine_retrains_and_edits_race_without_loss(engine_env):
    folder, monitor_runs = engine_env
    overview, system = open_page("overview"), open_page("system")
    app: Alpha12 = overview.session_state["alpha12"]
    assert system.session_state["alpha12"] is app and app.engine.running
    assert monitor_runs.started.wait(60), "the engine's monitor never ran"

    watcher = DuplicateWatcher(app)
    watcher.start()
    results: list = []
    problems: list = []
    moments: list[float] = []
    share = REQUESTS // REQUEST_THREADS
    threads = [
        threading.Thread(target=fire_requests, args=(app, n, share, results, moments))
        for n in range(REQUEST_THREADS)
    ] + [
        threading.Thread(target=fire_edits, args=(app, keys, problems, moments))
        for keys in EDITS.values()
    ]
    for thread in threads:
        thread.start()
    # Meanwhile both sessions act: one forces a timeframe retrain, the other saves a setting.
    overview.button(key="retrain-1h:ask").click().run()
    overview.button(key="retrain-1h:confirm").click().run()
    system.selectbox(key="settings_interval").set_value("4h").run()
    next(n for n in system.number_input if n.label == "win_rate").set_value(0.61)
    next(b for b in system.button if b.label == "Save").click().run()
    for at in (overview, system):
        assert not at.exception, [e.value for e in at.exception]
    for thread in threads:
        thread.join(JOIN_SECONDS)
    assert not [t.name for t in threads if t.is_alive()], "a request thread hung"

    wait_until(lambda: app.open_jobs().empty, 150, "the job queue drained")
    watcher.stop.set()
    watcher.join(10)

    # no duplicate job, every request answered with a job of its pair
    assert watcher.polls > 50 and watcher.duplicates == []
    assert len(results) == REQUESTS
    jobs = app.store.query("SELECT id, asset, interval, status, message FROM jobs")
    by_id = jobs.set_index("id")
    for (asset, interval), job_id in results:
        assert (by_id.loc[job_id, "asset"], by_id.loc[job_id, "interval"]) == (asset, interval)
    assert set(jobs["status"]) == {"done"}, jobs[jobs["status"] != "done"].to_dict("records")
    assert len(jobs) < REQUESTS  # requests for a waiting pair merged into its job

    # the edits really raced the monitor, and the store's reopening
    assert monitor_runs.overlapping(moments) > 0, "no request or edit met a monitor run"
    assert monitor_runs.reopens > 2

    assert app.engine.running and app.engine.restarts == 0
    errors = app.store.query("SELECT message FROM events WHERE level = 'error'")
    assert errors.empty, errors["message"].tolist()
    # Stop the engine and let a monitor run in progress finish (Engine.stop waits only 10 s
    # for it, then raises), so no training outlives this test.
    app.engine.stop(timeout=JOIN_SECONDS)
    assert not app.engine.running

    # no lost update
    assert problems == []
    check_settings(app, folder)


def check_settings(app: Alpha12, folder: Path) -> None:
    last = {
        (interval, key): edit_value(key, EDIT_ROUNDS)
        for keys in EDITS.values()
        for interval, key in keys
    }
    assert len(last) == len(EDITS) * 3  # one writer per key, so its last write is known
    last[("4h", "win_rate")] = 0.61
    audit = app.store.query("SELECT key, old_value, new_value FROM settings_audit ORDER BY id")
    assert len(audit) == len(EDITS) * 3 * EDIT_ROUNDS + 1  # every edit, and the session save
    for (interval, key), value in last.items():
        chain = audit[audit["key"] == f"timeframes.{interval}.{key}"]
        assert json.loads(chain["new_value"].iloc[-1]) == value
        # each edit saw the one before it: no write was based on a stale read
        assert chain["old_value"].iloc[1:].tolist() == chain["new_value"].iloc[:-1].tolist()
        assert getattr(app.settings.timeframe(interval), key) == value
    saved = app.store.get_state("settings_overrides")
    assert {(i, k): saved[i][k] for i, k in last} == last
    reopened_settings = small_settings(folder)
    st.cache_resource.clear()  # the app's context closes: a new process would see this
    reopened = Alpha12.open(settings=reopened_settings)
    try:
        for (interval, key), value in last.items():
            assert getattr(reopened.settings.timeframe(interval), key) == value
    finally:
        reopened.close()
