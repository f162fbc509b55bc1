"""Fixtures of the app tests: a store populated once per session by a real warm start, and per
test a copy of it behind the ALPHA12_* variables the app reads (app_env, in tests/conftest.py,
gives the empty store, with the engine thread off so nothing races the assertions)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from alpha12.services import Alpha12
from tests.app.helpers import populated_settings


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
def populated_env(app_env: Path, populated_dir: Path) -> Path:
    """A private copy of the populated store (tests may change it)."""
    shutil.copy(populated_dir / "storage.duckdb", app_env / "storage.duckdb")
    shutil.copytree(populated_dir / "models", app_env / "models")
    return app_env
