"""The five timeframes alpha12 knows, and their lengths."""

import pandas as pd

INTERVALS: tuple[str, ...] = ("5m", "15m", "1h", "4h", "1d")

_DELTAS = {
    "5m": pd.Timedelta(minutes=5),
    "15m": pd.Timedelta(minutes=15),
    "1h": pd.Timedelta(hours=1),
    "4h": pd.Timedelta(hours=4),
    "1d": pd.Timedelta(days=1),
}


def interval_delta(interval: str) -> pd.Timedelta:
    """The length of one bar of `interval`; raises ValueError for an unknown timeframe."""
    try:
        return _DELTAS[interval]
    except KeyError:
        raise ValueError(f"unknown timeframe {interval!r}; expected one of {INTERVALS}") from None


def interval_seconds(interval: str) -> int:
    return int(interval_delta(interval).total_seconds())
