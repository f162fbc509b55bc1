"""Live bars from a crypto exchange through `ccxt` (optional: pip install ccxt).

Exchanges serve OHLCV in pages of at most `limit` rows starting at `since`, so a request
walks forward page by page until `end`, sleeping the exchange's rate limit between pages. A
timeframe the exchange does not list is resampled from the coarsest finer one it does. Network
trouble, rate limits and outages are retried a few times with backoff, then reported as
`TemporarySourceError` (the collector backs off and refetches from the same start); a bad
symbol, refused credentials or any other exchange refusal is a `SourceError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from alpha12.bars import NUMERIC_COLUMNS, UTC_MICROS, empty_bars, resample, validate
from alpha12.clock import WallClock
from alpha12.sources import SourceError, TemporarySourceError, closed_between
from alpha12.timeframes import INTERVALS, interval_delta

PAGE_LIMIT = 1000  # rows asked per call; exchanges answer with at most their own maximum
DEFAULT_BARS = 1000  # bars fetched when no start is given (a first collection)
RETRIES = 4  # attempts per page before a temporary failure is handed to the caller
BACKOFF_S = 1.0  # first retry delay, doubled each attempt
MS = pd.Timedelta(milliseconds=1)
Progress = Callable[[float, str], None]


def _ccxt() -> Any:
    try:
        import ccxt
    except ImportError:
        raise SourceError(
            "source = 'ccxt' needs the optional package ccxt (pip install ccxt)"
        ) from None
    return ccxt


class ExchangeSource:
    live = True

    def __init__(
        self,
        exchange_id: str = "binance",
        symbols: dict[str, str] | None = None,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.exchange_id = exchange_id
        self.symbols = symbols or {}
        self.name = f"{exchange_id} via ccxt (live)"
        self._timeout_ms = int(timeout_s * 1000)
        self._sleep = sleep
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The ccxt exchange, built on first use (building one needs no network)."""
        if self._client is None:
            ccxt = _ccxt()
            cls = getattr(ccxt, self.exchange_id, None)
            if not isinstance(cls, type):
                raise SourceError(f"ccxt knows no exchange called {self.exchange_id!r}")
            self._client = cls({"enableRateLimit": True, "timeout": self._timeout_ms})
        return self._client

    def symbol(self, asset: str) -> str:
        return self.symbols.get(asset, f"{asset}/USDT")

    def fetch(self, asset, interval, start, end):
        """The closed bars of `interval` opening at or after `start` (default: the last
        DEFAULT_BARS) and closing by `end`."""
        if start is None:
            start = (end - DEFAULT_BARS * interval_delta(interval)).floor(interval_delta("1d"))
        return self._bars(asset, interval, start, end, None)

    def backfill(
        self,
        asset: str,
        interval: str,
        since: pd.Timestamp,
        progress: Progress | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Years of bars in one call (from `since` to `end`, default now); `progress(fraction,
        message)` after every page, for a progress bar."""
        end = WallClock().now() if end is None else end
        return self._bars(asset, interval, since, end, progress)

    def _bars(self, asset, interval, start, end, progress) -> pd.DataFrame:
        timeframe = self._timeframe(interval)
        # A resampled bar needs all of its finer bars: start at the coarse bar's open.
        first = start.floor(interval_delta(interval)) if timeframe != interval else start
        rows = self._pages(self.symbol(asset), timeframe, first, end, progress)
        bars = _frame(rows)
        if timeframe != interval:
            bars = resample(bars, interval)
        return closed_between(bars, interval, start, end)

    def _timeframe(self, interval: str) -> str:
        """`interval` itself when the exchange lists it, else the coarsest finer one it does."""
        listed = self.client.timeframes or {}
        finer = INTERVALS[: INTERVALS.index(interval) + 1]
        for candidate in reversed(finer):
            if candidate in listed:
                return candidate
        raise SourceError(f"{self.exchange_id} serves no bars for {interval} or finer")

    def _pages(self, symbol, timeframe, start, end, progress) -> list[list]:
        """Every row from `start` to `end`, page by page, each page starting one bar after the
        last one seen: no gap, no repeat."""
        step_ms = interval_delta(timeframe) // MS
        since, stop = _ms(start), _ms(end)
        rows: list[list] = []
        while since <= stop:
            page = [r for r in self._page(symbol, timeframe, since) if r[0] >= since]
            if not page:
                break
            rows += [r for r in page if r[0] + step_ms <= stop]  # closed by `end` only
            since = int(page[-1][0]) + step_ms
            if progress is not None:
                done = min(1.0, (since - _ms(start)) / max(1, stop - _ms(start)))
                progress(done, f"{symbol} {timeframe}: {len(rows)} bars")
            self._sleep(self.client.rateLimit / 1000)
        return rows

    def _page(self, symbol: str, timeframe: str, since: int) -> list[list]:
        """One fetch_ohlcv call, retried with backoff while the failure is temporary."""
        ccxt = _ccxt()
        attempt = 0
        while True:
            try:
                return self.client.fetch_ohlcv(symbol, timeframe, since=since, limit=PAGE_LIMIT)
            except ccxt.NetworkError as error:  # rate limits, DDoS guard, outages, timeouts
                attempt += 1
                if attempt == RETRIES:
                    raise TemporarySourceError(
                        f"{self.exchange_id} unavailable for {symbol} {timeframe} after "
                        f"{RETRIES} attempts ({type(error).__name__}): {error}"
                    ) from None
                self._sleep(BACKOFF_S * 2 ** (attempt - 1))
            except ccxt.BaseError as error:  # bad symbol, credentials, any other refusal
                raise SourceError(
                    f"{self.exchange_id} refused {symbol} {timeframe} "
                    f"({type(error).__name__}): {error}"
                ) from None


def import_history(
    store, settings, asset: str, interval: str, since: pd.Timestamp, at: pd.Timestamp, progress
) -> dict[str, int]:
    """Bars of `asset` since `since` from the settings' exchange into `store`, through the
    gate every bar passes (rejections recorded with their reason), as an event stamped `at`;
    the counts."""
    source = ExchangeSource(
        settings.ccxt_exchange, settings.ccxt_symbols, settings.source_timeout_s
    )
    now = WallClock().now()  # exchange bars are real: judged against the real time
    checked = validate(source.backfill(asset, interval, since, progress), interval, now)
    rejected = checked.reason_counts()
    imported = store.upsert_bars(asset, interval, checked.bars)
    if rejected:
        store.record_rejections(asset, interval, source.name, rejected, now)
    store.log_event(
        at,
        "info",
        "ccxt-import",
        f"{imported} bars imported from {source.name} since {since:%Y-%m-%d}, "
        f"{sum(rejected.values())} rejected",
        asset,
        interval,
    )
    return {"fetched": len(checked.bars), "imported": imported, **rejected}


def _ms(ts: pd.Timestamp) -> int:
    return int((ts - pd.Timestamp(0, tz="UTC")) // MS)


def _frame(rows: list[list]) -> pd.DataFrame:
    """ccxt's [ms, open, high, low, close, volume] rows as bars: UTC times, float columns."""
    if not rows:
        return empty_bars()
    frame = pd.DataFrame(rows, columns=["ts", *NUMERIC_COLUMNS])
    frame["ts"] = pd.to_datetime(frame["ts"], unit="ms", utc=True).astype(UTC_MICROS)
    frame[list(NUMERIC_COLUMNS)] = frame[list(NUMERIC_COLUMNS)].astype("float64")
    return frame.drop_duplicates("ts").sort_values("ts").reset_index(drop=True)
