"""Helpers of the app tests: the test universe, the variables that point the app at a store,
and AppTest runs of the app's pages."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from streamlit.testing.v1 import AppTest

from alpha12.config import Settings
from alpha12.services import Alpha12

REPO = Path(__file__).resolve().parents[2]
ASSET = "BTC"
HISTORY_DAYS = 30  # a month of synthetic bars: every timeframe gets a model, warm start ~30 s
INTERVALS = ("5m", "15m", "1h", "4h", "1d")
PAGES = ("overview", "timeframe", "snapshots", "models", "system", "lab")


def populated_settings(folder: Path, history_days: int = HISTORY_DAYS) -> Settings:
    return dataclasses.replace(
        Settings(),
        assets=(ASSET,),
        history_days=history_days,
        db_path=folder / "storage.duckdb",
        models_dir=folder / "models",
    )


def app_variables(folder: Path, settings: Settings | None = None) -> dict[str, str]:
    """The ALPHA12_* variables that point the app (or the CLI) at `settings`' store, by
    default the test universe's store in `folder`."""
    settings = settings or populated_settings(folder)
    return {
        "ALPHA12_CONFIG": str(folder / "absent.toml"),
        "ALPHA12_ASSETS": ",".join(settings.assets),
        "ALPHA12_INTERVALS": ",".join(settings.intervals),
        "ALPHA12_HISTORY_DAYS": str(settings.history_days),
        "ALPHA12_DB_PATH": str(settings.db_path),
        "ALPHA12_MODELS_DIR": str(settings.models_dir),
    }


def open_page(page: str) -> AppTest:
    """The app run once on `page` (one of PAGES), with no exception."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    if page != "overview":
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def context(at: AppTest) -> Alpha12:
    """The context the app run used (shared through session state)."""
    return at.session_state["alpha12"]


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at
