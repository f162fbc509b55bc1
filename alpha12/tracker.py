"""Setups -> resolved trades, with the very rule that labels the targets (targets.resolve_paths),
net of fees and slippage."""

from __future__ import annotations

import numpy as np
import pandas as pd

from alpha12.targets import resolve_paths
from alpha12.timeframes import interval_delta


def resolve(
    setups: pd.DataFrame,
    bars: pd.DataFrame,
    interval: str,
    horizon: int,
    round_trip_cost_bps: float,
) -> pd.DataFrame:
    """Outcomes of the `setups` (rows with id, ts, direction, entry, stop, take_profit) that
    `bars` resolve; unresolved setups are left out.

    Columns: id, exit_ts (close of the resolving bar), exit_price, exit_reason, pnl_pct,
    r_multiple, outcome ("win"/"loss").
    """
    if setups.empty or bars.empty:
        return pd.DataFrame(
            columns=[
                "id",
                "exit_ts",
                "exit_price",
                "exit_reason",
                "pnl_pct",
                "r_multiple",
                "outcome",
            ]
        )
    # A DatetimeIndex, not .to_numpy(): tz-aware times come out of numpy as objects, which
    # cannot be added to a timedelta.
    bar_open = pd.DatetimeIndex(bars["ts"])
    first = bar_open.searchsorted(pd.DatetimeIndex(setups["ts"]), side="right")
    paths = _paths(first, bars, horizon)
    entry = setups["entry"].to_numpy(dtype="float64")
    stop = setups["stop"].to_numpy(dtype="float64")
    result = resolve_paths(
        entry,
        setups["take_profit"].to_numpy(dtype="float64"),
        stop,
        setups["direction"].to_numpy(dtype="float64"),
        *paths,
        round_trip_cost_bps=round_trip_cost_bps,
    )
    done = result["resolved"]
    exit_ts = bar_open[first[done] + result["exit_offset"][done]] + interval_delta(interval)
    risk_pct = 100 * np.abs(entry - stop)[done] / entry[done]
    return pd.DataFrame(
        {
            "id": setups["id"].to_numpy()[done],
            "exit_ts": exit_ts,
            "exit_price": result["exit_price"][done],
            "exit_reason": result["exit_reason"][done],
            "pnl_pct": result["pnl_pct"][done],
            "r_multiple": result["pnl_pct"][done] / risk_pct,
            "outcome": np.where(result["label"][done] == 1, "win", "loss"),
        }
    )


def _paths(first: np.ndarray, bars: pd.DataFrame, horizon: int) -> list[np.ndarray]:
    """(n, horizon) open/high/low/close of the `horizon` bars from each index in `first`
    (the bar after each entry bar); NaN where unknown."""
    index = first[:, None] + np.arange(horizon)[None, :]
    known = index < len(bars)
    safe = np.where(known, index, 0)
    return [
        np.where(known, bars[c].to_numpy(dtype="float64")[safe], np.nan)
        for c in ("open", "high", "low", "close")
    ]
