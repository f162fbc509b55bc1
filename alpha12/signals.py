"""Predictions -> trade setups: a long when the calibrated win probability is high enough,
a short (mirrored barriers) when it is low enough, entry at the bar's close. A shadow setup is
the same setup, traded on paper only (see `trades_for_real`)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pandas as pd

from alpha12 import metrics
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
    shadow: bool = False  # a would-be trade: resolved like a real one, never counted as one

    def as_row(self) -> dict:
        # Not dataclasses.asdict: it deep-copies each field, and a Timestamp's copy costs more
        # than the whole setup (the fields are immutable anyway).
        return {field.name: getattr(self, field.name) for field in fields(self)}


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
    shadow: bool = False,
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
        shadow=shadow,
    )


def trades_for_real(timeframe: TimeframeSettings, model_metrics: dict) -> bool:
    """Whether a serving model's setups are real: always, unless the timeframe does not trade
    without an edge and the model shows none (metrics.edge_verdict); then they open in shadow,
    so the monitor still judges (and can retrain) the model by them."""
    return timeframe.trade_without_edge or not metrics.edge_verdict(model_metrics)[0]
