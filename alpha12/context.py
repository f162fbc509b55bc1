"""The context: what one alpha12 process works with — its settings, store, source, clock,
model registry and monitor — opened and wired together in one place.

The engine needs only this; the facade (services.Alpha12) holds one and answers the pages and
the CLI from it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from alpha12 import collector, logs
from alpha12.alerts import Alerter
from alpha12.clock import Clock, ReplayClock, WallClock, utc
from alpha12.config import EDITABLE, Settings, SettingsError, load_settings, settings_origin
from alpha12.monitor import PerformanceMonitor
from alpha12.registry import Registry
from alpha12.sources import Source, build_source
from alpha12.store import Store, to_json
from alpha12.vocabulary import Pair

REPLAY_CLOCK_KEY = "replay_clock"
SETTINGS_OVERRIDES_KEY = "settings_overrides"
ALERTS_CLOSE_TIMEOUT_S = 5.0  # at exit, queued alerts get this long to go out

log = logging.getLogger(__name__)


@dataclass
class Context:
    settings: Settings
    store: Store
    source: Source
    clock: Clock
    registry: Registry = field(init=False)
    monitor: PerformanceMonitor = field(init=False)
    alerter: Alerter = field(init=False)
    _settings_lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)
    _results_lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)
    _closed: bool = field(init=False, default=False, repr=False)

    def __post_init__(self) -> None:
        self.registry = Registry(self.settings.models_dir, self.store, self.clock)
        # The monitor reads the settings at every run, so edited thresholds apply next run.
        self.monitor = PerformanceMonitor(
            self.store, self.registry, lambda: self.settings, self.clock
        )
        # One alerter per process: its rate limit and its sending thread are shared by all.
        self.alerter = Alerter(self.settings.alerts, self._alert_result)

    @classmethod
    def open(
        cls,
        db: str | Path | None = None,
        config: str | Path | None = None,
        settings: Settings | None = None,
        clock: Clock | None = None,
        source: Source | None = None,
        origin: str | None = None,
    ) -> Context:
        """`origin`: where the given `settings` came from, for the start log line."""
        if settings is None:
            config = Path(config) if config else None
            settings, origin = load_settings(config), settings_origin(config)
        store = Store(db or settings.db_path, settings.memory_limit)
        source = source or build_source(settings)
        clock = clock or _default_clock(settings, store, source)
        context = cls(settings, store, source, clock)
        context.apply_saved_settings()  # thresholds edited in the app hold for every front end
        log.info(
            "opened the store %s (settings from %s; %s; models in %s; memory limit %s)",
            store.path,
            origin or "the caller",
            source.name,
            settings.models_dir,
            settings.memory_limit,
        )
        return context

    def close(self) -> None:
        """Send the queued alerts (briefly), then close the store their results are written
        to; a send still hanging after that reports to the log only."""
        self.alerter.close(ALERTS_CLOSE_TIMEOUT_S)
        with self._results_lock:  # never while the alerter's thread is writing its result
            self._closed = True
            self.store.close()

    def _alert_result(self, level: str, message: str) -> None:
        """An alert's delivery or failure, as an event (and so a log record)."""
        with self._results_lock:
            if self._closed:
                logs.log_event(level, "alerts", message)
            else:
                self.store.log_event(self.clock.now(), level, "alerts", message)

    @property
    def live(self) -> bool:
        return bool(self.source.live) and not self.clock.replayed

    def universe(self) -> list[str]:
        """The configured assets plus every asset with stored bars (e.g. imported from CSV)."""
        stored = self.store.bar_assets()
        return list(self.settings.assets) + [a for a in stored if a not in self.settings.assets]

    def pairs(self) -> list[Pair]:
        return [(a, i) for a in self.universe() for i in self.settings.intervals]

    def collect_once(self, backoff: collector.Backoff | None = None):
        results = collector.collect_once(
            self.store,
            self.source,
            self.settings.assets,
            self.settings.intervals,
            self.clock.now(),
            backoff,
            timeout_s=self.settings.source_timeout_s,
            calendar_of=self.settings.calendar,
        )
        self.remember_clock()
        return results

    def remember_clock(self) -> None:
        """Persist replay time, so a restarted app resumes the replay where it stopped."""
        if self.clock.replayed:
            self.store.set_state(REPLAY_CLOCK_KEY, self.clock.now().isoformat())

    # -- settings edited in the app -------------------------------------------------------

    def timeframe_settings(self) -> pd.DataFrame:
        """The editable settings of every timeframe, one row each."""
        return pd.DataFrame(
            [
                {"interval": i, **{k: getattr(self.settings.timeframe(i), k) for k in EDITABLE}}
                for i in self.settings.intervals
            ]
        )

    def update_timeframe_settings(self, interval: str, changes: dict) -> list[str]:
        """Validate, save, audit and apply new values for one timeframe; the problems found
        (then nothing changes)."""
        unknown = [
            f"{interval}.{key}: cannot be edited here" for key in changes if key not in EDITABLE
        ]
        if unknown:
            return unknown
        # Two sessions (or threads) editing at once: each edit reads what the last one wrote,
        # so none is lost from the saved overrides, the audit or the settings in memory.
        with self._settings_lock:
            current = self.settings.timeframe(interval)
            changed = {k: v for k, v in changes.items() if getattr(current, k) != v}
            if not changed:
                return []
            try:
                updated = self.settings.with_timeframe(interval, **changed)
            except SettingsError as error:
                return error.problems
            saved = self.store.get_state(SETTINGS_OVERRIDES_KEY, {})
            saved[interval] = {**saved.get(interval, {}), **changed}
            audit = [
                [f"timeframes.{interval}.{k}", to_json(getattr(current, k)), to_json(v)]
                for k, v in changed.items()
            ]
            self.store.save_settings(SETTINGS_OVERRIDES_KEY, saved, audit)
            self.settings = updated
            return []

    def apply_saved_settings(self) -> None:
        """Put the timeframe settings saved from the app on top of the loaded ones. A saved
        value that no longer validates is skipped, with a warning event."""
        for interval, changes in self.store.get_state(SETTINGS_OVERRIDES_KEY, {}).items():
            try:
                self.settings = self.settings.with_timeframe(interval, **changes)
            except (SettingsError, KeyError, TypeError) as error:
                self.store.log_event(
                    self.clock.now(),
                    "warning",
                    "settings",
                    f"saved settings for {interval} not applied: {error}",
                )


def _default_clock(settings: Settings, store: Store, source: Source) -> Clock:
    if source.live:
        return WallClock()
    saved = store.get_state(REPLAY_CLOCK_KEY)
    if saved:
        start = utc(saved)
    elif settings.replay_start:
        start = utc(settings.replay_start)
    else:
        start = source.default_start
    return ReplayClock(start, settings.replay_speed)
