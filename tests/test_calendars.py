"""Exchange calendars: yfinance-shaped US stock bars across a daylight-saving change, a
holiday and half days are all accepted on the session grid, none invented, none missing; a
bar in a closed market is rejected as such; trading time skips nights, weekends and holidays.

Expected stamps are written by hand from the NYSE's published hours (9:30-16:00 New York;
13:00 on 2024-07-03 and 2024-11-29; closed 2024-07-04 and 2024-11-28 for Independence Day and
Thanksgiving; clocks change on 2024-03-10 and 2024-11-03), not taken from the calendar.
"""

import numpy as np
import pandas as pd
import pytest
import yfinance
from hypothesis import given, settings
from hypothesis import strategies as st

from alpha12 import calendars
from alpha12.bars import validate
from alpha12.config import Settings, SettingsError, load_settings
from alpha12.sources.yahoo import YFinanceSource
from alpha12.timeframes import interval_delta
from tests.test_sources import yahoo_frame

NEW_YORK = "America/New_York"
NYSE = calendars.get("XNYS")
# Each trading day of the tested weeks and its close in New York time, by hand.
DAYS = {
    "2024-03-08": "16:00",  # Friday, EST (UTC-5)
    "2024-03-11": "16:00",  # Monday, EDT (UTC-4): the clocks changed on Sunday
    "2024-07-02": "16:00",
    "2024-07-03": "13:00",  # half day; 07-04 closed
    "2024-07-05": "16:00",
    "2024-11-01": "16:00",  # Friday, EDT
    "2024-11-04": "16:00",  # Monday, EST
    "2024-11-27": "16:00",
    "2024-11-29": "13:00",  # half day after Thanksgiving (closed 11-28)
    "2024-12-02": "16:00",
}
HALF_DAYS = ("2024-07-03", "2024-11-29")
LATER = pd.Timestamp("2025-01-01", tz="UTC")


def session_stamps(interval: str, days=DAYS) -> pd.DatetimeIndex:
    """The bar opens yfinance stamps for `days`, in New York time: from 9:30 every interval
    while before the close."""
    step = interval_delta(interval)
    stamps = []
    for day, close in days.items():
        start = pd.Timestamp(f"{day} 09:30", tz=NEW_YORK)
        end = pd.Timestamp(f"{day} {close}", tz=NEW_YORK)
        stamps += list(pd.date_range(start, end - pd.Timedelta(minutes=1), freq=step))
    return pd.DatetimeIndex(stamps, name="Datetime")


def yahoo_download(index: pd.DatetimeIndex, ticker: str = "SPY") -> pd.DataFrame:
    """What yfinance.download(..., auto_adjust=False, actions=True) returns for one ticker."""
    return yahoo_frame(index, ticker, close=400.0 + np.sin(np.arange(len(index))))


@pytest.fixture
def yahoo(monkeypatch):
    """A YFinanceSource for SPY on the NYSE calendar whose download answers `frame`."""

    def install(frame: pd.DataFrame) -> YFinanceSource:
        monkeypatch.setattr(yfinance, "download", lambda *args, **kwargs: frame)
        settings = Settings(source="yfinance", assets=("SPY",), yfinance_tickers={})
        return YFinanceSource({}, settings.calendar)

    return install


@pytest.mark.parametrize("interval", ["5m", "15m", "1h"])
@pytest.mark.parametrize(
    "span", [("2024-03", "2024-04"), ("2024-07", "2024-08"), ("2024-11", "2025")]
)
def test_yfinance_intraday_bars_are_all_accepted_on_the_session_grid(yahoo, interval, span):
    # A span at a time: Yahoo serves 5m and 15m bars for the last 60 days only.
    days = {day: close for day, close in DAYS.items() if span[0] <= day < span[1]}
    stamps = session_stamps(interval, days)
    end = pd.Timestamp(max(days), tz="UTC") + pd.Timedelta(days=2)
    bars = yahoo(yahoo_download(stamps)).fetch("SPY", interval, None, end)
    expected = stamps.tz_convert("UTC")
    assert bars["ts"].tolist() == expected.tolist()  # none invented, none missing
    checked = validate(bars, interval, end, NYSE)
    assert checked.rejected.empty
    assert checked.bars["ts"].tolist() == expected.tolist()


def test_the_clock_change_moves_the_open_in_utc(yahoo):
    bars = yahoo(yahoo_download(session_stamps("1h"))).fetch("SPY", "1h", None, LATER)
    firsts = bars.groupby(bars["ts"].dt.date)["ts"].min().dt.strftime("%H:%M").to_dict()
    by_day = {str(day): hhmm for day, hhmm in firsts.items()}
    assert by_day["2024-03-08"] == "14:30" and by_day["2024-03-11"] == "13:30"
    assert by_day["2024-11-01"] == "13:30" and by_day["2024-11-04"] == "14:30"


def test_yfinance_daily_bars_are_one_per_session(yahoo):
    index = pd.DatetimeIndex(pd.to_datetime(list(DAYS)).tz_localize(NEW_YORK), name="Date")
    bars = yahoo(yahoo_download(index)).fetch("SPY", "1d", None, LATER)
    assert bars["ts"].tolist() == list(pd.to_datetime(list(DAYS)).tz_localize("UTC"))
    assert validate(bars, "1d", LATER, NYSE).rejected.empty


def test_four_hour_bars_are_the_open_and_the_rest_of_the_session(yahoo):
    bars = yahoo(yahoo_download(session_stamps("1h"))).fetch("SPY", "4h", None, LATER)
    local = pd.DatetimeIndex(bars["ts"]).tz_convert(NEW_YORK).strftime("%Y-%m-%d %H:%M")
    # 9:30-13:30 and 13:30-16:00 (short); a half day closes at 13:00: one bar.
    halves = [f"{day} {t}" for day in DAYS for t in ("09:30", "13:30")]
    assert list(local) == [s for s in halves if s[:10] not in HALF_DAYS or s.endswith("09:30")]
    assert validate(bars, "4h", LATER, NYSE).rejected.empty
    hourly = yahoo_download(session_stamps("1h"))
    day = bars[bars["ts"].dt.date == pd.Timestamp("2024-12-02").date()].iloc[1]
    afternoon = hourly.xs("SPY", axis=1, level="Ticker").loc["2024-12-02 13:30":"2024-12-02 15:30"]
    assert day["volume"] == afternoon["Volume"].sum()  # 13:30, 14:30 and 15:30
    assert day["close"] == afternoon["Close"].iloc[-1]


def test_a_half_days_short_last_bar_is_kept_and_marked():
    stamps = pd.DatetimeIndex(
        ["2024-11-27 15:30", "2024-11-29 11:30", "2024-11-29 12:30"], tz=NEW_YORK
    ).tz_convert("UTC")
    closes = NYSE.bar_closes(stamps, "1h").tz_convert(NEW_YORK).strftime("%m-%d %H:%M")
    assert list(closes) == ["11-27 16:00", "11-29 12:30", "11-29 13:00"]
    assert NYSE.short_bars(stamps, "1h").tolist() == [True, False, True]
    assert not NYSE.short_bars(stamps, "5m").any()
    assert not calendars.get("24/7").short_bars(stamps, "1h").any()


def test_a_short_bar_closes_at_the_close_not_an_interval_later():
    bar = pd.DataFrame({"ts": [pd.Timestamp("2024-11-29 17:30", tz="UTC")]})  # 12:30 New York
    bar[["open", "high", "low", "close", "volume"]] = [[1.0, 1.0, 1.0, 1.0, 1.0]]
    before = validate(bar, "1h", pd.Timestamp("2024-11-29 17:59", tz="UTC"), NYSE)
    assert before.reason_counts() == {"bar still forming": 1}
    assert len(validate(bar, "1h", pd.Timestamp("2024-11-29 18:00", tz="UTC"), NYSE).bars) == 1


@pytest.mark.parametrize(
    ("interval", "stamp", "reason"),
    [
        ("1h", "2024-11-28 15:30", "market closed"),  # Thanksgiving, 10:30 New York
        ("1h", "2024-11-29 18:30", "market closed"),  # after the half day's 13:00 close
        ("1h", "2024-11-30 15:30", "market closed"),  # Saturday
        ("1h", "2024-11-27 14:00", "market closed"),  # 9:00 New York, before the open
        ("1h", "2024-11-27 15:00", "timestamp off the interval grid"),  # 10:00: clock-aligned
        ("5m", "2024-11-27 14:32", "timestamp off the interval grid"),
        ("1d", "2024-11-28 00:00", "market closed"),
        ("1d", "2024-11-27 14:30", "timestamp off the interval grid"),
    ],
)
def test_a_bar_outside_the_sessions_is_rejected_with_its_reason(interval, stamp, reason):
    bar = pd.DataFrame({"ts": [pd.Timestamp(stamp, tz="UTC")]})
    bar[["open", "high", "low", "close", "volume"]] = [[1.0, 1.0, 1.0, 1.0, 1.0]]
    checked = validate(bar, interval, LATER, NYSE)
    assert checked.bars.empty
    assert checked.rejected["reason"].tolist() == [reason]


def test_the_same_stamps_are_plain_24_7_bars_without_a_calendar():
    bar = pd.DataFrame({"ts": [pd.Timestamp("2024-11-28 15:00", tz="UTC")]})
    bar[["open", "high", "low", "close", "volume"]] = [[1.0, 1.0, 1.0, 1.0, 1.0]]
    assert validate(bar, "1h", LATER).rejected.empty
    assert validate(bar.assign(ts=bar["ts"] + pd.Timedelta(minutes=30)), "1h").reason_counts() == {
        "timestamp off the interval grid": 1
    }


def test_next_bar_close_skips_the_night_the_weekend_and_the_holiday():
    def after(stamp: str, interval: str) -> str:
        when = NYSE.next_bar_close(pd.Timestamp(stamp, tz=NEW_YORK).tz_convert("UTC"), interval)
        return when.tz_convert(NEW_YORK).strftime("%Y-%m-%d %H:%M")

    assert after("2024-11-27 10:30", "1h") == "2024-11-27 12:30"
    assert after("2024-11-27 14:30", "1h") == "2024-11-27 16:00"  # the short last bar
    assert after("2024-11-27 15:30", "1h") == "2024-11-29 10:30"  # over Thanksgiving
    assert after("2024-11-29 12:30", "1h") == "2024-12-02 10:30"  # over the weekend
    assert after("2024-11-27 13:30", "4h") == "2024-11-29 13:00"  # a half day: one 4h bar
    daily = NYSE.next_bar_close(pd.Timestamp("2024-11-27", tz="UTC"), "1d")
    assert daily == pd.Timestamp("2024-11-29 13:00", tz=NEW_YORK)
    always = calendars.get("24/7").next_bar_close(pd.Timestamp("2024-11-27", tz="UTC"), "1h")
    assert always == pd.Timestamp("2024-11-27 02:00", tz="UTC")


def test_trading_time_counts_only_open_markets():
    def hours(start: str, end: str, interval: str = "1h") -> float:
        a, b = (pd.Timestamp(x, tz=NEW_YORK) for x in (start, end))
        return NYSE.trading_time(a, b, interval) / pd.Timedelta(hours=1)

    assert hours("2024-11-27 15:00", "2024-11-29 10:00") == 1.5  # the holiday counts nothing
    assert hours("2024-11-29 12:00", "2024-12-02 10:30") == 2.0  # half day, weekend
    assert hours("2024-11-30 12:00", "2024-12-01 12:00") == 0.0
    # 1d counts sessions, 24 hours each: Friday's close to Wednesday's close is three.
    assert hours("2024-11-29 18:00", "2024-12-04 17:00", "1d") == 72.0
    assert hours("2024-12-02 09:30", "2024-12-02 12:45", "1d") == 12.0  # half a session
    start, end = pd.Timestamp("2024-11-29 18:00", tz="UTC"), pd.Timestamp("2024-12-02", tz="UTC")
    assert calendars.get("24/7").trading_time(start, end, "1d") == end - start


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    start=st.integers(0, 3 * 365 * 24 * 60),
    minutes=st.integers(0, 40 * 24 * 60),
    daily=st.booleans(),
)
def test_trading_time_is_the_sum_of_each_sessions_overlap(start, minutes, daily):
    """Against a reference built from the schedule alone: the part of each session inside
    [a, b], in real time (intraday) or in proportion to a 24-hour session (1d)."""
    a = pd.Timestamp("2023-06-01", tz="UTC") + pd.Timedelta(minutes=start)
    b = a + pd.Timedelta(minutes=minutes)
    opens, closes = NYSE.opens.as_unit("ns").asi8, NYSE.closes.as_unit("ns").asi8
    inside = np.clip(np.minimum(closes, b.value) - np.maximum(opens, a.value), 0, None)
    expected = (inside / (closes - opens)).sum() * 86_400e9 if daily else inside.sum()
    got = NYSE.trading_time(a, b, "1d" if daily else "1h")
    assert got.value == pytest.approx(expected, abs=1e3)  # to the microsecond


def test_calendars_come_from_settings():
    assert Settings().calendar("BTC").name == "24/7"
    assert Settings(calendars={"SPY": "XNYS"}).calendar("SPY").name == "XNYS"
    yahoo_settings = Settings(source="yfinance", yfinance_tickers={"BTC": "BTC-USD"})
    assert yahoo_settings.calendar_name("BTC") == "24/7"
    assert yahoo_settings.calendar_name("AAPL") == "XNYS"
    assert yahoo_settings.calendar_name("VOD.L") == "XLON"
    assert Settings(calendars={"QQQ": "XNAS"}).problems() == []  # an alias of XNYS


def test_an_unknown_calendar_is_a_settings_error_with_its_key_and_the_choices(tmp_path):
    path = tmp_path / "alpha12.toml"
    path.write_text('[calendars]\nSPY = "XNYS"\nQQQ = "NASDAQ100"\n')
    with pytest.raises(SettingsError) as raised:
        load_settings(path, env={})
    (problem,) = raised.value.problems
    assert problem.startswith("calendars.QQQ: 'NASDAQ100' is not a known calendar")
    assert "24/7" in problem and "XNYS" in problem and "XLON" in problem


def test_back_is_the_inverse_of_trading_time():
    now = pd.Timestamp("2024-12-04 11:00", tz=NEW_YORK)
    for interval, hours in (("1h", 300), ("1h", 2.5), ("1d", 72), ("1d", 1000 * 24)):
        start = NYSE.back(now, pd.Timedelta(hours=hours), interval)
        assert NYSE.trading_time(start, now, interval) == pd.Timedelta(hours=hours)
    # Two and a half trading hours before Wednesday 11:00: 1.5 that morning, 1 on Tuesday.
    start = NYSE.back(now, pd.Timedelta(hours=2.5), "1h").tz_convert(NEW_YORK)
    assert start == pd.Timestamp("2024-12-03 15:00", tz=NEW_YORK)
    assert calendars.get("24/7").back(now, pd.Timedelta(hours=5), "1h") == now - pd.Timedelta(
        hours=5
    )
