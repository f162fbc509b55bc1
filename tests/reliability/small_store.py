"""A small populated store shared by the security, concurrency and resource reliability tests.

BTC on 12 days of synthetic bars: snapshots for every timeframe, a model per pair that has the
rows for one (plus the fallback), and two versions of BTC 5m (v1 retired, v2 serving), marked
warm-started so an engine started on it goes straight to its cycle. Built once per test process
(seconds, where the app tests' month-long warm start takes half a minute) and copied per test.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from alpha12.clock import ManualClock
from alpha12.config import Settings
from alpha12.services import Alpha12
from alpha12.warmstart import WARM_STARTED_KEY
from tests.app import helpers

ASSET = helpers.ASSET  # the app tests' universe, with a shorter history
HISTORY_DAYS = 12
SWAPPED_INTERVAL = "5m"  # the pair with two versions


def small_settings(folder: Path) -> Settings:
    return helpers.populated_settings(folder, HISTORY_DAYS)


def app_variables(folder: Path) -> dict[str, str]:
    """The ALPHA12_* variables that point app.py at the small store in `folder`."""
    return helpers.app_variables(folder, small_settings(folder))


@functools.cache
def _template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="alpha12-small-store-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    app = Alpha12.open(settings=small_settings(folder))
    try:
        app.collect_once()
        app.backfill()
        app.train(ASSET)
        app.train(ASSET, SWAPPED_INTERVAL)  # a second version, made to serve
        newest = int(app.registry.versions(ASSET, SWAPPED_INTERVAL)["version"].max())
        app.registry.activate(ASSET, SWAPPED_INTERVAL, newest)
        app.store.set_state(WARM_STARTED_KEY, [list(pair) for pair in app.pairs()])
    finally:
        app.close()
    return folder


def copy_small_store(folder: Path) -> Path:
    """A private copy of the small store in `folder` (tests may change it)."""
    template = _template()
    shutil.copy(template / "storage.duckdb", folder / "storage.duckdb")
    shutil.copytree(template / "models", folder / "models")
    return folder


def open_small_store(folder: Path, **kwargs) -> Alpha12:
    """An Alpha12 context on a private copy of the small store (kwargs: clock, source)."""
    copy_small_store(folder)
    return Alpha12.open(settings=small_settings(folder), **kwargs)


def open_on_manual_clock(folder: Path) -> Alpha12:
    """A private copy of the small store on a manual clock at its replay time, so the engine's
    ticks do exactly (and only) what a test asks."""
    probe = open_small_store(folder)
    now = probe.clock.now()
    probe.close()
    return Alpha12.open(settings=small_settings(folder), clock=ManualClock(now))
