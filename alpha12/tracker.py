"""Setups -> resolved trades, with the very rule that labels the targets (targets.resolve_paths),
net of fees and slippage."""

from __future__ import annotations

import numpy as np
import pandas as pd

from alpha12.targets import PRICE_COLUMNS, end_to_end, resolve_paths
from alpha12.timeframes import interval_delta

_EXIT_COLUMNS = ["id", "exit_ts", "exit_price", "exit_reason", "pnl_pct", "r_multiple", "outcome"]


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
    return resolve_many([(setups, bars)], interval, horizon, round_trip_cost_bps)[0]


def resolve_many(
    books: list[tuple[pd.DataFrame, pd.DataFrame]],
    interval: str,
    horizon: int,
    round_trip_cost_bps: float,
) -> list[pd.DataFrame]:
    """resolve of each (setups, bars) of one timeframe, in one walk over all their bars laid
    end to end with `horizon` unknown bars after each: a path stops at those, as it does at
    the end of one pair's bars, so no trade runs on into the next pair's."""
    firsts, offset = [], 0
    for setups, bars in books:
        # A DatetimeIndex, not .to_numpy(): tz-aware times come out of numpy as objects.
        bar_open = pd.DatetimeIndex(bars["ts"]) if len(bars) else pd.DatetimeIndex([], tz="UTC")
        opened = pd.DatetimeIndex(setups["ts"]) if len(setups) else bar_open[:0]
        firsts.append(offset + bar_open.searchsorted(opened, side="right"))
        offset += len(bars) + horizon
    first = np.concatenate(firsts).astype(np.int64)
    if not len(first):
        return [pd.DataFrame(columns=_EXIT_COLUMNS) for _ in books]
    every = pd.concat([setups for setups, _ in books if len(setups)])
    joined = {
        column: end_to_end([_column(bars, column) for _, bars in books], horizon)
        for column in (*PRICE_COLUMNS, "ts")
    }
    entry = every["entry"].to_numpy(dtype="float64")
    stop = every["stop"].to_numpy(dtype="float64")
    result = resolve_paths(
        entry,
        every["take_profit"].to_numpy(dtype="float64"),
        stop,
        every["direction"].to_numpy(dtype="float64"),
        *_paths(first, joined, horizon),
        round_trip_cost_bps=round_trip_cost_bps,
    )
    done = result["resolved"]
    exit_bar = first + np.where(done, result["exit_offset"], 0)
    exit_ts = pd.DatetimeIndex(joined["ts"][exit_bar]).tz_localize("UTC") + interval_delta(interval)
    risk_pct = 100 * np.abs(entry - stop) / entry
    exits = pd.DataFrame(
        {
            "id": every["id"].to_numpy(),
            "exit_ts": exit_ts,
            "exit_price": result["exit_price"],
            "exit_reason": result["exit_reason"],
            "pnl_pct": result["pnl_pct"],
            "r_multiple": result["pnl_pct"] / risk_pct,
            "outcome": np.where(result["label"] == 1, "win", "loss"),
        }
    )
    # Each book's exits are one slice of the resolved rows, in the books' order.
    owner = np.repeat(np.arange(len(books)), [len(setups) for setups, _ in books])[done]
    ends = np.cumsum(np.bincount(owner, minlength=len(books)))
    resolved = exits[done]
    return [
        resolved.iloc[start:end].reset_index(drop=True)
        for start, end in zip(np.r_[0, ends[:-1]], ends, strict=True)
    ]


def _paths(first: np.ndarray, prices: dict[str, np.ndarray], horizon: int) -> list[np.ndarray]:
    """(n, horizon) open/high/low/close of the `horizon` bars from each index in `first`
    (the bar after each entry bar); NaN where unknown."""
    index = first[:, None] + np.arange(horizon)[None, :]
    known = index < len(prices["close"])
    safe = np.where(known, index, 0)
    return [np.where(known, prices[c][safe], np.nan) for c in PRICE_COLUMNS]


def _column(bars: pd.DataFrame, column: str) -> np.ndarray:
    """A price column as floats, or the open times as naive UTC microseconds."""
    dtype = "datetime64[us]" if column == "ts" else "float64"
    return bars[column].to_numpy(dtype=dtype) if len(bars) else np.empty(0, dtype)
