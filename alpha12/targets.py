"""Triple-barrier trade outcomes: the single source of truth for how a trade resolves.

The rule, for a long (a short is its mirror image): enter at the close of bar t with a
take-profit above and a stop below. Walk the next `horizon` bars; the first bar whose high
reaches the take-profit or whose low reaches the stop resolves the trade. A bar touching both
counts as the stop, because the bar alone cannot say which came first. A barrier fills at its
price, unless the bar opens beyond it: then it fills at the open (a gap makes a stop worse and a
take-profit better). With no touch, the trade exits at the close of bar t+horizon and the sign
of its net return decides the label. Outcomes not knowable yet stay NaN.
"""

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from alpha12.timeframes import interval_delta

TAKE_PROFIT = "take_profit"
STOP = "stop"
HORIZON = "horizon"

PRICE_COLUMNS = ("open", "high", "low", "close")  # a bar's prices, the barriers' path


def resolve_paths(
    entry: np.ndarray,
    take_profit: np.ndarray,
    stop: np.ndarray,
    direction: np.ndarray,
    path_open: np.ndarray,
    path_high: np.ndarray,
    path_low: np.ndarray,
    path_close: np.ndarray,
    round_trip_cost_bps: float = 0.0,
) -> dict[str, np.ndarray]:
    """Resolve n trades against the (n, H) paths of the H bars after each entry.

    direction is +1 (long) or -1 (short); path bars not known yet are NaN. Returns per trade:
    resolved (bool), exit_offset (index into the path, -1 if unresolved), exit_price,
    exit_reason ("take_profit", "stop", "horizon" or None), label (1.0 win, 0.0 loss, NaN
    unresolved) and pnl_pct (percent, net of the round-trip cost; NaN if unresolved).
    """
    entry, take_profit, stop, direction = (
        np.asarray(a, dtype=float) for a in (entry, take_profit, stop, direction)
    )
    path_open, path_high, path_low, path_close = (
        np.asarray(a, dtype=float) for a in (path_open, path_high, path_low, path_close)
    )
    n, horizon = path_close.shape
    if horizon < 1:
        raise ValueError("paths need at least one bar (horizon >= 1)")

    is_long = (direction > 0)[:, None]
    tp_level, stop_level = take_profit[:, None], stop[:, None]
    # A short's take-profit lies below its entry and its stop above: mirror the comparisons.
    reached_tp = np.where(is_long, path_high >= tp_level, path_low <= tp_level)
    reached_stop = np.where(is_long, path_low <= stop_level, path_high >= stop_level)
    known = _known_prefix(path_open, path_high, path_low, path_close)
    touched = (reached_tp | reached_stop) & known

    valid = np.isfinite(entry) & np.isfinite(take_profit) & np.isfinite(stop)
    valid &= np.abs(direction) == 1
    any_touch = touched.any(axis=1)
    by_barrier = valid & any_touch
    by_horizon = valid & ~any_touch & known[:, -1]

    first = touched.argmax(axis=1)
    rows = np.arange(n)
    is_stop = by_barrier & reached_stop[rows, first]
    is_tp = by_barrier & ~is_stop

    # Work in "long space" (prices times direction) so one min/max serves both sides.
    sign = np.sign(direction)
    gap_open = sign * path_open[rows, first]
    stop_fill = sign * np.minimum(sign * stop, gap_open)
    tp_fill = sign * np.maximum(sign * take_profit, gap_open)
    exit_price = np.select(
        [is_stop, is_tp, by_horizon], [stop_fill, tp_fill, path_close[:, -1]], np.nan
    )

    pnl_pct = sign * (exit_price - entry) / entry * 100.0 - round_trip_cost_bps / 100.0
    label = np.select([is_tp, is_stop, by_horizon], [1.0, 0.0, (pnl_pct > 0).astype(float)], np.nan)

    exit_reason = np.full(n, None, dtype=object)
    exit_reason[is_tp] = TAKE_PROFIT
    exit_reason[is_stop] = STOP
    exit_reason[by_horizon] = HORIZON

    return {
        "resolved": by_barrier | by_horizon,
        "exit_offset": np.select([by_barrier, by_horizon], [first, horizon - 1], -1),
        "exit_price": exit_price,
        "exit_reason": exit_reason,
        "label": label,
        "pnl_pct": pnl_pct,
    }


def triple_barrier(
    bars: pd.DataFrame,
    atr: np.ndarray | pd.Series,
    *,
    interval: str,
    tp_mult: float,
    sl_mult: float,
    horizon: int,
    direction: int = 1,
    round_trip_cost_bps: float = 0.0,
) -> pd.DataFrame:
    """The outcome of entering at every bar's close, indexed like `bars`.

    Barriers sit tp_mult and sl_mult ATRs from the entry. Columns: label, pnl_pct, r_multiple
    (pnl in units of the initial risk), exit_price, exit_reason (str, NaN while unresolved),
    target_ts (close time of the resolving bar, NaT while unknown), take_profit, stop. Rows
    without a positive ATR get NaN.
    """
    out = barrier_outcomes(
        bars,
        atr,
        interval=interval,
        tp_mult=tp_mult,
        sl_mult=sl_mult,
        horizon=horizon,
        direction=direction,
        round_trip_cost_bps=round_trip_cost_bps,
    )
    out["exit_reason"] = pd.array(out["exit_reason"], dtype="str")
    return pd.DataFrame(out, index=bars.index)


def barrier_outcomes(
    bars: pd.DataFrame,
    atr: np.ndarray | pd.Series,
    *,
    interval: str,
    tp_mult: float,
    sl_mult: float,
    horizon: int,
    direction: int = 1,
    round_trip_cost_bps: float = 0.0,
) -> dict[str, np.ndarray | pd.DatetimeIndex]:
    """triple_barrier's columns as arrays (target_ts a DatetimeArray), without building a
    frame: the live cycle settles a few recent rows of hundreds of pairs at once."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if direction not in (1, -1):
        raise ValueError(f"direction must be 1 or -1, got {direction}")
    if tp_mult <= 0 or sl_mult <= 0:
        raise ValueError("tp_mult and sl_mult must be positive")
    atr = np.asarray(atr, dtype=float)
    if atr.shape != (len(bars),):
        raise ValueError(f"atr has shape {atr.shape}, bars have {len(bars)} rows")

    entry = bars["close"].to_numpy(dtype=float)
    # A zero ATR defines no risk to measure R against, so such a bar gets no trade.
    risk = np.where(atr > 0, atr, np.nan)
    take_profit = entry + direction * tp_mult * risk
    stop = entry - direction * sl_mult * risk
    paths = (_forward_windows(bars[c].to_numpy(dtype=float), horizon) for c in PRICE_COLUMNS)
    out = resolve_paths(
        entry,
        take_profit,
        stop,
        np.full(len(bars), float(direction)),
        *paths,
        round_trip_cost_bps=round_trip_cost_bps,
    )

    # The resolving bar of each row, -1 (NaT) while unresolved: one take, not a where.
    exit_bar = np.where(out["resolved"], np.arange(len(bars)) + 1 + out["exit_offset"], -1)
    bar_close = pd.DatetimeIndex(bars["ts"]).array + interval_delta(interval)
    return {
        "label": out["label"],
        "pnl_pct": out["pnl_pct"],
        "r_multiple": out["pnl_pct"] / (100.0 * sl_mult * risk / entry),
        "exit_price": out["exit_price"],
        "exit_reason": out["exit_reason"],
        "target_ts": bar_close.take(exit_bar, allow_fill=True),
        "take_profit": take_profit,
        "stop": stop,
    }


def end_to_end(arrays: list[np.ndarray], gap: int) -> np.ndarray:
    """The arrays joined, each followed by `gap` unknown values (NaN, or NaT for times). Many
    series laid end to end like this are walked at once: a path of at most `gap` bars stops at
    the unknown values, as it does at the end of one series, and never reaches the next."""
    unknown = np.full(gap, np.datetime64("NaT", "us") if arrays[0].dtype.kind == "M" else np.nan)
    return np.concatenate([piece for array in arrays for piece in (array, unknown)])


def _forward_windows(values: np.ndarray, horizon: int) -> np.ndarray:
    """Row t holds values[t+1 : t+1+horizon], NaN-padded past the end (a view, no copy)."""
    padded = np.concatenate([values[1:], np.full(horizon, np.nan)])
    return sliding_window_view(padded, horizon)[: len(values)]


def _known_prefix(*paths: np.ndarray) -> np.ndarray:
    """True for path bars that are known and follow only known bars.

    A hole in the data must not let a later bar resolve a trade whose earlier bars are unseen.
    """
    known = np.isfinite(paths[0])
    for path in paths[1:]:
        known &= np.isfinite(path)
    return np.logical_and.accumulate(known, axis=1)
