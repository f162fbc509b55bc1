"""Fixtures of the app tests: a store populated once per session by a real warm start, and
per test an empty store or a copy of the populated one behind the ALPHA12_* variables the app
reads, with the engine thread off so nothing races the assertions."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import streamlit as st

from alpha12.services import Alpha12
from tests.app.helpers import app_variables, populated_settings


@pytest.fixture(scope="session")
def populated_dir(tmp_path_factory) -> Path:
    """A store after the engine's warm start, run synchronously on this thread."""
    folder = tmp_path_factory.mktemp("populated")
    app = Alpha12.open(settings=populated_settings(folder))
    try:
        app.engine.warm_start_if_new()  # the engine thread's first step, without the thread
    finally:
        app.close()
    return folder


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
