"""Fixtures of the app tests: a store populated once per session by a real warm start, and
per test an empty store or a copy of the populated one behind the ALPHA12_* variables the app
reads, with the engine thread off so nothing races the assertions."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from alpha12.config import Settings
from alpha12.services import Alpha12

REPO = Path(__file__).resolve().parents[2]
ASSET = "BTC"
HISTORY_DAYS = 30  # a month of synthetic bars: every timeframe gets a model, warm start ~30 s
INTERVALS = ("5m", "15m", "1h", "4h", "1d")
PAGES = ("overview", "timeframe", "snapshots", "models", "system")


def populated_settings(folder: Path) -> Settings:
    return dataclasses.replace(
        Settings(),
        assets=(ASSET,),
        history_days=HISTORY_DAYS,
        db_path=folder / "storage.duckdb",
        models_dir=folder / "models",
    )


@pytest.fixture(scope="session")
def populated_dir(tmp_path_factory) -> Path:
    """A store after the engine's warm start, run synchronously on this thread."""
    folder = tmp_path_factory.mktemp("populated")
    app = Alpha12.open(settings=populated_settings(folder))
    try:
        app.engine._warm_start_if_new()  # the engine thread's first step, without the thread
    finally:
        app.close()
    return folder


def app_variables(folder: Path) -> dict[str, str]:
    """The ALPHA12_* variables that point the app at the store in `folder`."""
    return {
        "ALPHA12_CONFIG": str(folder / "absent.toml"),
        "ALPHA12_ASSETS": ASSET,
        "ALPHA12_HISTORY_DAYS": str(HISTORY_DAYS),
        "ALPHA12_DB_PATH": str(folder / "storage.duckdb"),
        "ALPHA12_MODELS_DIR": str(folder / "models"),
    }


@pytest.fixture
def app_env(monkeypatch, tmp_path: Path):
    """An empty store; the app's context is released (store closed) after the test."""
    for name in [n for n in os.environ if n.startswith("ALPHA12_")]:
        monkeypatch.delenv(name)
    for name, value in {**app_variables(tmp_path), "ALPHA12_ENGINE": "off"}.items():
        monkeypatch.setenv(name, value)
    yield tmp_path
    st.cache_resource.clear()


@pytest.fixture
def populated_env(app_env: Path, populated_dir: Path) -> Path:
    """A private copy of the populated store (tests may change it)."""
    shutil.copy(populated_dir / "storage.duckdb", app_env / "storage.duckdb")
    shutil.copytree(populated_dir / "models", app_env / "models")
    return app_env


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
