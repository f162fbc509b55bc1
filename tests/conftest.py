"""Shared fixtures: settings and a store under tmp_path, a manual clock, a bars-frame factory."""

from __future__ import annotations

import collections
import dataclasses
import functools
import gc
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alpha12.clock import ManualClock
from alpha12.config import Settings
from alpha12.timeframes import interval_delta

REPO = Path(__file__).resolve().parents[1]
BTC_DIR = REPO.parent / "shared" / "data" / "btcusdt"
CLOCK_START = pd.Timestamp("2025-01-11", tz="UTC")
PAIR = ("BTC", "1h")  # the lab tests' pair
LAB_BARS = 600
MEMORY_TMP = Path("/dev/shm")
MEMORY_TMP_FREE = 2 * 2**30


def _temporary_files_in_memory() -> None:
    """Every test's files (the DuckDB stores above all) on a memory file system where there is
    one with room to spare: DuckDB syncs its log to disk at each commit, 3.9 ms a commit on
    this disk against 1.7 ms in memory (measured), and the suite commits tens of thousands
    of times (three engine and monitor modules ran in 98 s instead of 120 s). The files and
    the DuckDB code are the same; only the disk is not. TMPDIR reaches the tests' child
    processes too; a TMPDIR set by whoever runs the suite is kept."""
    if "TMPDIR" in os.environ or not MEMORY_TMP.is_dir():
        return
    if shutil.disk_usage(MEMORY_TMP).free < MEMORY_TMP_FREE:
        return
    os.environ["TMPDIR"] = str(MEMORY_TMP)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again


_temporary_files_in_memory()


def _scan_installed_components_once() -> None:
    """Every new AppTest has Streamlit scan all installed packages for component manifests
    (0.1 s each, about 8 s of a run's CPU); the installed packages cannot change during a run."""
    from streamlit.components.v2 import manifest_scanner

    manifest_scanner.scan_component_manifests = functools.cache(
        manifest_scanner.scan_component_manifests
    )


_scan_installed_components_once()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules that hold slow tests first, then the others, each by its number of tests
    (most first), so that the last modules a worker picks up are short ones and neither core
    idles long at the end (pytest-xdist, with --no-loadscope-reorder, hands modules out in
    this order). The `apart` modules are spread evenly through the slow ones, from the first
    place on: each then runs beside tests that keep a core busy, not beside another one that
    spends its time waiting for its processes."""
    modules = collections.defaultdict(list)
    for item in items:
        modules[item.nodeid.split("::")[0]].append(item)

    def marked(tests: list[pytest.Item], name: str) -> bool:
        return any(test.get_closest_marker(name) for test in tests)

    ordered = sorted(modules.values(), key=lambda tests: (not marked(tests, "slow"), -len(tests)))
    apart = [tests for tests in ordered if marked(tests, "apart")]
    slow = [t for t in ordered if marked(t, "slow") and t not in apart]
    every = (len(slow) + len(apart)) // max(len(apart), 1)
    for n, tests in enumerate(apart):
        slow.insert(n * every, tests)
    rest = [tests for tests in ordered if not marked(tests, "slow") and tests not in apart]
    items[:] = [item for tests in [*slow, *rest] for item in tests]


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported (pandas, scikit-learn, Streamlit, hypothesis...) lives for the
    whole run: frozen, the garbage collector stops walking it at every full collection."""
    gc.freeze()


@pytest.fixture(autouse=True)
def keep_main_module():
    """AppTest runs app.py as __main__ and leaves it there; multiprocessing's spawn and
    forkserver would then run app.py in every child they start (Dask workers, crash lives)."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(autouse=True)
def reset_logging():
    """A test that runs the CLI or the app configures the alpha12 logger; the next test
    starts without those handlers (and their files)."""
    yield
    from alpha12 import logs

    logs.reset()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default settings with every file under tmp_path and a short synthetic history."""
    return dataclasses.replace(
        Settings(),
        db_path=tmp_path / "storage.duckdb",
        models_dir=tmp_path / "models",
        history_days=10,
    )


@pytest.fixture
def store(settings: Settings):
    from alpha12.store import Store  # imported here so a broken store fails only its users

    opened = Store(settings.db_path)
    yield opened
    opened.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(CLOCK_START)


@pytest.fixture
def make_bars() -> Callable[..., pd.DataFrame]:
    """make_bars(n, interval="5m", start=..., seed=0): n valid, contiguous bars."""

    def build(
        n: int,
        interval: str = "5m",
        start: str | pd.Timestamp = "2025-01-01",
        seed: int = 0,
    ) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
        open_ = np.r_[100.0, close[:-1]]
        return pd.DataFrame(
            {
                "ts": pd.date_range(
                    pd.Timestamp(start, tz="UTC"), periods=n, freq=interval_delta(interval)
                ),
                "open": open_,
                "high": np.maximum(open_, close) * 1.001,
                "low": np.minimum(open_, close) * 0.999,
                "close": close,
                "volume": rng.uniform(1, 10, n),
            }
        )

    return build


@pytest.fixture
def btc_dir() -> Path:
    if not (BTC_DIR / "BTCUSDT_5m.csv").exists():
        pytest.skip(f"real data not found at {BTC_DIR}")
    return BTC_DIR


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for `python -m alpha12` subprocesses: no ALPHA12_* leaking in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHA12_")}
    env["ALPHA12_CONFIG"] = str(tmp_path / "absent.toml")  # never pick up a stray alpha12.toml
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture
def isolated_env(monkeypatch, tmp_path: Path) -> None:
    """For in-process cli.main: no outside ALPHA12_* settings, and tmp_path as the working dir."""
    for name in [n for n in os.environ if n.startswith("ALPHA12_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ALPHA12_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def app_env(monkeypatch, tmp_path: Path):
    """An empty store behind the ALPHA12_* variables app.py reads, engine off; the app's context
    is released (store closed) after the test."""
    import streamlit as st  # imported here: only the app tests pay for Streamlit

    from tests.app.helpers import app_variables

    for name in [n for n in os.environ if n.startswith("ALPHA12_")]:
        monkeypatch.delenv(name)
    for name, value in {**app_variables(tmp_path), "ALPHA12_ENGINE": "off"}.items():
        monkeypatch.setenv(name, value)
    yield tmp_path
    st.cache_resource.clear()


@pytest.fixture
def run_cli(tmp_path: Path, cli_env: dict[str, str]):
    """run_cli(*args, env=...): `python -m alpha12 ARGS` run in tmp_path, as a CompletedProcess."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
        return subprocess.run(
            [sys.executable, "-m", "alpha12", *map(str, args)],
            cwd=tmp_path,
            env={**cli_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def lab_settings(settings: Settings) -> Settings:
    """Small thresholds so a lab walk of a few hundred hourly bars of a random walk trains,
    trades and retrains."""
    fast = dataclasses.replace(
        settings.timeframe("1h"),
        trigger="threshold",  # the point rule: the seed policy then differs from guarded
        min_trades=5,
        cooldown_hours=12,
        win_rate=0.55,
        entry_threshold=0.51,
    )
    return dataclasses.replace(settings, n_jobs=1, timeframes={"1h": fast})


@pytest.fixture
def hourly(make_bars) -> pd.DataFrame:
    """The lab tests' history: LAB_BARS hourly bars."""
    return make_bars(LAB_BARS, "1h", seed=3)


def backfilled_1h_store(folder: Path, days: int):
    """A store in `folder` with `days` of synthetic BTC 1h bars, snapshots backfilled; the
    caller closes it."""
    from alpha12 import cycle
    from alpha12.bars import resample
    from alpha12.sources.replay import SYNTHETIC_ORIGIN
    from alpha12.sources.synthetic import SyntheticMarket
    from alpha12.store import Store

    store = Store(folder / "s.duckdb")
    base = SyntheticMarket(seed=12, origin=SYNTHETIC_ORIGIN).base_bars("BTC", days)
    store.upsert_bars("BTC", "1h", resample(base, "1h"))
    cycle.backfill_pair(store, Settings(), "BTC", "1h")
    return store
