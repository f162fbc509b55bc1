"""Run the lab: every (pair, policy) replayed on its own scratch store through the live code
path, fanned out through the training backend, then summarised with error bars.

Each part gets plain data (the pair's bars and the settings) and builds its own scratch
context: a temporary folder with a fresh DuckDB store and models folder, a PerformanceMonitor
over them with a ManualClock. The bars are upserted there, snapshots backfilled, and the
whole-history PairWalk runs under the policy. So features, targets, the entry rule, costs, the
Assessment, cooldowns and the challenger gate are the product's own. The folder is always
deleted; the live store is only read.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from alpha12 import cycle, training
from alpha12.clock import ManualClock, WallClock
from alpha12.config import Settings
from alpha12.features import WARMUP_BARS
from alpha12.lab import oracle, stats
from alpha12.lab.policies import Custom, Policy, Seed
from alpha12.lab.walk import PairWalk
from alpha12.monitor import PerformanceMonitor
from alpha12.registry import Registry
from alpha12.store import Store
from alpha12.timeframes import interval_delta
from alpha12.vocabulary import ATTEMPTS, PROMOTIONS, Pair

ORACLE = "oracle"
BLOCK_HORIZONS = 3  # the paired bootstrap's block: a few trade horizons of bars
TRADE_COLUMNS = ["ts", "exit_ts", "direction", "r_multiple", "pnl_pct", "model_version"]

Key = tuple[str, str, str]  # asset, interval, policy name


@dataclass
class Part:
    """One replay's result, plain data: what the caller keeps to resume a run."""

    asset: str
    interval: str
    policy: str
    params: dict
    trades: pd.DataFrame  # closed trades, TRADE_COLUMNS
    decisions: pd.DataFrame  # the walk's monitor decisions (PairWalk.decisions)
    start: pd.Timestamp | None  # the first walked bar's open time; None: nothing walked
    seconds: float
    message: str
    oracle: oracle.OracleResult | None = None

    @property
    def key(self) -> Key:
        return (self.asset, self.interval, self.policy)

    @property
    def retrain_times(self) -> list[pd.Timestamp]:
        """When the policy attempted a retrain (the first model, common to all, excluded)."""
        later = self.decisions.iloc[1:]
        return list(later.loc[later["action"].isin(ATTEMPTS), "ts"]) if len(later) else []

    @property
    def promotions(self) -> int:
        later = self.decisions.iloc[1:]
        return int(later["action"].isin(PROMOTIONS).sum()) if len(later) else 0


@dataclass
class LabRun:
    table: pd.DataFrame  # stats.COLUMNS, one row per pair and policy
    parts: dict[Key, Part]
    sentences: dict[Pair, str] = field(default_factory=dict)
    problems: dict[Pair, str] = field(default_factory=dict)  # pairs the lab could not walk
    gaps: dict[Pair, dict] = field(default_factory=dict)  # count and longest gap in the bars
    stopped: bool = False

    def curves(self, asset: str, interval: str) -> tuple[dict, dict]:
        """The pair's equity curves and retrain times by policy, as figures.equity_chart
        takes them."""
        mine = {k[2]: p for k, p in self.parts.items() if k[:2] == (asset, interval)}
        walked = {name: p for name, p in mine.items() if name != ORACLE and p.start is not None}
        return (
            {name: stats.equity(p.trades) for name, p in walked.items()},
            {name: p.retrain_times for name, p in walked.items()},
        )

    def oracle(self, asset: str, interval: str) -> oracle.OracleResult | None:
        part = self.parts.get((asset, interval, ORACLE))
        return part.oracle if part else None


def run_lab(
    store: Store,
    settings: Settings,
    pairs: list[Pair],
    policies: list[Policy],
    progress: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    done: Mapping[Key, Part] | None = None,
    oracle_candidates: int | None = oracle.CANDIDATES,
    retrain_cost_r: float = oracle.RETRAIN_COST_R,
    on_part: Callable[[Part], None] | None = None,
    until: pd.Timestamp | None = None,
) -> LabRun:
    """Replay every pair under every policy (and the oracle, unless oracle_candidates is None).
    The parts run side by side, each started as a worker frees up (no part waits for a slower
    one beside it); once should_stop() says so none starts, and the running ones finish and
    are kept. Parts in `done` (a previous run's LabRun.parts) are kept and not run again.
    `on_part` sees each part as it finishes; `until` pins the bars to those opened by then, so
    a resumed run walks the data its finished parts walked."""
    progress = progress or (lambda _fraction, _message: None)
    should_stop = should_stop or (lambda: False)
    on_part = on_part or (lambda _part: None)
    parts = dict(done or {})
    bars = {pair: store.read_bars(*pair, end=until) for pair in pairs}
    jobs = [(pair, p) for pair in pairs for p in policies]
    if oracle_candidates:
        jobs += [(pair, None) for pair in pairs]
    todo = [(pair, p) for pair, p in jobs if (*pair, p.name if p else ORACLE) not in parts]
    stopped = False

    def tasks() -> Iterator[tuple]:
        """The parts, each read when a worker frees up: none once should_stop() says so."""
        nonlocal stopped
        for index, (pair, p) in enumerate(todo):
            if should_stop():
                stopped = True
                return
            workers = training.spare_cores(settings, len(todo) - index)
            yield bars[pair], settings, *pair, p, oracle_candidates, retrain_cost_r, workers

    for finished, part in enumerate(
        training.results_as_done(replay, tasks(), len(todo), settings), start=1
    ):
        on_part(part)
        parts[part.key] = part
        progress(finished / len(todo), f"replayed {len(parts)} of {len(jobs)} parts")
    asked = [(*pair, p.name if p else ORACLE) for pair, p in jobs]  # the table's order
    parts = {**{key: parts[key] for key in asked if key in parts}, **parts}
    run = summarise(parts, bars, settings)
    run.gaps = {pair: gaps(frame, pair[1]) for pair, frame in bars.items()}
    run.stopped = stopped
    return run


def summarise(parts: dict[Key, Part], bars: dict[Pair, pd.DataFrame], settings: Settings) -> LabRun:
    """The table, sentences and problems of the finished parts of the pairs in `bars`."""
    run = LabRun(stats.table([]), parts)
    rows = []
    for (asset, interval), pair_bars in bars.items():
        mine = {k[2]: p for k, p in parts.items() if k[:2] == (asset, interval)}
        walked = {name: p for name, p in mine.items() if name != ORACLE and p.start is not None}
        unwalked = [p for name, p in mine.items() if p.start is None]
        if unwalked:
            run.problems[(asset, interval)] = unwalked[0].message
        if not walked:
            continue
        start = min(p.start for p in walked.values())
        bar_ts = pair_bars.loc[pair_bars["ts"] >= start, "ts"].reset_index(drop=True)
        best = mine.get(ORACLE)
        runs = {
            name: {
                "params": p.params,
                "trades": p.trades,
                "retrains": len(p.retrain_times),
                "promotions": p.promotions,
                "seconds": p.seconds,
            }
            for name, p in walked.items()
        }
        block = BLOCK_HORIZONS * settings.timeframe(interval).horizon_bars
        total = best.oracle.total_r if best and best.oracle else None
        pair_rows = stats.pair_rows(asset, interval, runs, bar_ts, block, total)
        run.sentences[(asset, interval)] = stats.verdict(stats.table(pair_rows))
        rows += pair_rows
    run.table = stats.table(rows)
    return run


def replay(
    bars: pd.DataFrame,
    settings: Settings,
    asset: str,
    interval: str,
    policy: Policy | None,
    oracle_candidates: int | None,
    retrain_cost_r: float,
    workers: int = 1,
) -> Part:
    """One part on its own scratch store: the policy's walk, or (policy None) the oracle;
    `workers` processes per fit (models.fit)."""
    started = time.perf_counter()
    name = policy.name if policy else ORACLE
    with scratch_monitor(bars, settings, asset, interval) as monitor:
        walk = PairWalk(monitor, asset, interval, policy or Seed(), workers=workers)
        if walk.start is None:
            message = too_little_history(asset, interval, len(bars), settings)
            return Part(asset, interval, name, {}, _trades([]), pd.DataFrame(), None, 0.0, message)
        if policy is None:
            best = oracle.run(walk, Seed(), oracle_candidates, retrain_cost_r)
            message = "no first model" if best is None else f"{best.trades} trades"
            trades, decisions = _trades([]), pd.DataFrame()
        else:
            best, message = None, walk.run()
            trades, decisions = _trades(walk.trades), pd.DataFrame(walk.decisions)
        start = walk.bars["ts"].iloc[walk.start]
        # the window it trained on, the timeframe's train_rows when the policy names none
        window = {"window_rows": walk.timeframe.train_rows}
    return Part(
        asset,
        interval,
        name,
        {**policy.params(), **window}
        if policy
        else {"candidates": oracle_candidates, "cost_r": retrain_cost_r},
        trades,
        decisions,
        start,
        time.perf_counter() - started,
        message,
        best,
    )


@contextmanager
def scratch_monitor(
    bars: pd.DataFrame, settings: Settings, asset: str, interval: str
) -> Iterator[PerformanceMonitor]:
    """A PerformanceMonitor over a fresh store and models folder holding only `bars`, in a
    temporary folder that is deleted however the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="alpha12-lab-"))
    try:
        scratch = dataclasses.replace(
            settings, db_path=folder / "lab.duckdb", models_dir=folder / "models"
        )
        store = Store(scratch.db_path)
        try:
            store.upsert_bars(asset, interval, bars)
            cycle.backfill_pair(store, scratch, asset, interval)
            clock = ManualClock(bars["ts"].iloc[-1] if len(bars) else WallClock().now())
            registry = Registry(scratch.models_dir, store, clock)
            yield PerformanceMonitor(store, registry, lambda: scratch, clock)
        finally:
            store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def too_little_history(asset: str, interval: str, have: int, settings: Settings) -> str:
    """Why a pair cannot be walked: the bars a first model needs (feature warm-up, min_rows
    labelled rows, one horizon for the last label, one bar to trade) against the bars stored."""
    timeframe = settings.timeframe(interval)
    need = WARMUP_BARS + timeframe.min_rows + timeframe.horizon_bars + 1
    return (
        f"{asset} {interval}: too little history for a first model: it needs at least "
        f"{need} bars, there are {have}"
    )


def gaps(bars: pd.DataFrame, interval: str) -> dict:
    """Missing stretches in the bars (walked across as they are, never filled in)."""
    step = bars["ts"].diff().dropna()
    missing = step[step > interval_delta(interval)]
    return {
        "count": len(missing),
        "longest": missing.max() - interval_delta(interval) if len(missing) else pd.Timedelta(0),
    }


def sweep(
    store: Store,
    settings: Settings,
    pair: Pair,
    win_rates: list[float],
    cooldowns: list[float],
    progress: Callable[[float, str], None] | None = None,
) -> pd.DataFrame:
    """The custom policy over a grid of win-rate thresholds and cooldowns: per cell the
    expectancy in R, the trades and the retrains."""
    grid = sweep_grid(win_rates, cooldowns)
    run = run_lab(store, settings, [pair], grid, progress, oracle_candidates=None)
    return sweep_table(run.table)


def sweep_grid(win_rates: list[float], cooldowns: list[float]) -> list[Custom]:
    """The custom policies of a sweep: every win-rate threshold with every cooldown."""
    return [Custom(win_rate=w, cooldown_hours=c) for w in win_rates for c in cooldowns]


def sweep_table(table: pd.DataFrame) -> pd.DataFrame:
    """A sweep's cells from a results table: per custom policy with a win-rate threshold and a
    cooldown, the expectancy in R, the trades and the retrains (as figures.sweep_heatmap
    takes them)."""
    cells = [
        {
            "win_rate": row["params"]["win_rate"],
            "cooldown_hours": row["params"]["cooldown_hours"],
            "expectancy_r": row["expectancy_r"],
            "trades": row["trades"],
            "retrains": row["retrains"],
        }
        for row in table.to_dict("records")
        if row["policy"].startswith(Custom.kind)
        and row["params"].get("win_rate") is not None
        and row["params"].get("cooldown_hours") is not None
    ]
    columns = ["win_rate", "cooldown_hours", "expectancy_r", "trades", "retrains"]
    return pd.DataFrame(cells, columns=columns)


def _trades(trades: list[dict]) -> pd.DataFrame:
    """The walk's closed real trades (a shadow trade risked nothing)."""
    closed = [t for t in trades if t["status"] == "closed" and not t["shadow"]]
    return pd.DataFrame(closed, columns=TRADE_COLUMNS).reset_index(drop=True)
