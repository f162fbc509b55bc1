"""The offline default: a market replayed up to the clock, from the synthetic generator or CSVs.

Replayed data is never live; `name` says so wherever the source is shown.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd

from alpha12.bars import resample
from alpha12.calendars import ALWAYS_OPEN, get
from alpha12.clock import utc
from alpha12.sources import SourceError, closed_between, fetch_each
from alpha12.sources.csv_files import read_bar_file, scan_folder
from alpha12.sources.synthetic import SyntheticMarket, session_bars
from alpha12.timeframes import INTERVALS

SYNTHETIC_ORIGIN = pd.Timestamp("2025-01-01", tz="UTC")
SYNTHETIC_FUTURE_DAYS = 120  # market days served after the replay start


class SyntheticReplay:
    """Seeded synthetic bars; every timeframe is resampled from the same 5m base. An asset
    whose calendar (`calendar_of`, Settings.calendar) has sessions trades only in them
    (synthetic.session_bars)."""

    live = False

    def __init__(
        self,
        seed: int,
        history_days: int,
        future_days: int = SYNTHETIC_FUTURE_DAYS,
        calendar_of=None,
    ):
        self.name = f"synthetic replay, seed {seed} (not live)"
        self.market = SyntheticMarket(seed=seed, origin=SYNTHETIC_ORIGIN)
        self.days = history_days + future_days
        self.default_start = SYNTHETIC_ORIGIN + pd.Timedelta(days=history_days)
        self.calendar_of = calendar_of or (lambda asset: get(ALWAYS_OPEN))
        self._frames: dict[tuple[str, str], pd.DataFrame] = {}
        self._lock = threading.Lock()

    def fetch(self, asset, interval, start, end):
        bars = self._bars(asset, interval)
        return closed_between(bars, interval, start, end, self.calendar_of(asset))

    def fetch_many(self, starts, end):
        return fetch_each(self, starts, end)

    def _bars(self, asset: str, interval: str) -> pd.DataFrame:
        with self._lock:
            if (asset, interval) not in self._frames:
                calendar = self.calendar_of(asset)
                base = self.market.base_bars(asset, self.days)
                if calendar.sessions:
                    base = session_bars(base, calendar)
                for each in INTERVALS:
                    resampled = base if each == "5m" else resample(base, each, calendar)
                    self._frames[(asset, each)] = resampled
            return self._frames[(asset, interval)]


class CsvReplay:
    """A folder of ASSET_INTERVAL.csv files, each through the gate, replayed from a start."""

    live = False

    def __init__(self, folder: str | Path, history_days: int, calendar_of=None):
        self.folder = Path(folder)
        self.name = f"CSV replay of {self.folder} (not live)"
        self.files = scan_folder(self.folder)
        if not self.files:
            raise SourceError(f"{self.folder}: no ASSET_INTERVAL.csv files found")
        self.calendar_of = calendar_of or (lambda asset: get(ALWAYS_OPEN))
        self._frames = {
            (asset, interval): read_bar_file(path, interval, None, self.calendar_of(asset)).bars
            for (asset, interval), path in self.files.items()
        }
        self.default_start = self._default_start(history_days)

    @property
    def assets(self) -> list[str]:
        return sorted({asset for asset, _ in self.files})

    def fetch(self, asset, interval, start, end):
        frame = self._frames.get((asset, interval))
        if frame is None:
            raise SourceError(f"{self.folder} has no {asset}_{interval}.csv")
        return closed_between(frame, interval, start, end, self.calendar_of(asset))

    def fetch_many(self, starts, end):
        return fetch_each(self, starts, end)

    def _default_start(self, history_days: int) -> pd.Timestamp:
        """`history_days` after the latest first bar, but leaving at least a day to replay."""
        non_empty = [f for f in self._frames.values() if len(f)]
        if not non_empty:
            raise SourceError(f"{self.folder}: the CSV files hold no valid bars")
        first = max(f["ts"].iloc[0] for f in non_empty) + pd.Timedelta(days=history_days)
        last = min(f["ts"].iloc[-1] for f in non_empty) - pd.Timedelta(days=1)
        return utc(min(first, last)).floor("1D")
