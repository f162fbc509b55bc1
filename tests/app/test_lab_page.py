"""The Lab page end to end: a run queued from the page and worked by the engine's job runner,
its table, sentences and charts, downloads, and a policy's thresholds applied (audited) —
refused without the admin password when one is set."""

from __future__ import annotations

import pytest

from alpha12.lab import oracle
from alpha12.store import Store
from alpha12.ui import WRONG_PASSWORD
from tests.app.helpers import click, context, open_page
from tests.conftest import PAIR

# The lab's small thresholds for the one timeframe, so a walk of 600 hourly bars trades.
LAB_VARIABLES = {
    "ALPHA12_ASSETS": "BTC",
    "ALPHA12_INTERVALS": "1h",
    "ALPHA12_N_JOBS": "1",
    "ALPHA12_TIMEFRAMES__1H__MIN_TRADES": "5",
    "ALPHA12_TIMEFRAMES__1H__COOLDOWN_HOURS": "12",
    "ALPHA12_TIMEFRAMES__1H__WIN_RATE": "0.55",
    "ALPHA12_TIMEFRAMES__1H__ENTRY_THRESHOLD": "0.51",
}
POLICY = "custom:win_rate=0.45:cooldown_hours=6.0"


@pytest.fixture
def lab_env(app_env, monkeypatch, hourly):
    for name, value in LAB_VARIABLES.items():
        monkeypatch.setenv(name, value)
    store = Store(app_env / "storage.duckdb")
    store.upsert_bars(*PAIR, hourly)
    store.close()
    return app_env


def run_lab_from_the_page(at, password: str | None = None):
    """Tick never and the typed custom policy, press Run and confirm; the engine's job runner
    then works the queued job (the engine thread is off in tests)."""
    at.multiselect(key="lab_kinds").set_value(["never"])
    at.text_input(key="lab_typed").set_value(POLICY)
    click(at, "lab-run:ask")
    if password is not None:
        at.text_input(key="lab-run:password").set_value(password)
    click(at, "lab-run:confirm")
    app = context(at)
    app.engine._run_job(app.engine._claim_job())
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return app


@pytest.mark.slow
def test_a_lab_run_from_the_page_shows_its_results_and_applies_thresholds(lab_env):
    at = open_page("lab")
    assert at.title[0].value == "Lab"
    app = run_lab_from_the_page(at)
    kept = app.lab.open(1)
    assert kept.record["status"] == "done" and list(kept.lab.table["policy"]) == ["never", POLICY]
    shown = at.dataframe[-1].value
    assert list(shown["policy"]) == ["never", POLICY]
    assert shown["win rate"].str.endswith("%").all()
    assert shown["expectancy 95%"].str.match(r"^\[-?\d+\.\d\d, -?\d+\.\d\d\]$").all()
    assert oracle.REGRET_MEANING in [c.value for c in at.caption]
    sentences = [m.value for m in at.markdown if "did best" in m.value]
    assert sentences == [f"- {kept.lab.sentences[PAIR]}"]
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the equity of every policy, the difference to never
    assert {b.label for b in at.get("download_button")} == {"Download CSV", "Download PARQUET"}

    at.selectbox(key="lab_apply_policy").set_value("never").run()
    click(at, "lab-apply-1:ask")
    click(at, "lab-apply-1:confirm")
    assert any("never has no thresholds to apply" in e.value for e in at.error)
    assert app.settings_audit().empty
    at.selectbox(key="lab_apply_policy").set_value(POLICY).run()
    click(at, "lab-apply-1:ask")
    click(at, "lab-apply-1:confirm")
    assert (app.settings.timeframe("1h").win_rate, app.settings.timeframe("1h").cooldown_hours) == (
        0.45,
        6.0,
    )
    audit = app.settings_audit()
    assert set(audit["key"]) == {"timeframes.1h.win_rate", "timeframes.1h.cooldown_hours"}
    assert set(audit["new_value"]) == {"0.45", "6.0"}


def test_the_page_refuses_without_the_admin_password(lab_env, monkeypatch):
    monkeypatch.setenv("ALPHA12_ADMIN_PASSWORD", "lab-secret")
    at = open_page("lab")
    app = context(at)
    at.multiselect(key="lab_kinds").set_value(["never"])
    click(at, "lab-run:ask")
    at.text_input(key="lab-run:password").set_value("wrong")
    click(at, "lab-run:confirm")
    assert WRONG_PASSWORD in [e.value for e in at.error]
    assert app.lab.runs().empty
    app.lab.request([PAIR], "never,custom:win_rate=0.4", oracle_candidates=None)
    app.engine._run_job(app.engine._claim_job())
    at.run()
    at.selectbox(key="lab_apply_policy").set_value("custom:win_rate=0.4").run()
    click(at, "lab-apply-1:ask")
    at.text_input(key="lab-apply-1:password").set_value("")
    click(at, "lab-apply-1:confirm")
    assert WRONG_PASSWORD in [e.value for e in at.error]
    assert app.settings_audit().empty
