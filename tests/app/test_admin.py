"""With ALPHA12_ADMIN_PASSWORD set, retrains, roll backs and settings changes need it: without
it (or with a wrong one) nothing changes; with it the change goes through."""

import pytest

from alpha12.context import SETTINGS_OVERRIDES_KEY
from alpha12.ui import WRONG_PASSWORD
from tests.app.helpers import ASSET, click, context, open_page

PASSWORD = "correct horse"


@pytest.fixture
def admin_env(populated_env, monkeypatch):
    monkeypatch.setenv("ALPHA12_ADMIN_PASSWORD", PASSWORD)
    return populated_env


def job_count(at) -> int:
    return context(at).store.scalar("SELECT count(*) FROM jobs")


def confirm(at, key: str, password: str | None) -> None:
    click(at, f"{key}:ask")
    if password is not None:
        at.text_input(key=f"{key}:password").set_value(password)
    click(at, f"{key}:confirm")


@pytest.mark.parametrize("password", [None, "wrong"])
def test_retrain_is_refused_without_the_password(admin_env, password):
    at = open_page("overview")
    confirm(at, "retrain-5m", password)
    assert [e.value for e in at.error] == [WRONG_PASSWORD]
    assert job_count(at) == 0
    at.text_input(key="retrain-5m:password").set_value(PASSWORD)
    click(at, "retrain-5m:confirm")
    assert job_count(at) == 1


def test_timeframe_retrain_is_refused_without_the_password(admin_env):
    at = open_page("timeframe")
    confirm(at, f"retrain-{ASSET}-5m", None)
    assert [e.value for e in at.error] == [WRONG_PASSWORD]
    assert job_count(at) == 0


def test_roll_back_is_refused_without_the_password(admin_env):
    at = open_page("models")
    app = context(at)
    active = app.registry.active_version(ASSET, "5m")
    confirm(at, f"rollback-{ASSET}-5m", "wrong")
    assert [e.value for e in at.error] == [WRONG_PASSWORD]
    assert app.registry.active_version(ASSET, "5m") == active
    confirm(at, f"rollback-{ASSET}-5m", PASSWORD)
    assert app.registry.active_version(ASSET, "5m") != active


def test_settings_change_is_refused_without_the_password(admin_env):
    at = open_page("system")
    next(n for n in at.number_input if n.label == "win_rate").set_value(0.5)
    next(b for b in at.button if b.label == "Save").click().run()
    assert [e.value for e in at.error] == [WRONG_PASSWORD]
    app = context(at)
    assert app.settings.timeframe("5m").win_rate == 0.45
    assert app.store.get_state(SETTINGS_OVERRIDES_KEY) is None
    at.text_input(key="settings_password").set_value(PASSWORD)
    next(b for b in at.button if b.label == "Save").click().run()
    assert app.settings.timeframe("5m").win_rate == 0.5
