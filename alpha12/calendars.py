"""When an asset's market is open: its bar grid per timeframe, when a bar closes, and how much
trading time lies between two instants.

Two kinds of calendar answer the same questions, so the rest of alpha12 has one path:

- `24/7` (crypto, the default): always open. A bar of an interval opens on the UTC grid of
  that interval and closes one interval later; trading time is wall time.
- an exchange calendar from `exchange_calendars` (XNYS, XNAS, XLON, ...): bars are aligned
  on each session. An intraday bar (5m, 15m, 1h, 4h) opens at the session's open plus whole
  intervals, and the last bar of a session is cut at its close, so it may be short (15:30-16:00
  for 1h on NYSE; 13:00 on a half day). 4h is the same rule: a normal NYSE day has two 4h
  bars, 9:30-13:30 and 13:30-16:00 ET, a half day one. A 1d bar is one session, stamped with
  the session date at 00:00 UTC (as yfinance labels it), and closes at the session's close.
  Lunch breaks (XHKG, XTKS) are not modelled: bars run through them.

Trading time counts only while the market is open; for 1d it counts sessions, each worth 24
hours, so a setting in hours means the same number of bars on either kind of calendar (a 72-hour
cooldown on 1d is three daily bars: three days of a 24/7 market, three sessions of a stock).
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pandas as pd

from alpha12.timeframes import interval_delta

ALWAYS_OPEN = "24/7"
DAY = pd.Timedelta(days=1)
CALENDAR_START = "1990-01-01"  # history a session calendar covers (it is built once, cached)
# exchange_calendars' own round-the-clock calendars: alpha12's 24/7 is the one always-open kind.
_NOT_EXCHANGES = ("24/5", "24/7")
# Yahoo ticker suffix -> its exchange, for yfinance tickers with no [calendars] entry.
_YAHOO_SUFFIXES = {
    ".L": "XLON",
    ".DE": "XETR",
    ".PA": "XPAR",
    ".AS": "XAMS",
    ".TO": "XTSE",
    ".T": "XTKS",
    ".HK": "XHKG",
    ".SW": "XSWX",
    ".AX": "XASX",
}


def _utc_index(values) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(values)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


class AlwaysOpen:
    """The 24/7 market: every answer is the plain clock's."""

    name = ALWAYS_OPEN
    sessions = False

    def bar_of(self, ts: pd.DatetimeIndex, interval: str) -> tuple[pd.DatetimeIndex, np.ndarray]:
        """The bar each instant falls in (its open), and whether the market is open then."""
        return ts.floor(interval_delta(interval)), np.ones(len(ts), dtype=bool)

    def stamp_problems(self, ts: pd.DatetimeIndex, interval: str) -> tuple[np.ndarray, np.ndarray]:
        """(market closed, off the grid) for each bar stamp: never closed; on the UTC grid."""
        step = interval_delta(interval) // pd.Timedelta(microseconds=1)
        micros = ts.as_unit("us").asi8
        return np.zeros(len(ts), dtype=bool), micros % step != 0

    def bar_closes(self, opens: pd.DatetimeIndex, interval: str) -> pd.DatetimeIndex:
        return opens + interval_delta(interval)

    def cut_at_close(self, opens: pd.DatetimeIndex, ends: pd.DatetimeIndex) -> pd.DatetimeIndex:
        """Bars opening at `opens` would end at `ends`: a market that never closes cuts none."""
        return ends

    def short_bars(self, opens: pd.DatetimeIndex, interval: str) -> np.ndarray:
        return np.zeros(len(opens), dtype=bool)

    def next_bar_close(self, last: pd.Timestamp, interval: str) -> pd.Timestamp:
        """When the bar after the one opening at `last` closes."""
        return last + 2 * interval_delta(interval)

    def trading_time(self, start, end, interval: str) -> pd.Timedelta:
        return pd.Timestamp(end) - pd.Timestamp(start)

    def back(self, when: pd.Timestamp, amount: pd.Timedelta, interval: str) -> pd.Timestamp:
        return when - amount


class SessionCalendar:
    """An exchange's sessions (open and close in UTC, from exchange_calendars)."""

    sessions = True

    def __init__(self, name: str, schedule: pd.DataFrame):
        self.name = name
        self.opens = _utc_index(schedule["open"]).rename(None)
        self.closes = _utc_index(schedule["close"]).rename(None)
        self.dates = _utc_index(schedule.index).rename(None)  # the session dates, 00:00 UTC
        lengths = (self.closes - self.opens).to_numpy()
        # Trading time before each session: real hours, and sessions worth a day each (1d).
        self._before = {
            False: np.r_[np.timedelta64(0, "ns"), np.cumsum(lengths)],
            True: np.arange(len(lengths) + 1) * DAY.to_timedelta64(),
        }
        # The same instants as nanoseconds, for _elapsed's scalar arithmetic (a lab walk on a
        # session market asks it for every bar's cooldown: through pandas indexes it was
        # 40% of such a walk's time).
        self._opens_ns = self.opens.as_unit("ns").asi8
        self._closes_ns = self.closes.as_unit("ns").asi8

    def session_of(self, ts: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        """The index of the last session opening at or before each instant, and whether the
        market is open at it (before that session's close)."""
        i = self._last_open(ts.as_unit("ns").asi8)
        safe = np.maximum(i, 0)
        return safe, (i >= 0) & (ts < self.closes[safe])

    def _last_open(self, ns):
        """The index of the last session opening at or before each instant (nanoseconds since
        the epoch, an array or one number); -1 before the first."""
        return np.searchsorted(self._opens_ns, ns, side="right") - 1

    def bar_of(self, ts: pd.DatetimeIndex, interval: str) -> tuple[pd.DatetimeIndex, np.ndarray]:
        """The bar each instant falls in (its open, or its session's date for 1d), and whether
        the market is open at the instant."""
        i, open_ = self.session_of(ts)
        if interval == "1d":
            return self.dates[i], open_
        step, start = interval_delta(interval), self.opens[i]
        return start + ((ts - start) // step) * step, open_

    def stamp_problems(self, ts: pd.DatetimeIndex, interval: str) -> tuple[np.ndarray, np.ndarray]:
        """(market closed, off the grid) for each bar stamp: an intraday bar must open inside a
        session on its grid; a 1d bar is stamped 00:00 UTC of a session date."""
        if interval == "1d":
            dates = ts.normalize()
            off_grid = np.asarray(ts != dates)
            return ~off_grid & ~np.asarray(dates.isin(self.dates)), off_grid
        bars, open_ = self.bar_of(ts, interval)
        return ~open_, open_ & np.asarray(bars != ts)

    def bar_closes(self, opens: pd.DatetimeIndex, interval: str) -> pd.DatetimeIndex:
        """A bar closes one interval after it opens, or at its session's close if sooner; a 1d
        bar (stamped with its session date) at its session's close."""
        if interval == "1d":
            days = self.dates.searchsorted(opens.normalize()).clip(0, len(self.dates) - 1)
            return self.closes[days]
        return self.cut_at_close(opens, opens + interval_delta(interval))

    def cut_at_close(self, opens: pd.DatetimeIndex, ends: pd.DatetimeIndex) -> pd.DatetimeIndex:
        """Bars opening at `opens` would end at `ends`, unless their session closes first."""
        closes = self.closes[self.session_of(opens)[0]]
        return ends.where(ends <= closes, closes)

    def short_bars(self, opens: pd.DatetimeIndex, interval: str) -> np.ndarray:
        """Which intraday bars the session's close cuts short (the last of a day, often; a 1d
        bar is its session, however long)."""
        if interval == "1d":
            return np.zeros(len(opens), dtype=bool)
        return np.asarray(self.bar_closes(opens, interval) - opens < interval_delta(interval))

    def next_bar_close(self, last: pd.Timestamp, interval: str) -> pd.Timestamp:
        """When the bar after the one opening at `last` closes: later in its session, or the
        first bar of the next session."""
        close = self.bar_closes(pd.DatetimeIndex([last]), interval)[0]
        if interval != "1d":
            i, _ = self.session_of(pd.DatetimeIndex([last]))
            if close < self.closes[i[0]]:
                return self.bar_closes(pd.DatetimeIndex([close]), interval)[0]
        following = self.opens.searchsorted(close, side="left")
        opens = self.dates if interval == "1d" else self.opens
        return self.bar_closes(pd.DatetimeIndex([opens[following]]), interval)[0]

    def trading_time(self, start, end, interval: str) -> pd.Timedelta:
        """The time the market is open between `start` and `end`; for 1d, sessions worth 24
        hours each (a part of a session in proportion)."""
        return self._elapsed(pd.Timestamp(end), interval == "1d") - self._elapsed(
            pd.Timestamp(start), interval == "1d"
        )

    def back(self, when: pd.Timestamp, amount: pd.Timedelta, interval: str) -> pd.Timestamp:
        """The instant `amount` of trading time (see trading_time) before `when`."""
        daily = interval == "1d"
        target = self._elapsed(when, daily) - amount
        before = self._before[daily]
        j = int(np.searchsorted(before, target.to_timedelta64(), side="right")) - 1
        j = min(max(j, 0), len(self.opens) - 1)
        into, length = target - pd.Timedelta(before[j]), self.closes[j] - self.opens[j]
        return self.opens[j] + (length * (into / DAY) if daily else into)

    def _elapsed(self, when: pd.Timestamp, daily: bool) -> pd.Timedelta:
        """Trading time from the first session's open to `when` (see trading_time)."""
        at = pd.Timestamp(when).as_unit("ns").value
        i = max(int(self._last_open(at)), 0)
        opened, length = int(self._opens_ns[i]), int(self._closes_ns[i] - self._opens_ns[i])
        done = pd.Timedelta(min(max(at - opened, 0), length), "ns")
        if daily:
            done = DAY * (done / pd.Timedelta(length, "ns"))
        return pd.Timedelta(self._before[daily][i]) + done


Calendar = AlwaysOpen | SessionCalendar


def freshness(
    calendar: Calendar, last: pd.Timestamp, interval: str, now: pd.Timestamp
) -> pd.Timedelta:
    """Trading time since the bar opening at `last` closed (wall time on 24/7)."""
    close = calendar.bar_closes(pd.DatetimeIndex([last]), interval)[0]
    return calendar.trading_time(close, now, interval)


def names(aliases: bool = False) -> tuple[str, ...]:
    """The calendars a setting may name: 24/7, then the exchanges exchange_calendars knows
    (with `aliases`, also their other names: XNAS and NYSE are XNYS)."""
    import exchange_calendars  # imported on use: a 24/7-only setup never pays for it

    known = exchange_calendars.get_calendar_names(include_aliases=aliases)
    return (ALWAYS_OPEN, *sorted(n for n in known if n not in _NOT_EXCHANGES))


@cache
def get(name: str) -> Calendar:
    """The calendar `name` names (cached: an exchange's schedule takes a while to build);
    raises ValueError for an unknown name."""
    if name == ALWAYS_OPEN:
        return AlwaysOpen()
    if name not in names(aliases=True):
        raise ValueError(f"unknown calendar {name!r}")
    import exchange_calendars

    with warnings.catch_warnings():
        # exchange_calendars 4.13 reads tz-aware Series.values, which pandas 3.1 deprecates;
        # its answers are right, the warning is theirs to fix.
        warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
        try:
            calendar = exchange_calendars.get_calendar(name, start=CALENDAR_START)
        except ValueError:  # an exchange whose history starts later: its own default span
            calendar = exchange_calendars.get_calendar(name)
    return SessionCalendar(name, calendar.schedule)


def yahoo_default(ticker: str) -> str:
    """The calendar of a Yahoo ticker that has no [calendars] entry: 24/7 for crypto pairs
    (BTC-USD) and anything else with a dash, FX (EURUSD=X) and futures; the exchange of a known
    suffix (VOD.L -> XLON); otherwise a US listing (SPY, AAPL, ^GSPC) -> XNYS."""
    if "-" in ticker or "=" in ticker:
        return ALWAYS_OPEN
    suffix = ticker[ticker.rfind(".") :] if "." in ticker else ""
    return _YAHOO_SUFFIXES.get(suffix.upper(), "XNYS" if not suffix else ALWAYS_OPEN)
