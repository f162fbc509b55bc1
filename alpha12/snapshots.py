"""The maths of feature snapshots and their targets: the rows of a whole history in one pass,
the rows of a live tail, the targets a new bar settles, and what a model may learn from.

A snapshot row holds bar t's 39 features (from bars <= t), the serving model's probability and
whether a setup was generated; its target (the long triple-barrier outcome) is filled only
once it is known, with `target_ts` saying when that was.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from alpha12 import features, targets
from alpha12.config import Settings, TimeframeSettings

SNAPSHOT_SOURCE = "background_analysis"
TARGET_COLUMNS = ("target", "target_ts", "pnl_pct")
STORED_DIGITS = 4  # significant digits of a stored feature (see stored_values)


def outcomes(
    bars: pd.DataFrame,
    interval: str,
    timeframe: TimeframeSettings,
    round_trip_cost_bps: float,
    direction: int = 1,
    last: int | None = None,
) -> pd.DataFrame:
    """Triple-barrier outcomes of a setup at every bar (or only the `last` bars), barriers
    from the bar's ATR(14) over all of `bars`."""
    return targets.triple_barrier(
        *_with_atr(bars, last), **_barriers(interval, timeframe, round_trip_cost_bps, direction)
    )


def _with_atr(bars: pd.DataFrame, last: int | None) -> tuple[pd.DataFrame, np.ndarray]:
    """The bars (or only the `last` of them) and their ATR(14) over all of `bars`."""
    atr = features.atr(bars["high"], bars["low"], bars["close"])
    return (bars, atr) if last is None else (bars.iloc[-last:], atr[-last:])


def _barriers(
    interval: str, timeframe: TimeframeSettings, round_trip_cost_bps: float, direction: int
) -> dict:
    return {
        "interval": interval,
        "tp_mult": timeframe.tp_mult,
        "sl_mult": timeframe.sl_mult,
        "horizon": timeframe.horizon_bars,
        "direction": direction,
        "round_trip_cost_bps": round_trip_cost_bps,
    }


def snapshot_rows(bars: pd.DataFrame, interval: str, settings: Settings) -> pd.DataFrame:
    """Features and (where known) long targets for every bar of `bars`, in one pass."""
    table = features.compute_features(bars)
    table.insert(0, "ts", bars["ts"].to_numpy())
    known = outcomes(bars, interval, settings.timeframe(interval), settings.round_trip_cost_bps)
    table["target"] = known["label"].to_numpy()
    table["target_ts"] = known["target_ts"].to_numpy()
    table["pnl_pct"] = known["pnl_pct"].to_numpy()
    return table


def for_pair(rows: pd.DataFrame, asset: str, interval: str) -> pd.DataFrame:
    """`rows` tagged with their pair, as the snapshot writes take them."""
    return rows.assign(asset=asset, interval=interval)


def stored_values(values: np.ndarray) -> np.ndarray:
    """Feature values as stored: STORED_DIGITS significant digits in float32. Far below what
    the models can tell apart (their trees split on 63 bins), and it lets DuckDB compress the
    features to about 2.9 bytes a value instead of 4."""
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.floor(np.log10(np.abs(values)))
    scale = 10.0 ** (STORED_DIGITS - 1 - np.where(np.isfinite(magnitude), magnitude, 0))
    rounded = np.round(values * scale) / scale
    return rounded.astype("float32").astype("float64")


def tail_features(bars: pd.DataFrame, pending: int) -> np.ndarray:
    """The features of the last `pending` bars of a tail, one row per bar (FEATURE_NAMES
    order); the newest bar alone from its last TAIL_BARS bars, as latest_features does."""
    if pending == 1:
        return features.latest_values(bars)[np.newaxis, :]
    return features.feature_matrix(bars)[:, -pending:].T


def utc_micros(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Times as naive UTC datetime64[us] (what bars and snapshots store), cheap to join across
    pairs; `as_utc` turns them back."""
    return ts.to_numpy(dtype="datetime64[us]")


def as_utc(times: np.ndarray) -> pd.Series:
    return pd.Series(times).dt.tz_localize("UTC")


def matured_targets(bars: pd.DataFrame, interval: str, settings: Settings) -> dict[str, np.ndarray]:
    """The targets the newest bars of a tail may have settled, as arrays: ts, target,
    target_ts (see utc_micros) and pnl_pct."""
    return matured_targets_of([bars], interval, settings)[0]


def matured_targets_of(
    tails: Sequence[pd.DataFrame], interval: str, settings: Settings
) -> list[dict[str, np.ndarray]]:
    """matured_targets of many tails of one timeframe, in one barrier walk over their recent
    bars laid end to end, with `horizon` unknown bars after each: a trade's path stops at
    those, as it does at the end of a single tail, so no path runs into the next tail."""
    timeframe = settings.timeframe(interval)
    recent, gap = (timeframe.horizon_bars + 2) * 4, timeframe.horizon_bars
    parts = [_recent_prices(tail, recent) for tail in tails]
    joined = pd.DataFrame(
        {column: targets.end_to_end([part[column] for part in parts], gap) for column in parts[0]}
    )
    known = targets.barrier_outcomes(
        joined,
        joined.pop("atr").to_numpy(),
        **_barriers(interval, timeframe, settings.round_trip_cost_bps, 1),
    )
    target_ts = utc_micros(known["target_ts"])
    matured, start = [], 0
    for part in parts:
        rows = slice(start, start + len(part["ts"]))
        start = rows.stop + gap
        matured.append(
            {
                "ts": part["ts"],
                "target": known["label"][rows],
                "target_ts": target_ts[rows],
                "pnl_pct": known["pnl_pct"][rows],
            }
        )
    return matured


def _recent_prices(bars: pd.DataFrame, recent: int) -> dict[str, np.ndarray]:
    """The last `recent` bars' times (utc_micros), prices and ATR(14) over all of `bars`."""
    prices = {column: bars[column].to_numpy(dtype=np.float64) for column in targets.PRICE_COLUMNS}
    prices["atr"] = features.atr(prices["high"], prices["low"], prices["close"])
    return {"ts": utc_micros(bars["ts"])[-recent:]} | {k: v[-recent:] for k, v in prices.items()}


def with_short_outcomes(
    labelled: pd.DataFrame, bars: pd.DataFrame, interval: str, settings: Settings
) -> pd.DataFrame:
    """Labelled snapshots (ts, target_ts, label, pnl_long, features) with the short setup's
    outcome at each bar added: short_target_ts and pnl_short, from the pair's `bars`."""
    short = outcomes(
        bars, interval, settings.timeframe(interval), settings.round_trip_cost_bps, direction=-1
    ).set_index(bars["ts"])
    return labelled.assign(
        short_target_ts=short["target_ts"].reindex(labelled["ts"]).to_numpy(),
        pnl_short=short["pnl_pct"].reindex(labelled["ts"]).to_numpy(),
    )


def as_of_view(
    history: pd.DataFrame,
    as_of: pd.Timestamp,
    rows: int,
    hours: float | None = None,
) -> pd.DataFrame:
    """What a model trained at `as_of` may see: labels known by then, the most recent `rows`
    (the timeframe's `train_rows`, so a retrain follows the current regime; given `hours`,
    only bars of that much market time before `as_of`), and short outcomes only where they
    too were known."""
    known = history[history["target_ts"] <= as_of]
    if hours is not None:
        known = known[known["ts"] > as_of - pd.Timedelta(hours=hours)]
    view = known.iloc[-rows:].copy()
    view.loc[~(view["short_target_ts"] <= as_of), "pnl_short"] = np.nan
    return view.drop(columns="short_target_ts").reset_index(drop=True)
