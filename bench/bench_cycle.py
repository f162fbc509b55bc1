"""Benchmark: one full engine cycle (training excluded) over N assets x 5 timeframes on the replay
source, stage by stage, at 100 and 500 series.

The cycle is the worst case of a live day: the clock crosses midnight UTC, so a new bar closes
on every timeframe of every asset at once; each pair is collected, snapshotted, predicted,
tracked and its targets refreshed, exactly as the engine does it. Best of 3, each run on a copy
of the same store (a midnight happens once per store).

The reference is the same midnight run pair by pair: the engine's cycle called once per pair in
turn, on another copy of the same store; the same work, without the batching.
"""

import dataclasses
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from alpha12 import models
from alpha12.clock import ManualClock
from alpha12.config import Settings
from alpha12.registry import FALLBACK_INTERVAL
from alpha12.services import Alpha12
from alpha12.sources.replay import SyntheticReplay
from bench.bench_training import training_frame
from bench.timing import row

HISTORY_DAYS = 20
START_OFFSET = pd.Timedelta(minutes=-10)  # the replay's start is midnight UTC
REPEATS = 3  # the cycle of a midnight happens once per store: each run gets a copy


def build(folder: Path, assets: list[str], model) -> Settings:
    """A store whose pairs are collected and analysed up to 10 minutes before midnight, every
    asset served by the same (fallback) model; its settings."""
    settings = Settings(
        assets=tuple(assets),
        history_days=HISTORY_DAYS,
        db_path=folder / "bench.duckdb",
        models_dir=folder / "models",
    )
    app = open_at(settings, START_OFFSET)
    app.collect_once()
    app.backfill()
    for asset in assets:
        app.registry.register(asset, FALLBACK_INTERVAL, model, app.clock.now(), "bench")
    app.close()
    return settings


def open_at(settings: Settings, offset: pd.Timedelta) -> Alpha12:
    source = SyntheticReplay(settings.seed, HISTORY_DAYS, future_days=2)
    clock = ManualClock(source.default_start + offset)
    return Alpha12.open(settings=settings, clock=clock, source=source)


def timed_cycle(built: Settings, folder: Path, pair_by_pair: bool = False) -> tuple[float, Counter]:
    """A copy of the built store, warmed as a running engine is (the 5m bar before midnight
    loads each asset's model), then the midnight cycle, whole or `pair_by_pair`: (seconds,
    seconds per stage)."""
    shutil.copytree(built.db_path.parent, folder, dirs_exist_ok=True)
    settings = dataclasses.replace(
        built, db_path=folder / built.db_path.name, models_dir=folder / built.models_dir.name
    )
    app = open_at(settings, START_OFFSET)
    app.clock.advance(minutes=5)
    cycle(app)
    app.clock.advance(minutes=5)
    started = time.perf_counter()
    timings = cycle_pair_by_pair(app) if pair_by_pair else cycle(app)
    seconds = time.perf_counter() - started
    closed = app.clock.now() - pd.Timedelta(minutes=5)
    assert app.store.scalar("SELECT count(*) FROM snapshots WHERE ts = ?", [closed]) == len(
        settings.assets
    )  # every asset's 5m, 15m, 1h, 4h and 1d bar closed: one 5m snapshot each at 23:55
    app.close()
    return seconds, timings


def cycle(app: Alpha12) -> Counter:
    """The engine's own cycle over every pair, timed stage by stage."""
    timings: Counter = Counter()
    app.engine.cycle(app.pairs(), app.clock.now(), timings)
    return timings


def best_of(built: Settings, folder: Path, pair_by_pair: bool = False) -> tuple[float, Counter]:
    """The fastest of REPEATS timed cycles, each on its own copy of the built store."""
    runs = [timed_cycle(built, folder / str(r), pair_by_pair) for r in range(REPEATS)]
    return min(runs, key=lambda run: run[0])


def cycle_pair_by_pair(app: Alpha12) -> Counter:
    """The reference: the engine's cycle of one pair at a time, over every pair."""
    timings: Counter = Counter()
    for pair in app.pairs():
        app.engine.cycle([pair], app.clock.now(), timings)
    return timings


def cycle_model():
    """One trained model that serves every benchmark asset."""
    return models.fit(training_frame(1_500), Settings().timeframe("5m"))


def run(quick: bool = False) -> list[dict]:
    trained = cycle_model()
    sizes = (4, 20) if quick else (20, 100)  # assets: x 5 timeframes = 20/100 or 100/500 series
    rows, totals = [], {}
    for n_assets in sizes:
        with tempfile.TemporaryDirectory() as folder:
            built = build(Path(folder) / "built", [f"A{i:03d}" for i in range(n_assets)], trained)
            totals[n_assets], timings = best_of(built, Path(folder) / "batched")
            reference = None
            if n_assets == sizes[-1]:  # the aim's size: against the same cycle pair by pair
                reference, _ = best_of(built, Path(folder) / "pairs", pair_by_pair=True)
        series = 5 * n_assets
        rows.append(
            row(
                f"cycle: {series} series, whole cycle"
                + (" (reference: the same cycle pair by pair)" if reference else ""),
                totals[n_assets],
                "s",
                "<= 2 s" if series == 500 else "",
                reference=reference,
            )
        )
        rows += [
            row(f"cycle: {series} series, stage {name}", seconds, "s", "")
            for name, seconds in sorted(timings.items(), key=lambda kv: -kv[1])
        ]
    small, large = sizes
    rows.append(
        row(
            f"cycle: growth {5 * small} -> {5 * large} series (time ratio / size ratio)",
            (totals[large] / totals[small]) / (large / small),
            "x",
            "close to 1 (linear)",
        )
    )
    return rows
