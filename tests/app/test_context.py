"""app.py's shared context: one per server process for every session, released with the
cache; plain messages instead of tracebacks when it cannot open; the warm start's progress
and toasts for new recalibration decisions."""

import subprocess
import sys

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from alpha12.monitor import Outcome
from alpha12.store import StoreError
from tests.app.helpers import ASSET, REPO, context, open_page


def test_every_session_shares_one_context_released_with_the_cache(app_env):
    first, second = open_page("overview"), open_page("system")
    app = context(first)
    assert context(second) is app
    assert not app.engine.running  # ALPHA12_ENGINE=off
    st.cache_resource.clear()
    with pytest.raises(StoreError, match="is closed"):
        app.store.scalar("SELECT 1")  # on_release closed the store


def test_a_database_held_by_another_process_is_a_plain_message(app_env):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('ready', flush=True); time.sleep(60)",
            str(app_env / "storage.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    finally:
        holder.kill()
        holder.wait()
    assert not at.exception
    assert "is in use by process" in at.error[0].value
    assert (
        "another alpha12 app or command" in at.error[0].value.lower() or "--db" in at.error[0].value
    )


def test_invalid_settings_are_a_plain_message(app_env, monkeypatch):
    monkeypatch.setenv("ALPHA12_REPLAY_SPEED", "-1")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert "replay_speed: must be > 0" in at.error[0].value


def test_the_warm_start_shows_its_progress(app_env):
    app = context(open_page("overview"))
    app.engine.state = "warming up"  # as the engine thread sets it while walking history
    app.store.set_state("warm_start", {"progress": 0.4, "message": "walked BTC 15m"})
    # A new session: AppTest keeps the entry script's elements of a session's first run only.
    bar = open_page("overview").get("progress")[0].proto
    assert (bar.value, bar.text) == (40, "Warm start: walked BTC 15m")
    app.engine.state = "running"
    assert not open_page("overview").get("progress")


def test_a_new_recalibration_decision_is_toasted(populated_env):
    at = open_page("overview")
    assert not at.toast  # decisions made before the session opened are not news
    app = context(at)
    judged = app.monitor.assess(ASSET, "4h")
    app.monitor.record(
        judged, Outcome("recalibrated", "v9 promoted"), pd.Timestamp.now("UTC"), "monitor"
    )
    at.run()
    assert [t.value for t in at.toast] == [f"{ASSET} 4h: recalibrated. v9 promoted"]
    at.run()
    assert not at.toast  # once
