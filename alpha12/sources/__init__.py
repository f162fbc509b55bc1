"""Market-data sources behind one small interface, and the factory that picks one from settings.

A source answers `fetch(asset, interval, start, end)` with the bars it has whose close time is
at or before `end` (never a still-forming bar). Temporary failures (rate limits, empty answers,
network trouble) raise `TemporarySourceError`, which the collector backs off from; anything
else raises `SourceError`.
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from alpha12.calendars import ALWAYS_OPEN, get
from alpha12.errors import TransientError
from alpha12.timeframes import interval_delta


class SourceError(TransientError):
    """The source cannot serve this request."""


class TemporarySourceError(SourceError):
    """The source may serve this request later (rate limit, empty answer, network)."""


class Source(Protocol):
    name: str  # shown to the user, e.g. "synthetic replay (not live)"
    live: bool  # False for replayed data: the UI and CLI must say so

    def fetch(
        self, asset: str, interval: str, start: pd.Timestamp | None, end: pd.Timestamp
    ) -> pd.DataFrame: ...

    # A source that can answer many pairs in one request also offers
    # fetch_many({(asset, interval): start}, end) -> {(asset, interval): frame or exception},
    # each pair's failure its own; the collector then asks it once per pass.


def fetch_each(source: Source, starts: dict, end: pd.Timestamp) -> dict:
    """fetch_many for a source that holds its bars in memory (a replay): one call answers
    every pair, each pair's error its own."""
    answers = {}
    for (asset, interval), start in starts.items():
        try:
            answers[(asset, interval)] = source.fetch(asset, interval, start, end)
        except Exception as error:
            answers[(asset, interval)] = error
    return answers


def closed_between(
    bars: pd.DataFrame,
    interval: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp,
    calendar=None,
) -> pd.DataFrame:
    """The bars opening at or after `start` that have closed by `end` (`bars` sorted by ts),
    a bar closing when its market's `calendar` (24/7 when None) says: a session's last bar may
    close early.

    Binary search, not a mask: replay sources call this every cycle on a year of bars."""
    calendar = calendar or get(ALWAYS_OPEN)
    ts = bars["ts"]
    # Bounds rounded to whole microseconds (the bars' unit), inward: same answer, no unit error.
    first = 0 if start is None else int(ts.searchsorted(start.ceil("us"), side="left"))
    # A bar closes at most one interval after it opens: those opening by end - interval have
    # closed; of the few opening later, the calendar tells which closed early.
    surely = int(ts.searchsorted((end - interval_delta(interval)).floor("us"), side="right"))
    opened = int(ts.searchsorted(end.floor("us"), side="left"))
    later = pd.DatetimeIndex(ts.iloc[surely:opened])
    stop = surely + int((calendar.bar_closes(later, interval) <= end).sum())
    return bars.iloc[first : max(first, stop)].reset_index(drop=True)


def build_source(settings) -> Source:
    """The source the settings name: synthetic replay (default), CSV replay, yfinance or an
    exchange through ccxt."""
    from alpha12.sources.exchange import ExchangeSource
    from alpha12.sources.replay import CsvReplay, SyntheticReplay
    from alpha12.sources.yahoo import YFinanceSource

    if settings.source == "ccxt":
        return ExchangeSource(
            settings.ccxt_exchange, settings.ccxt_symbols, settings.source_timeout_s
        )
    if settings.source == "yfinance":
        return YFinanceSource(settings.yfinance_tickers, settings.calendar)
    if settings.source == "csv":
        return CsvReplay(settings.csv_dir, settings.history_days, settings.calendar)
    return SyntheticReplay(settings.seed, settings.history_days, calendar_of=settings.calendar)
