"""Predictions -> trade setups: a long when the calibrated win probability is high enough,
a short (mirrored barriers) when it is low enough, entry at the bar's close."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from alpha12.config import TimeframeSettings
from alpha12.timeframes import interval_delta

LONG, SHORT, FLAT = 1, -1, 0


@dataclass(frozen=True)
class Setup:
    asset: str
    interval: str
    ts: pd.Timestamp  # the entry bar's open time; entry is at its close
    direction: int
    entry: float
    stop: float
    take_profit: float
    atr: float
    expires_ts: pd.Timestamp  # close of the last bar of the horizon
    probability: float
    model_version: int | None
    model_scope: str | None
    origin: str = "live"  # or "warm_start"

    def as_row(self) -> dict:
        return asdict(self)


def direction_for(probability: float, entry_threshold: float) -> int:
    """LONG at or above the threshold, SHORT at or below its mirror, else FLAT."""
    if probability >= entry_threshold:
        return LONG
    # The long test applied to 1 - p: in floats 1 - 0.55 is 0.4499..., so `p <= 1 - threshold`
    # would leave a probability of exactly 0.45 flat.
    if 1 - probability >= entry_threshold:
        return SHORT
    return FLAT


def make_setup(
    asset: str,
    interval: str,
    ts: pd.Timestamp,
    close: float,
    atr: float,
    probability: float,
    timeframe: TimeframeSettings,
    model_version: int | None,
    model_scope: str | None,
    origin: str = "live",
) -> Setup | None:
    """The setup this prediction calls for, or None (no edge, or no usable ATR)."""
    direction = direction_for(probability, timeframe.entry_threshold)
    if direction == FLAT or not atr > 0:
        return None
    return Setup(
        asset=asset,
        interval=interval,
        ts=ts,
        direction=direction,
        entry=close,
        stop=close - direction * timeframe.sl_mult * atr,
        take_profit=close + direction * timeframe.tp_mult * atr,
        atr=atr,
        expires_ts=ts + (timeframe.horizon_bars + 1) * interval_delta(interval),
        probability=float(probability),
        model_version=model_version,
        model_scope=model_scope,
        origin=origin,
    )
