"""The app's controls change exactly what they say: a retrain queues one job per pair and
then reports its outcome, a roll back re-activates the chosen version, and settings are
validated, saved, audited and applied."""

import time

import pandas as pd

from alpha12.context import SETTINGS_OVERRIDES_KEY
from alpha12.services import Alpha12
from tests.app.helpers import ASSET, click, context, open_page


def jobs(app: Alpha12) -> list[dict]:
    return app.store.query("SELECT asset, interval, status, requested_by FROM jobs").to_dict(
        "records"
    )


def test_overview_retrain_queues_one_job_per_pair_of_the_timeframe(populated_env):
    at = open_page("overview")
    click(at, "retrain-1h:ask")
    assert jobs(context(at)) == []  # asking only opens the confirmation
    click(at, "retrain-1h:confirm")
    expected = [{"asset": ASSET, "interval": "1h", "status": "queued", "requested_by": "ui"}]
    assert jobs(context(at)) == expected
    click(at, "retrain-1h:ask")
    click(at, "retrain-1h:confirm")
    assert jobs(context(at)) == expected  # merged into the job still waiting


def test_cancelled_retrain_queues_nothing(populated_env):
    at = open_page("overview")
    click(at, "retrain-5m:ask")
    click(at, "retrain-5m:cancel")
    assert jobs(context(at)) == []
    assert not [b for b in at.button if b.key == "retrain-5m:confirm"]


def test_timeframe_retrain_is_disabled_while_queued_then_shows_the_outcome(populated_env):
    at = open_page("timeframe")
    click(at, f"retrain-{ASSET}-5m:ask")
    click(at, f"retrain-{ASSET}-5m:confirm")
    app = context(at)
    assert jobs(app) == [
        {"asset": ASSET, "interval": "5m", "status": "queued", "requested_by": "ui"}
    ]
    assert at.button(key="retrain-busy").disabled
    assert "queued" in at.get("progress")[0].proto.text
    before = app.registry.active_version(ASSET, "5m")
    run_queued_job(app)
    at.run()
    outcome = next(i.value for i in at.info if i.value.startswith("Job #1"))
    newest = int(app.store.scalar("SELECT max(version) FROM models WHERE interval = '5m'"))
    assert f"challenger v{newest} " in outcome and newest > before
    if app.registry.load_shadow(ASSET, "5m") is not None:  # too few held-out rows to compare
        assert "in shadow" in outcome and app.registry.active_version(ASSET, "5m") == before
    else:
        assert "Brier" in outcome
        verdict = "promoted" if app.registry.active_version(ASSET, "5m") == newest else "rejected"
        assert verdict in outcome
    assert not at.button(key=f"retrain-{ASSET}-5m:ask").disabled


def run_queued_job(app: Alpha12, timeout: float = 120) -> None:
    """Let the real engine work the queue: two ticks (the first schedules the monitor, the
    second hands the job to the trainer thread), then wait for the job to finish."""
    app.clock.pause()  # so the monitor does not fall due between the two ticks
    app.engine.tick()
    app.engine.tick()
    deadline = time.monotonic() + timeout
    while app.latest_job(ASSET, "5m")["active"]:
        assert time.monotonic() < deadline, "the retrain job did not finish"
        time.sleep(0.2)


def test_roll_back_re_activates_the_chosen_version(populated_env):
    at = open_page("models")
    app = context(at)
    active = app.registry.active_version(ASSET, "5m")
    older = at.selectbox(key="rollback_version").options[-1]
    at.selectbox(key="rollback_version").set_value(int(older.lstrip("v"))).run()
    click(at, f"rollback-{ASSET}-5m:ask")
    click(at, f"rollback-{ASSET}-5m:confirm")
    assert app.registry.active_version(ASSET, "5m") == int(older.lstrip("v")) != active
    assert app.model_card(ASSET, "5m")["version"] == int(older.lstrip("v"))


def save_settings(at, **values):
    for field, value in values.items():
        next(n for n in at.number_input if n.label == field).set_value(value)
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception
    return at


def test_invalid_settings_are_refused_with_a_message(populated_env):
    at = open_page("system")
    save_settings(at, win_rate=1.5, min_rows=5)
    message = at.error[0].value
    assert "timeframes.5m.win_rate: must be within [0, 1]" in message
    assert "timeframes.5m.min_rows: must be >= 20" in message
    app = context(at)
    assert app.settings.timeframe("5m").win_rate == 0.45
    assert app.store.get_state(SETTINGS_OVERRIDES_KEY) is None
    assert app.settings_audit().empty


def test_settings_are_saved_audited_and_read_by_the_next_monitor_run(populated_env):
    at = open_page("system")
    at.selectbox(key="settings_interval").set_value("1h").run()
    save_settings(at, win_rate=0.6, min_trades=12)
    assert not at.error
    app = context(at)
    assert app.store.get_state(SETTINGS_OVERRIDES_KEY) == {
        "1h": {"win_rate": 0.6, "min_trades": 12}
    }
    audit = app.settings_audit().sort_values("id")
    assert audit[["key", "old_value", "new_value"]].to_dict("records") == [
        {"key": "timeframes.1h.win_rate", "old_value": "0.52", "new_value": "0.6"},
        {"key": "timeframes.1h.min_trades", "old_value": "30", "new_value": "12"},
    ]
    assert pd.Timestamp(audit["wall_ts"].iloc[0]).tzinfo is not None
    judged = app.monitor.assess(ASSET, "1h")
    assert (judged.thresholds.win_rate, judged.thresholds.min_trades) == (0.6, 12)


def test_saved_settings_are_applied_when_the_app_opens_again(populated_env):
    at = open_page("system")
    save_settings(at, cooldown_hours=5.0)
    settings = context(at).settings
    context(at).close()
    reopened = Alpha12.open(settings=settings.with_timeframe("5m", cooldown_hours=2.0))
    try:
        reopened.context.apply_saved_settings()
        assert reopened.settings.timeframe("5m").cooldown_hours == 5.0
    finally:
        reopened.close()


def test_the_trigger_and_the_calibration_gap_are_edited_saved_and_audited(populated_env):
    at = open_page("system")
    at.selectbox(key="settings_interval").set_value("4h").run()
    next(s for s in at.selectbox if s.label == "trigger").set_value("page_hinkley")
    save_settings(at, max_calibration_gap=0.15)
    assert not at.error
    app = context(at)
    assert (
        app.settings.timeframe("4h").trigger,
        app.settings.timeframe("4h").max_calibration_gap,
    ) == (
        "page_hinkley",
        0.15,
    )
    assert app.monitor.assess(ASSET, "4h").as_dict()["trigger"] == "page_hinkley"
    audit = app.settings_audit().sort_values("id")
    assert set(audit["key"]) == {"timeframes.4h.trigger", "timeframes.4h.max_calibration_gap"}
    assert app.store.get_state(SETTINGS_OVERRIDES_KEY) == {
        "4h": {"trigger": "page_hinkley", "max_calibration_gap": 0.15}
    }
