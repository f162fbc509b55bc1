"""The best retraining schedule in hindsight: how much R a perfectly informed retrainer could
have earned, so every policy's regret can be stated.

After Mahadevan & Mathioudakis, "Cost-aware retraining for machine learning" (Knowledge-Based
Systems, 2024): the candidate retrain points are the monitor's hourly checks, thinned to an
even grid of at most K; a model is trained at each (same fit, same window as the walk), each
model's realised R over each stretch between consecutive candidates is measured (the product's
entry rule, one open setup at a time, the slot free at each stretch start), and a dynamic
programme chooses which model serves each stretch — keep the current one, or retrain at a cost
in R — to maximise total R minus retrain costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alpha12 import cycle, models, signals, snapshots
from alpha12.lab.policies import Policy
from alpha12.registry import ServedModel

CANDIDATES = 24
RETRAIN_COST_R = 0.0
# What a regret figure means, for whoever reads one: the oracle is the ceiling of schedules on
# its grid, not of every schedule, so a policy can beat it.
REGRET_MEANING = (
    "Regret R is the oracle's total R minus the policy's. The oracle picks the best schedule "
    f"of retrains at an even grid of the monitor's checks ({CANDIDATES} by default): the ceiling "
    "for schedules on that grid. A policy that retrained between its points can beat it; its "
    "regret is then negative."
)


@dataclass(frozen=True)
class OracleResult:
    total_r: float  # R earned by the schedule, before retrain costs
    objective: float  # total_r minus the cost of its retrains
    trades: int
    candidates: list[pd.Timestamp]  # the grid; stretch s runs from candidates[s] to the next
    serving: list[int]  # per stretch, the candidate index whose model serves it
    retrain_times: list[pd.Timestamp]
    gain: np.ndarray  # gain[j, s]: R of the model trained at candidate j over stretch s


def best_schedule(gain: np.ndarray, cost: float) -> tuple[float, list[int]]:
    """Maximise sum_s gain[serving[s], s] - cost * retrains over schedules where stretch 0 is
    served by model 0 and each later stretch s by the previous stretch's model or by model s
    (a retrain at s). `gain[j, s]` is R of model j over stretch s; -inf marks a model that
    could not be trained. Returns the best value and the serving model of each stretch."""
    stretches = gain.shape[1]
    value = np.full((stretches, stretches), -np.inf)  # value[s, j]: best with model j at s
    value[0, 0] = gain[0, 0]
    for s in range(1, stretches):
        value[s, :s] = value[s - 1, :s] + gain[:s, s]
        value[s, s] = value[s - 1].max() - cost + gain[s, s]
    serving = [int(np.argmax(value[-1]))]
    for s in range(stretches - 1, 0, -1):  # a model first serves at the stretch it was made
        serving.append(int(np.argmax(value[s - 1])) if serving[-1] == s else serving[-1])
    return float(value[-1].max()), serving[::-1]


def run(walk, policy: Policy, candidates: int = CANDIDATES, cost_r: float = RETRAIN_COST_R):
    """The oracle over a prepared whole-history PairWalk (not run) with `policy`'s window;
    None when not even the first model can be trained."""
    grid = _grid(walk, candidates)
    frame = walk.walked_features()
    closes = walk.closes.iloc[walk.start :].reset_index(drop=True)
    bounds = [*closes.searchsorted(grid[1:], side="right"), len(closes)]
    starts = [0, *bounds[:-1]]
    gain = np.full((len(grid), len(grid)), -np.inf)
    count = np.zeros((len(grid), len(grid)), dtype=int)
    for j, as_of in enumerate(grid):
        view = snapshots.as_of_view(
            walk.history, as_of, walk.timeframe.train_rows, policy.window_hours
        )
        result = walk.fit(view)
        if isinstance(result, models.Insufficient):
            continue
        probability = cycle.predict(ServedModel(result, walk.asset, walk.interval, j), frame)
        for s in range(j, len(grid)):
            gain[j, s], count[j, s] = _stretch(walk, probability, starts[s], bounds[s])
    if np.isneginf(gain[0, 0]):
        return None
    objective, serving = best_schedule(gain, cost_r)
    retrains = [s for s in range(1, len(grid)) if serving[s] != serving[s - 1]]
    return OracleResult(
        total_r=float(sum(gain[j, s] for s, j in enumerate(serving))),
        objective=objective,
        trades=int(sum(count[j, s] for s, j in enumerate(serving))),
        candidates=grid,
        serving=serving,
        retrain_times=[grid[s] for s in retrains],
        gain=gain,
    )


def _grid(walk, candidates: int) -> list[pd.Timestamp]:
    """The walk's start, then the hourly monitor checks thinned to an even grid."""
    ticks = pd.date_range(walk.closes[walk.start].ceil("1h"), walk.closes.iloc[-1], freq="1h")
    if len(ticks) == 0 or candidates < 2:
        return [walk.start_time]
    picked = np.unique(np.linspace(0, len(ticks) - 1, candidates)[1:].round().astype(int))
    return [walk.start_time, *ticks[picked]]


def _stretch(walk, probability: np.ndarray, first: int, end: int) -> tuple[float, int]:
    """R and closed trades of one model over walked bars [first, end): the product's entry
    rule, one open setup at a time, the slot free at `first`."""
    total, trades, busy_until = 0.0, 0, None
    for i in range(first, end):
        m = walk.start + i
        if busy_until is not None and busy_until > walk.closes[m]:
            continue
        setup = signals.make_setup(
            walk.asset,
            walk.interval,
            walk.bars["ts"].iloc[m],
            float(walk.bars["close"].iloc[m]),
            float(walk.atr[m]),
            probability[i],
            walk.timeframe,
            None,
            None,
        )
        busy_until = None
        if setup is None:
            continue
        result = walk.outcome[setup.direction].iloc[m]
        if pd.isna(result["target_ts"]):
            break  # open until the data ends: no R, and the slot never frees
        total, trades, busy_until = total + result["r_multiple"], trades + 1, result["target_ts"]
    return total, trades
