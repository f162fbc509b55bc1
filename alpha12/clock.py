"""Clocks: every "now" in alpha12 comes from one of these, so replay and tests control time."""

from __future__ import annotations

import threading
import time
from typing import Protocol

import pandas as pd


def utc(value: str | pd.Timestamp) -> pd.Timestamp:
    """A timestamp in UTC; a naive value is taken to be UTC already."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


class Clock(Protocol):
    replayed: bool  # True when the market time is not the real time (replay or test)

    def now(self) -> pd.Timestamp: ...


class WallClock:
    """The real UTC time."""

    replayed = False
    speed = 1.0

    def now(self) -> pd.Timestamp:
        return pd.Timestamp(time.time_ns(), unit="ns", tz="UTC")


class ReplayClock:
    """Market time that starts at `start` and runs `speed` market seconds per real second.

    Pausing freezes market time; resuming continues from where it stood, so a paused demo
    never skips bars.
    """

    replayed = True

    def __init__(self, start: str | pd.Timestamp, speed: float, monotonic=time.monotonic):
        if speed <= 0:
            raise ValueError("replay speed must be > 0 market seconds per real second")
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._anchor_market = utc(start)
        self._anchor_real = monotonic()
        self._speed = float(speed)
        self._paused = False

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def paused(self) -> bool:
        return self._paused

    def now(self) -> pd.Timestamp:
        with self._lock:
            return self._now_locked()

    def pause(self) -> None:
        with self._lock:
            self._rebase()
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._rebase()  # a running clock keeps its time; a paused one restarts from it
            self._paused = False

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("replay speed must be > 0 market seconds per real second")
        with self._lock:
            self._rebase()
            self._speed = float(speed)

    def _rebase(self) -> None:
        self._anchor_market = self._now_locked()
        self._anchor_real = self._monotonic()

    def _now_locked(self) -> pd.Timestamp:
        if self._paused:
            return self._anchor_market
        elapsed = self._monotonic() - self._anchor_real
        return self._anchor_market + pd.Timedelta(seconds=elapsed * self._speed)


class ManualClock:
    """A clock that moves only when told to: for tests and deterministic walk-forwards."""

    replayed = True
    speed = 0.0

    def __init__(self, start: str | pd.Timestamp):
        self._now = utc(start)
        self._lock = threading.Lock()

    def now(self) -> pd.Timestamp:
        with self._lock:
            return self._now

    def advance(self, delta: pd.Timedelta | None = None, **units: float) -> pd.Timestamp:
        """Move forward by `delta` or by keyword units (minutes=5, hours=2, ...)."""
        step = delta if delta is not None else pd.Timedelta(**units)
        if step < pd.Timedelta(0):
            raise ValueError("a clock never goes backwards")
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: str | pd.Timestamp) -> None:
        when = utc(when)
        with self._lock:
            if when < self._now:
                raise ValueError("a clock never goes backwards")
            self._now = when
