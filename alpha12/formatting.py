"""How numbers, times and durations read, on the pages and in the terminal alike: pure text
functions; a value that is not known reads as MISSING, never as a made-up number."""

from __future__ import annotations

import math

import pandas as pd

from alpha12.metrics import format_profit_factor

MISSING = "—"


def missing(value) -> bool:
    """None, NaN, NA or NaT."""
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def percent(value: float | None, digits: int = 1) -> str:
    """0.523 -> '52.3%'."""
    return MISSING if missing(value) or math.isinf(value) else f"{value:.{digits}%}"


def number(value: float | None, digits: int = 2) -> str:
    return MISSING if missing(value) else f"{value:.{digits}f}"


def interval(low: float | None, high: float | None, digits: int = 2, signed: bool = False) -> str:
    """(-0.1, 0.25) -> '[-0.10, 0.25]' (with `signed`, '[-0.10, +0.25]'); MISSING when either
    end is unknown."""
    if missing(low) or missing(high):
        return MISSING
    form = f"{'+' if signed else ''}.{digits}f"
    return f"[{low:{form}}, {high:{form}}]"


def band(low: float | None, high: float | None, show) -> str:
    """A 95% interval in a few characters, each end read by `show`: "[38–66]"; "" when
    either end is unknown."""
    if missing(low) or missing(high):
        return ""
    return f"[{show(low)}–{show(high)}]"


def percent_points(value: float) -> str:
    """0.384 -> '38' (a rate in whole percentage points, for an interval beside it)."""
    return f"{value * 100:.0f}"


def profit_factor(value: float | None) -> str:
    return MISSING if missing(value) else format_profit_factor(float(value))


def duration(seconds: float | None) -> str:
    """'45s', '2m 05s', '33h 25m', '3d 4h': the two largest units. Hours run to 47 so that a
    day and a half reads as '33h 25m', not '1d 9h'; a negative or infinite span is MISSING."""
    if missing(seconds) or not math.isfinite(seconds) or seconds < 0:
        return MISSING
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    hours, mins = divmod(minutes, 60)
    days, hrs = divmod(hours, 24)
    if whole < 60:
        return f"{secs}s"
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    if hours < 48:
        return f"{hours}h {mins:02d}m"
    return f"{days}d {hrs}h"


def timestamp(value) -> str:
    return MISSING if missing(value) else f"{pd.Timestamp(value):%Y-%m-%d %H:%M} UTC"
