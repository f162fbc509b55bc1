"""Live bars from Yahoo Finance through `yfinance`, converted to alpha12's UTC bars.

Yahoo serves intraday history only so far back (5m/15m: 60 days, 1h: 730 days) and has no 4h
bars, so 4h is resampled from 1h on the asset's calendar (a stock's 4h bars start at the
open). Rate limits and empty answers are temporary errors; the collector backs off from them.
"""

from __future__ import annotations

import pandas as pd

from alpha12.bars import resample
from alpha12.calendars import ALWAYS_OPEN, get
from alpha12.sources import SourceError, TemporarySourceError, closed_between

_YAHOO_INTERVAL = {"5m": "5m", "15m": "15m", "1h": "1h", "4h": "1h", "1d": "1d"}
# How far back Yahoo serves each interval; None = all history. Kept a day inside the limit.
_LOOKBACK = {
    "5m": pd.Timedelta(days=59),
    "15m": pd.Timedelta(days=59),
    "1h": pd.Timedelta(days=729),
    "1d": None,
}


class YFinanceSource:
    name = "Yahoo Finance (live)"
    live = True

    def __init__(self, tickers: dict[str, str] | None = None, calendar_of=None):
        self.tickers = tickers or {}
        # asset -> its market's calendar (Settings.calendar): where 4h bars and closes fall
        self.calendar_of = calendar_of or (lambda asset: get(ALWAYS_OPEN))

    def ticker(self, asset: str) -> str:
        return self.tickers.get(asset, asset)

    def fetch(self, asset, interval, start, end):
        yahoo_interval = _YAHOO_INTERVAL[interval]
        earliest = _earliest(yahoo_interval, end)
        if start is not None and earliest is not None:
            start = max(start, earliest)
        elif start is None:
            start = earliest
        frame = _download(self.ticker(asset), yahoo_interval, start, end)
        bars = to_bars(frame, daily=interval == "1d")
        calendar = self.calendar_of(asset)
        if interval == "4h":
            bars = resample(bars, "4h", calendar)
        return closed_between(bars, interval, start, end, calendar)


def _earliest(yahoo_interval: str, end: pd.Timestamp) -> pd.Timestamp | None:
    lookback = _LOOKBACK[yahoo_interval]
    return None if lookback is None else (end - lookback).floor("1D")


def _download(ticker: str, interval: str, start, end) -> pd.DataFrame:
    import yfinance  # imported here: only the live source needs it, and it is slow to import

    try:
        frame = yfinance.download(
            ticker,
            start=start,
            end=end + pd.Timedelta(days=1),
            period=None if start else "max",
            interval=interval,
            auto_adjust=False,
            actions=True,
            progress=False,
            threads=False,
            multi_level_index=True,
        )
    except yfinance.exceptions.YFRateLimitError as error:
        raise TemporarySourceError(f"Yahoo Finance rate limit for {ticker}: {error}") from None
    except (ConnectionError, TimeoutError, OSError) as error:
        raise TemporarySourceError(f"Yahoo Finance unreachable for {ticker}: {error}") from None
    except yfinance.exceptions.YFException as error:
        raise SourceError(f"Yahoo Finance refused {ticker}: {error}") from None
    if frame is None or frame.empty or frame.dropna(how="all").empty:
        raise TemporarySourceError(f"Yahoo Finance returned no {interval} bars for {ticker}")
    return frame


def to_bars(frame: pd.DataFrame, daily: bool) -> pd.DataFrame:
    """yfinance's frame (MultiIndex or flat columns, exchange-tz index) as UTC bars.

    Daily bars are labelled with their trading date at UTC midnight, whatever the exchange's
    time zone; intraday bars are converted to UTC. Dividends, splits and Adj Close are dropped.
    """
    if isinstance(frame.columns, pd.MultiIndex):
        frame = frame.droplevel(
            [n for n in range(frame.columns.nlevels) if n != _price_level(frame)], axis=1
        )
    columns = {str(c).lower(): c for c in frame.columns}
    missing = [c for c in ("open", "high", "low", "close", "volume") if c not in columns]
    if missing:
        raise SourceError(f"Yahoo Finance answer lacks {', '.join(missing)}")
    index = pd.DatetimeIndex(frame.index)
    if daily:
        ts = pd.to_datetime(index.date).tz_localize("UTC")
    else:
        ts = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    bars = pd.DataFrame({"ts": ts.astype("datetime64[us, UTC]")})
    for name in ("open", "high", "low", "close", "volume"):
        bars[name] = pd.to_numeric(frame[columns[name]].to_numpy(), errors="coerce")
    bars = bars.dropna(subset=["open", "high", "low", "close"], how="all")
    return bars.sort_values("ts", kind="stable").reset_index(drop=True)  # closed_between bisects


def _price_level(frame: pd.DataFrame) -> int:
    """Which column level holds Open/High/...: yfinance's order depends on group_by."""
    for level in range(frame.columns.nlevels):
        if "Close" in frame.columns.get_level_values(level):
            return level
    raise SourceError("Yahoo Finance answer has no price columns")
