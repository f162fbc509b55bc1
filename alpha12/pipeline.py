"""One pair's analysis when its bars have closed: snapshot the new bars, predict with the
serving model, resolve open setups, maybe open a new one, and fill matured targets."""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alpha12 import analysis, signals, tracker
from alpha12.config import Settings
from alpha12.features import FEATURE_NAMES
from alpha12.registry import Registry, ServedModel
from alpha12.store import Store


@dataclass
class PairAnalysis:
    asset: str
    interval: str
    snapshots: int = 0
    setup_id: int | None = None
    closed: int = 0
    targets: int = 0
    model: str | None = None  # e.g. "timeframe v3", "fallback v1", or None


@contextmanager
def stage(timings: Counter | None, name: str):
    """Add the block's duration to timings[name] (seconds); free when timings is None."""
    if timings is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] += time.perf_counter() - started


def stored_precision(rows: pd.DataFrame) -> pd.DataFrame:
    """Features as the snapshots table stores them (FLOAT), so live predictions see exactly
    what training saw."""
    return rows[list(FEATURE_NAMES)].astype("float32").astype("float64")


def predict(served: ServedModel | None, rows: pd.DataFrame) -> np.ndarray:
    """Win probabilities for rows with complete features (NaN elsewhere or with no model)."""
    probability = np.full(len(rows), np.nan)
    if served is None or rows.empty:
        return probability
    values = stored_precision(rows)
    complete = values.notna().all(axis=1).to_numpy()
    if complete.any():
        probability[complete] = served.model.predict_proba(values[complete])
    return probability


def analyze_pair(
    store: Store,
    registry: Registry,
    settings: Settings,
    asset: str,
    interval: str,
    timings: Counter | None = None,
) -> PairAnalysis:
    """The new bars' snapshots, predictions, trade exits and entry; `timings` (optional)
    collects seconds per stage."""
    result = PairAnalysis(asset, interval)
    with stage(timings, "features"):
        bars, rows = analysis.new_bar_features(store, asset, interval)
    if rows.empty:
        return result
    with stage(timings, "predict"):
        served = registry.load_timeframe_model(asset, interval)
        rows["probability"] = predict(served, rows)
    result.model = f"{served.scope} v{served.version}" if served else None
    rows["model_version"] = served.version if served else None
    rows["model_scope"] = served.scope if served else None
    with stage(timings, "tracker"):
        result.closed, still_open = close_resolved(store, settings, asset, interval)
    with stage(timings, "signals"):
        setup = None if still_open else _next_setup(settings, asset, interval, bars, rows, served)
        rows["setup_generated"] = False
        if setup is not None:
            rows.loc[rows.index[-1], "setup_generated"] = True
            result.setup_id = store.insert_setups(pd.DataFrame([setup.as_row()]))[0]
    with stage(timings, "snapshots"):
        for column in analysis.TARGET_COLUMNS:
            rows[column] = np.nan
        rows["target_ts"] = pd.Series(pd.NaT, index=rows.index, dtype="datetime64[us, UTC]")
        result.snapshots = analysis.insert_snapshots(store, asset, interval, rows)
    with stage(timings, "targets"):
        result.targets = analysis.refresh_targets(store, settings, asset, interval, bars)
    return result


def close_resolved(store: Store, settings: Settings, asset: str, interval: str) -> tuple[int, int]:
    """Resolve the pair's open setups against the bars stored since their entries; how many
    closed, and how many are still open."""
    open_setups = store.open_setups(asset, interval)
    if open_setups.empty:
        return 0, 0
    bars = store.read_bars(asset, interval, start=open_setups["ts"].min())
    resolved = tracker.resolve(
        open_setups,
        bars,
        interval,
        settings.timeframe(interval).horizon_bars,
        settings.round_trip_cost_bps,
    )
    closed = store.close_setups(resolved)
    return closed, len(open_setups) - closed


def _next_setup(settings, asset, interval, bars, rows, served):
    """A setup on the newest bar only (older bars of a catch-up are past); the caller makes
    sure the pair has no open setup."""
    probability = rows["probability"].iloc[-1]
    if served is None or np.isnan(probability):
        return None
    newest = bars.iloc[-1]
    atr = float(rows["atr_pct_14"].iloc[-1] * newest["close"])
    return signals.make_setup(
        asset,
        interval,
        newest["ts"],
        float(newest["close"]),
        atr,
        float(probability),
        settings.timeframe(interval),
        served.version,
        served.scope,
    )
