"""Fixtures of the app tests: a store populated once per session by a real warm start, and per
test a copy of it behind the ALPHA12_* variables the app reads (app_env, in tests/conftest.py,
gives the empty store, with the engine thread off so nothing races the assertions)."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest

from alpha12.services import Alpha12
from tests.app.helpers import populated_settings


@pytest.fixture(scope="session")
def populated_dir(tmp_path_factory) -> Path:
    """A store after the engine's warm start, run synchronously on this thread; built once
    per test run and shared by the xdist workers (the first one builds it, under a lock)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's own
    folder, built = shared / "populated", shared / "populated.built"
    with open(shared / "populated.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists():
            folder.mkdir(exist_ok=True)
            app = Alpha12.open(settings=populated_settings(folder))
            try:
                app.engine.warm_start_if_new()  # the engine thread's first step, no thread
            finally:
                app.close()
            built.touch()
    return folder


@pytest.fixture
def populated_env(app_env: Path, populated_dir: Path) -> Path:
    """A private copy of the populated store (tests may change it)."""
    shutil.copy(populated_dir / "storage.duckdb", app_env / "storage.duckdb")
    shutil.copytree(populated_dir / "models", app_env / "models")
    return app_env
