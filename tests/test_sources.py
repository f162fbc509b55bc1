"""Sources: synthetic and CSV replays, and the yfinance adapter fed yfinance 1.x-shaped frames."""

import numpy as np
import pandas as pd
import pytest
import yfinance

from alpha12.bars import resample, validate
from alpha12.sources import SourceError, TemporarySourceError
from alpha12.sources.replay import SYNTHETIC_ORIGIN, CsvReplay, SyntheticReplay
from alpha12.sources.yahoo import YFinanceSource
from alpha12.timeframes import INTERVALS, interval_delta

# -- synthetic replay ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replay() -> SyntheticReplay:
    return SyntheticReplay(seed=3, history_days=4, future_days=2)


@pytest.mark.parametrize("interval", INTERVALS)
def test_synthetic_replay_serves_only_closed_bars(replay, interval):
    end = pd.Timestamp("2025-01-04 10:07", tz="UTC")  # inside a bar of every timeframe
    bars = replay.fetch("ETH", interval, None, end)
    delta = interval_delta(interval)
    assert len(bars) > 0
    assert (bars["ts"] + delta <= end).all()
    last_closed = (end - delta).floor(delta)
    assert bars["ts"].iloc[-1] == last_closed  # the newest closed bar is there, nothing after
    assert bars["ts"].iloc[0] == SYNTHETIC_ORIGIN
    assert validate(bars, interval, now=end).rejected.empty


def test_synthetic_replay_start_is_inclusive(replay):
    start = pd.Timestamp("2025-01-02 06:00", tz="UTC")
    end = pd.Timestamp("2025-01-02 09:00", tz="UTC")
    bars = replay.fetch("BTC", "1h", start, end)
    assert bars["ts"].tolist() == list(pd.date_range(start, periods=3, freq="1h"))


def test_synthetic_replay_is_reproducible(replay):
    end = pd.Timestamp("2025-01-05", tz="UTC")
    again = SyntheticReplay(seed=3, history_days=4, future_days=2)
    other_seed = SyntheticReplay(seed=4, history_days=4, future_days=2)
    for interval in ("5m", "4h"):
        first = replay.fetch("SOL", interval, None, end)
        pd.testing.assert_frame_equal(first, again.fetch("SOL", interval, None, end))
        other = other_seed.fetch("SOL", interval, None, end)
        assert not np.allclose(first["close"], other["close"])
    assert replay.live is False
    assert "not live" in replay.name
    assert replay.default_start == SYNTHETIC_ORIGIN + pd.Timedelta(days=4)


# -- CSV replay ---------------------------------------------------------------------------------


def test_csv_replay_serves_the_real_files_as_they_are(btc_dir):
    source = CsvReplay(btc_dir, history_days=30)
    assert source.assets == ["BTCUSDT"]
    assert "not live" in source.name and source.live is False
    end = pd.Timestamp("2030-01-01", tz="UTC")
    for interval in INTERVALS:
        served = source.fetch("BTCUSDT", interval, None, end)
        file_rows = sum(1 for _ in (btc_dir / f"BTCUSDT_{interval}.csv").open()) - 1
        assert len(served) == file_rows, interval
        assert served["ts"].is_monotonic_increasing
    cut = pd.Timestamp("2025-03-01 12:00", tz="UTC")
    assert source.fetch("BTCUSDT", "1h", None, cut)["ts"].iloc[-1] == cut - pd.Timedelta(hours=1)
    # the replay starts history_days after the latest first bar (the 5m file starts 2024-12-31)
    assert source.default_start == pd.Timestamp("2025-01-31", tz="UTC")
    with pytest.raises(SourceError, match="ETHUSDT"):
        source.fetch("ETHUSDT", "1h", None, end)


def test_csv_replay_of_an_empty_folder_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match=r"no ASSET_INTERVAL\.csv"):
        CsvReplay(tmp_path, history_days=30)


# -- yfinance adapter ---------------------------------------------------------------------------

PRICES = ["Adj Close", "Close", "Dividends", "High", "Low", "Open", "Stock Splits", "Volume"]


def yahoo_frame(
    index: pd.DatetimeIndex, ticker: str, close: np.ndarray | None = None
) -> pd.DataFrame:
    """What yfinance 1.x download(..., auto_adjust=False, actions=True) returns for one ticker
    (closes 100, 101, ... unless given)."""
    n = len(index)
    close = 100.0 + np.arange(n, dtype=float) if close is None else close
    values = {
        "Adj Close": close * 0.99,
        "Close": close,
        "Dividends": np.zeros(n),
        "High": close + 1.0,
        "Low": close - 1.5,
        "Open": close - 0.5,
        "Stock Splits": np.zeros(n),
        "Volume": np.arange(1, n + 1, dtype="int64") * 1000,
    }
    columns = pd.MultiIndex.from_product([PRICES, [ticker]], names=["Price", "Ticker"])
    return pd.DataFrame(np.column_stack([values[p] for p in PRICES]), index=index, columns=columns)


class FakeDownload:
    """Stands in for yfinance.download: records each call, answers with `frame` or raises."""

    def __init__(self, frame=None, error: Exception | None = None):
        self.frame, self.error, self.calls = frame, error, []

    def __call__(self, tickers, **kwargs):
        self.calls.append({"tickers": tickers, **kwargs})
        if self.error is not None:
            raise self.error
        return self.frame


@pytest.fixture
def download(monkeypatch):
    def install(frame=None, error=None) -> FakeDownload:
        fake = FakeDownload(frame, error)
        monkeypatch.setattr(yfinance, "download", fake)
        return fake

    return install


def test_intraday_exchange_time_becomes_utc_and_the_forming_bar_is_dropped(download):
    index = pd.date_range(
        "2025-06-02 09:30", periods=6, freq="5min", tz="America/New_York", name="Datetime"
    )
    fake = download(yahoo_frame(index, "AAPL"))
    now = pd.Timestamp("2025-06-02 13:57", tz="UTC")  # 09:57 New York: the 09:55 bar is forming
    bars = YFinanceSource({"APPLE": "AAPL"}).fetch("APPLE", "5m", None, now)
    assert fake.calls[0]["tickers"] == "AAPL"
    assert fake.calls[0]["interval"] == "5m"
    expected = pd.date_range("2025-06-02 13:30", periods=5, freq="5min", tz="UTC")
    assert bars["ts"].tolist() == expected.tolist()
    assert bars["close"].tolist() == [100.0, 101.0, 102.0, 103.0, 104.0]  # Close, not Adj Close
    assert bars["volume"].tolist() == [1000.0, 2000.0, 3000.0, 4000.0, 5000.0]
    assert list(bars.columns) == ["ts", "open", "high", "low", "close", "volume"]
    assert validate(bars, "5m", now=now).rejected.empty


def test_crypto_intraday_in_utc(download):
    index = pd.date_range("2025-06-02 00:00", periods=5, freq="1h", tz="UTC", name="Datetime")
    download(yahoo_frame(index, "BTC-USD"))
    now = pd.Timestamp("2025-06-02 05:00", tz="UTC")
    bars = YFinanceSource({"BTC": "BTC-USD"}).fetch("BTC", "1h", None, now)
    assert bars["ts"].tolist() == index.tz_convert("UTC").tolist()
    assert str(bars["ts"].dtype) == "datetime64[us, UTC]"


def test_daily_dates_become_utc_midnight(download):
    index = pd.DatetimeIndex(pd.date_range("2025-06-02", periods=5, freq="1D"), name="Date")
    assert index.tz is None  # yfinance drops the time zone of daily bars
    download(yahoo_frame(index, "AAPL"))
    now = pd.Timestamp("2025-06-06 20:00", tz="UTC")  # the 06-06 daily bar has not closed
    bars = YFinanceSource().fetch("AAPL", "1d", None, now)
    assert bars["ts"].tolist() == list(pd.date_range("2025-06-02", periods=4, tz="UTC"))


def test_four_hour_bars_are_resampled_from_one_hour(download):
    index = pd.date_range("2025-06-02 00:00", periods=14, freq="1h", tz="UTC", name="Datetime")
    fake = download(yahoo_frame(index, "BTC-USD"))
    now = pd.Timestamp("2025-06-02 13:30", tz="UTC")  # the 12:00-16:00 bar is still forming
    bars = YFinanceSource({"BTC": "BTC-USD"}).fetch("BTC", "4h", None, now)
    assert fake.calls[0]["interval"] == "1h"
    assert bars["ts"].tolist() == list(pd.date_range("2025-06-02", periods=3, freq="4h", tz="UTC"))
    first = bars.iloc[0]
    assert (first["open"], first["high"], first["low"], first["close"]) == (99.5, 104, 98.5, 103)
    assert first["volume"] == 1000 + 2000 + 3000 + 4000
    hourly = YFinanceSource({"BTC": "BTC-USD"}).fetch("BTC", "1h", None, now)
    pd.testing.assert_frame_equal(bars, resample(hourly, "4h").iloc[:3])


@pytest.mark.parametrize(
    ("interval", "limit_days"), [("5m", 60), ("15m", 60), ("1h", 730), ("4h", 730)]
)
def test_start_respects_yahoo_lookback_limits(download, interval, limit_days):
    index = pd.date_range("2025-06-02", periods=4, freq="1h", tz="UTC", name="Datetime")
    fake = download(yahoo_frame(index, "BTC-USD"))
    now = pd.Timestamp("2025-06-02 05:00", tz="UTC")
    source = YFinanceSource({"BTC": "BTC-USD"})
    source.fetch("BTC", interval, None, now)  # no stored bars yet
    source.fetch("BTC", interval, now - pd.Timedelta(days=5 * limit_days), now)  # too far back
    recent = now - pd.Timedelta(days=3)
    source.fetch("BTC", interval, recent, now)  # inside the limit: asked as it is
    first, clamped, kept = (call["start"] for call in fake.calls)
    oldest = now - pd.Timedelta(days=limit_days)
    assert oldest <= first <= now - pd.Timedelta(days=limit_days - 2)
    assert oldest <= clamped == first
    assert kept == recent
    assert all(call["end"] > now for call in fake.calls)  # end is exclusive in yfinance


def test_daily_history_asks_for_everything(download):
    index = pd.DatetimeIndex(pd.date_range("2025-06-02", periods=2, freq="1D"), name="Date")
    fake = download(yahoo_frame(index, "BTC-USD"))
    YFinanceSource().fetch("BTC-USD", "1d", None, pd.Timestamp("2025-06-05", tz="UTC"))
    assert fake.calls[0]["start"] is None
    assert fake.calls[0]["period"] == "max"


@pytest.mark.parametrize(
    "answer",
    [
        {"error": yfinance.exceptions.YFRateLimitError()},
        {"error": ConnectionError("network down")},
        {"frame": pd.DataFrame()},
        {"frame": yahoo_frame(pd.DatetimeIndex([], tz="UTC", name="Datetime"), "BTC-USD")},
        {
            "frame": yahoo_frame(pd.date_range("2025-06-02", periods=2, freq="1h", tz="UTC"), "X")
            * np.nan
        },
    ],
    ids=["rate-limit", "connection", "empty", "no-rows", "all-nan"],
)
def test_temporary_failures(download, answer):
    download(**answer)
    with pytest.raises(TemporarySourceError):
        YFinanceSource().fetch("BTC-USD", "1h", None, pd.Timestamp("2025-06-02 05:00", tz="UTC"))


def test_a_refused_ticker_is_a_permanent_source_error(download):
    download(error=yfinance.exceptions.YFTzMissingError("NOPE"))
    with pytest.raises(SourceError) as raised:
        YFinanceSource().fetch("NOPE", "1h", None, pd.Timestamp("2025-06-02", tz="UTC"))
    assert not isinstance(raised.value, TemporarySourceError)
