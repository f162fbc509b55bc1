"""Warm start: on a store with no trades, backfill snapshots, train initial models as of an early
point, and walk forward through the rest of the history trading out of sample, under the
monitor's own rules, so the first minute already shows meaningful win rates.

No model ever predicts inside its own training window: a model trained as of time T only
predicts bars that close after T, and its training rows' labels were all known by T.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from alpha12 import cycle, training
from alpha12.lab.walk import PairWalk
from alpha12.monitor import PerformanceMonitor

WARM_START = "warm_start"
WARM_STARTED_KEY = "warm_started_pairs"  # state: the pairs whose walk has finished
WARM_START_PROGRESS_KEY = "warm_start"  # state: {progress, message} while it runs
# Bars walked per timeframe: about two weeks of 5m trading up to four months of daily bars.
WARM_START_BARS = {"5m": 1152, "15m": 960, "1h": 720, "4h": 360, "1d": 120}

Progress = Callable[[float, str], None]


def _quiet(_fraction: float, _message: str) -> None:
    pass


def pending_pairs(store, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs not warm-started yet (a warm start cut short resumes with the rest)."""
    done = {tuple(pair) for pair in store.get_state(WARM_STARTED_KEY, [])}
    return [pair for pair in pairs if pair not in done]


def warm_start(
    monitor: PerformanceMonitor,
    pairs: list[tuple[str, str]],
    progress: Progress = _quiet,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, str]:
    """Backfill, then walk each pair; per ASSET_INTERVAL a one-line summary.

    Pairs are backfilled side by side. The assets' fallback models train side by side, when
    a walk first has no model of its own to serve, or else once every pair has its first trades.

    The walks go in two rounds, so the overview fills fast: first every pair walks until its
    first setup is saved, then every walk runs to its end, both in the overview's order
    (timeframe by timeframe). Each finished pair is remembered; a stop (or a crash) leaves the
    others for the next start, which first deletes the setups a walk cut short had saved and
    walks the pair again."""
    store, settings = monitor.store, monitor.settings()
    lock, backfilled, steps, done = threading.Lock(), [], {}, []

    def begun() -> float:
        return 0.25 + 0.35 * len(steps) / len(pairs)

    # The fallbacks train as of each asset's earliest walk whenever they train: first when a
    # walk has no model of its own to serve, else after every pair's first trades, so that
    # the overview does not wait for them.
    fallbacks = functools.cache(lambda: _train_fallbacks(monitor, walks, progress, begun()))

    def prepare(pair: tuple[str, str]) -> PairWalk:
        cycle.backfill_pair(store, settings, *pair)
        with lock:
            backfilled.append(pair)
            progress(0.2 * len(backfilled) / len(pairs), f"backfilled {pair[0]} {pair[1]}")
        return PairWalk(
            monitor,
            *pair,
            recent_bars=WARM_START_BARS[pair[1]],
            origin=WARM_START,
            explain=True,
            workers=training.spare_cores(settings, 1),
            need_fallback=fallbacks,
        )

    def begin(pair: tuple[str, str]) -> None:
        if should_stop():
            return
        store.delete_setups(*pair, WARM_START)  # what a walk cut short before left behind
        steps[pair] = walks[pair].steps()
        for _ in steps[pair]:
            if walks[pair].save_setups() or should_stop():
                break
        progress(begun(), f"first trades of {pair[0]} {pair[1]}")

    def finish(pair: tuple[str, str]) -> str:
        if pair not in steps:
            return "not walked: stopped"
        for _ in steps[pair]:
            if should_stop():  # left unwalked: the next start walks it again from its start
                return "not walked: stopped"
        done.append(pair)
        store.set_state(WARM_STARTED_KEY, [*store.get_state(WARM_STARTED_KEY, []), pair])
        progress(0.6 + 0.4 * len(done) / len(pairs), f"walked {pair[0]} {pair[1]}")
        return walks[pair].summary

    # Backfills are numpy and DuckDB work, side by side on threads. The walks go one at a time
    # on this thread, each fitting its models over the cores in processes: two walks on two
    # threads fight over the GIL the trees' Python holds (measured: two fits on two threads
    # take 2.3 times as long as one after the other).
    in_view = sorted(pairs, key=lambda pair: settings.intervals.index(pair[1]))
    with ThreadPoolExecutor(max_workers=settings.n_jobs) as pool:
        walks = dict(zip(pairs, pool.map(prepare, pairs), strict=True))
    for pair in in_view:
        begin(pair)
    if not should_stop():
        fallbacks()  # they serve later too, if a pair's own model fails
    walked = {pair: finish(pair) for pair in in_view}
    return {f"{a}_{i}": walked[(a, i)] for a, i in pairs}


def _train_fallbacks(
    monitor: PerformanceMonitor, walks: dict, progress: Progress, fraction: float
) -> None:
    """Each asset's pooled fallback model, as of its earliest walk (they train side by side):
    it serves the pairs too short for a model of their own."""
    as_of: dict[str, pd.Timestamp] = {}
    for (asset, _), walk in walks.items():
        if walk.start_time is not None:
            as_of[asset] = min(as_of.get(asset, walk.start_time), walk.start_time)
    if as_of:
        progress(fraction, f"training the fallback models of {', '.join(sorted(as_of))}")
        monitor.train_fallbacks(as_of, WARM_START)
