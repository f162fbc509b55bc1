"""The ccxt source against a stand-in exchange serving exactly what fetch_ohlcv returns (rows of
[ms, o, h, l, c, v], at most its own page size, from `since`, the forming bar included):
pagination without gap or repeat, rate-limit retries that lose no bar, an outage reported as
temporary and healed by a refetch from the same start, resampling where the exchange lacks a
timeframe, plain errors for refusals, and bars that pass the gate."""

from __future__ import annotations

import sys
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

ccxt = pytest.importorskip("ccxt")

from alpha12 import bars as bars_module  # noqa: E402 (after the skip)
from alpha12.bars import UTC_MICROS  # noqa: E402
from alpha12.config import Settings  # noqa: E402
from alpha12.sources import SourceError, TemporarySourceError, build_source  # noqa: E402
from alpha12.sources import exchange as exchange_module  # noqa: E402
from alpha12.sources.exchange import ExchangeSource  # noqa: E402
from alpha12.timeframes import interval_delta  # noqa: E402

LISTED = "2025-01-01"
NOW = pd.Timestamp("2025-01-11 10:02:30", tz="UTC")  # the 10:00 5m bar is still forming
EXCHANGE_PAGE = 500  # the stand-in's own maximum, below the source's PAGE_LIMIT


class FakeExchange:
    """A ccxt exchange as the source sees it: timeframes, rateLimit and fetch_ohlcv. `faults`
    maps a call number to the exception that call raises instead of answering."""

    timeframes: ClassVar[dict[str, str]] = {
        "1m": "1m",
        "5m": "5m",
        "15m": "15m",
        "1h": "1h",
        "4h": "4h",
        "1d": "1d",
    }
    rateLimit = 50  # ccxt's name: milliseconds between two calls
    faults: ClassVar[dict[int, Exception]] = {}
    calls: ClassVar[list[tuple]] = []

    def __init__(self, config: dict):
        self.config = config

    def fetch_ohlcv(self, symbol, timeframe="1m", since=None, limit=None):
        call = len(FakeExchange.calls)
        FakeExchange.calls.append((symbol, timeframe, since, limit))
        if call in FakeExchange.faults:
            raise FakeExchange.faults[call]
        if symbol != "BTC/USDT":
            raise ccxt.BadSymbol(f"binance does not have market symbol {symbol}")
        rows = market_rows(timeframe)
        return [row for row in rows if row[0] >= since][: min(limit, EXCHANGE_PAGE)]


def market_rows(timeframe: str) -> list[list]:
    """Every bar from listing to NOW, the forming one included, as ccxt returns them."""
    step = interval_delta(timeframe)
    opens = pd.date_range(pd.Timestamp(LISTED, tz="UTC"), NOW, freq=step, inclusive="left")
    ms = (opens - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    close = 100 + 10 * np.sin(np.arange(len(ms)) / 50.0)
    open_ = np.r_[100.0, close[:-1]]
    return [
        [int(t), float(o), float(max(o, c) + 0.5), float(min(o, c) - 0.5), float(c), 3.0]
        for t, o, c in zip(ms, open_, close, strict=True)
    ]


@pytest.fixture(autouse=True)
def exchange(monkeypatch):
    monkeypatch.setattr(ccxt, "binance", FakeExchange)
    monkeypatch.setattr(FakeExchange, "faults", {})
    monkeypatch.setattr(FakeExchange, "calls", [])
    monkeypatch.setattr(FakeExchange, "timeframes", dict(FakeExchange.timeframes))
    return FakeExchange


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def source(sleeps) -> ExchangeSource:
    return ExchangeSource("binance", {"BTC": "BTC/USDT", "ETH": "ETH/NOPE"}, sleep=sleeps.append)


def expected(timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """The open times of the closed bars from `start` to `end`."""
    step = interval_delta(timeframe)
    last_open = (end - step).floor(step)
    return pd.Series(pd.date_range(start, last_open, freq=step), name="ts").astype(UTC_MICROS)


def assert_clean(frame: pd.DataFrame, interval: str) -> None:
    checked = bars_module.validate(frame, interval, now=NOW)
    assert checked.rejected.empty and checked.duplicates == 0 and not checked.reordered
    assert len(checked.bars) == len(frame)
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert all(frame[c].dtype == "float64" for c in bars_module.NUMERIC_COLUMNS)


def test_pages_join_without_gap_or_repeat(source, exchange, sleeps):
    start = pd.Timestamp("2025-01-02", tz="UTC")
    frame = source.fetch("BTC", "5m", start, NOW)
    times = expected("5m", start, NOW)
    pd.testing.assert_series_equal(frame["ts"], times)
    assert frame["ts"].iloc[-1] == pd.Timestamp("2025-01-11 09:55", tz="UTC")  # not the forming
    pages = len(exchange.calls)
    assert pages >= len(times) // EXCHANGE_PAGE
    assert all(limit == exchange_module.PAGE_LIMIT for *_, limit in exchange.calls)
    assert sleeps == [FakeExchange.rateLimit / 1000] * pages
    assert_clean(frame, "5m")


def test_a_rate_limit_is_backed_off_and_loses_no_bar(source, exchange, sleeps):
    start = pd.Timestamp("2025-01-05", tz="UTC")
    exchange.faults = {2: ccxt.RateLimitExceeded("binance 429 Too Many Requests")}
    frame = source.fetch("BTC", "5m", start, NOW)
    pd.testing.assert_series_equal(frame["ts"], expected("5m", start, NOW))
    assert exchange.calls[2] == exchange.calls[3]  # the same page asked again
    assert exchange_module.BACKOFF_S in sleeps


def test_an_outage_is_temporary_and_a_refetch_loses_no_bar(source, exchange, sleeps):
    start = pd.Timestamp("2025-01-05", tz="UTC")
    down = ccxt.ExchangeNotAvailable("binance GET https://api.binance.com 503 Service Unavailable")
    exchange.faults = {n: down for n in range(2, 2 + exchange_module.RETRIES)}
    with pytest.raises(TemporarySourceError, match="binance unavailable for BTC/USDT 5m after 4"):
        source.fetch("BTC", "5m", start, NOW)
    backoffs = [s for s in sleeps if s != FakeExchange.rateLimit / 1000]
    assert backoffs == [1.0, 2.0, 4.0]  # bounded: RETRIES attempts, RETRIES - 1 waits
    healed = source.fetch("BTC", "5m", start, NOW)  # the collector refetches from the same start
    pd.testing.assert_series_equal(healed["ts"], expected("5m", start, NOW))
    assert_clean(healed, "5m")


@pytest.mark.parametrize("error", [ccxt.RequestTimeout("timed out"), ccxt.DDoSProtection("ddos")])
def test_network_trouble_is_temporary(source, exchange, error):
    exchange.faults = dict.fromkeys(range(exchange_module.RETRIES), error)
    with pytest.raises(TemporarySourceError):
        source.fetch("BTC", "1h", pd.Timestamp("2025-01-10", tz="UTC"), NOW)


def test_refusals_are_plain_source_errors(source, exchange):
    with pytest.raises(SourceError, match="binance refused ETH/NOPE 1h \\(BadSymbol\\)") as raised:
        source.fetch("ETH", "1h", pd.Timestamp("2025-01-10", tz="UTC"), NOW)
    assert not isinstance(raised.value, TemporarySourceError)
    exchange.faults = {len(exchange.calls): ccxt.AuthenticationError("invalid api key")}
    with pytest.raises(SourceError, match="AuthenticationError") as raised:
        source.fetch("BTC", "1h", pd.Timestamp("2025-01-10", tz="UTC"), NOW)
    assert not isinstance(raised.value, TemporarySourceError)


def test_native_4h_is_fetched_as_4h(source, exchange):
    start = pd.Timestamp("2025-01-03", tz="UTC")
    frame = source.fetch("BTC", "4h", start, NOW)
    assert {timeframe for _, timeframe, *_ in exchange.calls} == {"4h"}
    pd.testing.assert_series_equal(frame["ts"], expected("4h", start, NOW))


def test_an_unlisted_timeframe_is_resampled_from_a_finer_one(source, exchange):
    del exchange.timeframes["4h"]
    start = pd.Timestamp("2025-01-03 02:00", tz="UTC")  # inside a 4h bar: it starts at 04:00
    frame = source.fetch("BTC", "4h", start, NOW)
    assert {timeframe for _, timeframe, *_ in exchange.calls} == {"1h"}
    hourly = exchange_module._frame(market_rows("1h"))
    whole = bars_module.resample(hourly[hourly["ts"] < NOW.floor("1h")], "4h")
    wanted = whole[(whole["ts"] >= start) & (whole["ts"] + interval_delta("4h") <= NOW)]
    pd.testing.assert_frame_equal(frame, wanted.reset_index(drop=True), check_dtype=False)
    assert frame["ts"].iloc[0] == pd.Timestamp("2025-01-03 04:00", tz="UTC")
    assert frame["ts"].iloc[-1] == pd.Timestamp("2025-01-11 04:00", tz="UTC")  # 08:00 forms
    assert_clean(frame, "4h")


def test_backfill_reports_progress_to_the_end(source, exchange):
    reports = []
    since = pd.Timestamp(LISTED, tz="UTC")
    frame = source.backfill("BTC", "15m", since, lambda f, m: reports.append((f, m)), end=NOW)
    fractions = [f for f, _ in reports]
    assert len(reports) == len(exchange.calls) > 1
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert reports[-1][1] == f"BTC/USDT 15m: {len(frame)} bars"
    pd.testing.assert_series_equal(frame["ts"], expected("15m", since, NOW))


def test_build_source_picks_ccxt_and_ccxt_stays_optional(monkeypatch):
    settings = Settings(source="ccxt", ccxt_exchange="binance")
    built = build_source(settings)
    assert isinstance(built, ExchangeSource) and built.symbol("SOL") == "SOL/USDT"
    with pytest.raises(SourceError, match="ccxt knows no exchange called 'nope'"):
        ExchangeSource("nope").fetch("BTC", "1h", None, NOW)
    monkeypatch.setitem(sys.modules, "ccxt", None)  # as if ccxt were not installed
    with pytest.raises(SourceError, match="needs the optional package ccxt"):
        ExchangeSource("binance").fetch("BTC", "1h", None, NOW)
