"""Benchmark: the recalibration lab on the real Binance BTC/USDT candles in ../shared.

- one pair-year of 1h bars under five policies, fanned out over the 2 cores, against the same
  five parts run one after another;
- one pair-year of 5m bars under the seed policy (the costliest: a 2-hour cooldown), against
  the same policy on the 1h pair-year (so the ratio reads as cost per bar);
- the lab's walk against a naive per-bar loop on the same bars and policy: the naive loop
  predicts one bar per call and asks the monitor at every hourly check, as a bar-by-bar
  backtester does; both must reach the same trades.
"""

import dataclasses
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from alpha12 import cycle
from alpha12.config import Settings
from alpha12.lab.policies import Seed, parse_policies
from alpha12.lab.runner import run_lab, scratch_monitor
from alpha12.lab.walk import MONITOR_STEP, PairWalk
from alpha12.sources.csv_files import read_bar_file
from alpha12.store import Store
from bench.timing import row

BTC_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "btcusdt"
POLICIES = "never,timer,rolling,seed,guarded"


def run(quick: bool = False) -> list[dict]:
    if not BTC_DIR.exists():
        return [row(f"lab: skipped, {BTC_DIR} not found", float("nan"), "s", "")]
    days = 60 if quick else 365
    hourly = _bars("1h", days)
    rows = [*_five_policies(hourly), *_naive_against_lab(_bars("1h", 30 if quick else 90))]
    rows.append(_five_minute_seed(_bars("5m", 7 if quick else days), hourly))
    return rows


def _bars(interval: str, days: int) -> pd.DataFrame:
    """The newest `days` of the shared BTC/USDT bars of one timeframe."""
    bars = read_bar_file(BTC_DIR / f"BTCUSDT_{interval}.csv", interval).bars
    newest = bars[bars["ts"] >= bars["ts"].iloc[-1] - pd.Timedelta(days=days)]
    newest = newest.reset_index(drop=True)
    newest.attrs["interval"] = interval  # for the rows' names
    return newest


def _settings(**changes) -> Settings:
    return dataclasses.replace(Settings(), assets=("BTCUSDT",), **changes)


def _span(bars: pd.DataFrame) -> str:
    """How much history `bars` hold, in words: '365 days of 1h bars (8,761)'."""
    days = round((bars["ts"].iloc[-1] - bars["ts"].iloc[0]) / pd.Timedelta(days=1))
    return f"{days} days of {bars.attrs['interval']} bars ({len(bars):,})"


def _five_policies(bars: pd.DataFrame) -> list[dict]:
    policies = parse_policies(POLICIES)
    fanned = _timed_lab(bars, "1h", policies, _settings(n_jobs=2))
    one_by_one = _timed_lab(bars, "1h", policies, _settings(n_jobs=1))
    return [
        row(
            f"lab: {_span(bars)} under {POLICIES}, 2 cores; reference one by one",
            fanned,
            "s",
            "<= 60 s",
            reference=one_by_one,
        )
    ]


def _timed_lab(bars: pd.DataFrame, interval: str, policies, settings: Settings) -> float:
    with _store_of(bars, interval) as store:
        started = time.perf_counter()
        run_lab(store, settings, [("BTCUSDT", interval)], policies, oracle_candidates=None)
        return time.perf_counter() - started


@contextmanager
def _store_of(bars: pd.DataFrame, interval: str) -> Iterator[Store]:
    """A throw-away store holding `bars` (the lab reads its pairs' bars from a store)."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.duckdb")
        try:
            store.upsert_bars("BTCUSDT", interval, bars)
            yield store
        finally:
            store.close()


def _five_minute_seed(bars: pd.DataFrame, hourly: pd.DataFrame) -> dict:
    """As `lab --policies seed` runs one part: alone, so its fits use both cores."""
    seconds = _timed_lab(bars, "5m", [Seed()], _settings())
    reference = _timed_lab(hourly, "1h", [Seed()], _settings())
    return row(
        f"lab: {_span(bars)} under seed; reference {_span(hourly)} under seed",
        seconds,
        "s",
        "<= 300 s",
        reference=reference,
    )


def _naive_against_lab(bars: pd.DataFrame) -> list[dict]:
    settings = _settings()
    lab, lab_trades = _walk_seconds(PairWalk, bars, settings)
    naive, naive_trades = _walk_seconds(NaiveWalk, bars, settings)
    if lab_trades != naive_trades:
        raise AssertionError(f"the naive loop traded {naive_trades}, the lab {lab_trades}")
    return [
        row(
            f"lab: walk of {len(bars):,} 1h bars under seed, against a naive per-bar loop "
            f"(same {lab_trades} trades)",
            lab,
            "s",
            "ratio <= 0.2 (5x faster)",
            reference=naive,
        )
    ]


def _walk_seconds(kind, bars: pd.DataFrame, settings: Settings) -> tuple[float, int]:
    with scratch_monitor(bars, settings, "BTCUSDT", "1h") as monitor:
        walk = kind(monitor, "BTCUSDT", "1h", Seed())
        started = time.perf_counter()
        walk.run()
        return time.perf_counter() - started, len(walk.trades)


class NaiveWalk(PairWalk):
    """The reference: the same walk, predicting one bar per model call and asking the
    monitor at every hourly check as the live monitor does, each decision written to the store
    when it is taken and the cooldown read back from it (what the lab batches and skips)."""

    def _remember(self, tick: pd.Timestamp, assessment, outcome) -> None:
        super()._remember(tick, assessment, outcome)
        self.record_decisions()

    def _last_attempt(self) -> pd.Timestamp | None:
        return self.monitor.store.last_attempt(self.asset, self.interval)

    def _walk(self, frame: pd.DataFrame, served) -> Iterator[None]:
        n = len(frame)
        probability, version = np.full(n, np.nan), np.full(n, np.nan)
        scope, generated = np.full(n, None, dtype=object), np.zeros(n, dtype=bool)
        busy_until = None
        tick = self.closes[self.start].ceil("1h")
        state = self.monitor_state(self.marks(frame, probability, version, scope))
        for m in range(self.start, len(self.bars)):
            while self.closes[m] > tick:  # every check up to this bar's close
                state["evaluated_trades"] = -1  # judged again whether or not trades changed
                served = self._monitor(tick, m, served, state) or served
                tick += MONITOR_STEP
                yield
            if busy_until is not None and busy_until <= self.closes[m]:
                busy_until = None
            p = cycle.predict(served, frame.iloc[[m - self.start]])[0]
            probability[m - self.start] = p
            version[m - self.start] = served.version if served else np.nan
            scope[m - self.start] = served.scope if served else None
            if busy_until is None and served is not None and not np.isnan(p):
                busy_until = self._trade(m, p, served)
                generated[m - self.start] = busy_until is not None
        return pd.DataFrame(
            {
                "probability": probability,
                "model_version": version,
                "model_scope": scope,
                "setup_generated": generated,
            }
        )
