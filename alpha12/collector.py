"""Collection: fetch new bars for every asset x timeframe, pass them through the gate, store them.

One pair failing never stops the others; every problem becomes an event. A pair whose source
failed temporarily is backed off exponentially (in clock time) and retried by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from alpha12.bars import BarsError, validate
from alpha12.sources import Source, SourceError, TemporarySourceError
from alpha12.store import Store
from alpha12.timeframes import interval_delta

BACKOFF_BASE = pd.Timedelta(seconds=30)
BACKOFF_CAP = pd.Timedelta(minutes=30)


@dataclass
class PairCollection:
    asset: str
    interval: str
    new_bars: int = 0
    rejected: int = 0
    error: str | None = None
    skipped: bool = False  # backing off after an earlier temporary error


@dataclass
class Backoff:
    """Per-pair exponential backoff after temporary source errors."""

    failures: dict[tuple[str, str], int] = field(default_factory=dict)
    retry_at: dict[tuple[str, str], pd.Timestamp] = field(default_factory=dict)

    def waiting(self, key: tuple[str, str], now: pd.Timestamp) -> bool:
        return key in self.retry_at and now < self.retry_at[key]

    def failed(self, key: tuple[str, str], now: pd.Timestamp) -> pd.Timedelta:
        self.failures[key] = self.failures.get(key, 0) + 1
        delay = min(BACKOFF_BASE * 2 ** (self.failures[key] - 1), BACKOFF_CAP)
        self.retry_at[key] = now + delay
        return delay

    def succeeded(self, key: tuple[str, str]) -> None:
        self.failures.pop(key, None)
        self.retry_at.pop(key, None)


def collect_pair(
    store: Store,
    source: Source,
    asset: str,
    interval: str,
    now: pd.Timestamp,
    backoff: Backoff | None = None,
) -> PairCollection:
    """Fetch `asset`/`interval` bars since the last stored one; never raises for source trouble."""
    result = PairCollection(asset, interval)
    key = (asset, interval)
    if backoff and backoff.waiting(key, now):
        result.skipped = True
        return result
    last = store.last_bar_ts(asset, interval)
    start = None if last is None else last + interval_delta(interval)
    try:
        checked = validate(source.fetch(asset, interval, start, now), interval, now)
    except TemporarySourceError as error:
        delay = backoff.failed(key, now) if backoff else None
        result.error = f"{error}" + (f"; retrying in {delay}" if delay is not None else "")
        store.log_event(now, "warning", "collector", result.error, asset, interval)
        return result
    except (SourceError, BarsError) as error:
        result.error = str(error)
        store.log_event(now, "error", "collector", result.error, asset, interval)
        return result
    if backoff:
        backoff.succeeded(key)
    result.new_bars = store.upsert_bars(asset, interval, checked.bars)
    counts = checked.reason_counts()
    result.rejected = sum(counts.values())
    if counts:
        store.record_rejections(asset, interval, source.name, counts, now)
        summary = ", ".join(f"{n} {reason}" for reason, n in counts.items())
        store.log_event(now, "warning", "collector", f"rejected rows: {summary}", asset, interval)
    return result


def collect_once(
    store: Store,
    source: Source,
    assets,
    intervals,
    now: pd.Timestamp,
    backoff: Backoff | None = None,
) -> list[PairCollection]:
    """One pass over assets x intervals. Unexpected errors are events, not crashes."""
    results = []
    for asset in assets:
        for interval in intervals:
            try:
                results.append(collect_pair(store, source, asset, interval, now, backoff))
            except Exception as error:  # one pair's bug must not stop the others
                message = f"collection failed: {type(error).__name__}: {error}"
                store.log_event(now, "error", "collector", message, asset, interval)
                results.append(PairCollection(asset, interval, error=message))
    return results
