"""The facade every front end (the Streamlit pages, the CLI) calls; nothing else opens the store.

`Alpha12` ties settings, store, source and clock together and answers the questions a user
asks: what is stored, how fresh it is, and what just happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from alpha12 import analysis, collector, pipeline
from alpha12.clock import Clock, ReplayClock, WallClock, utc
from alpha12.config import Settings, load_settings
from alpha12.monitor import Outcome, PerformanceMonitor
from alpha12.registry import FALLBACK_INTERVAL, Registry
from alpha12.sources import Source, build_source
from alpha12.sources.csv_files import ImportReport, import_csv
from alpha12.store import Store
from alpha12.timeframes import interval_delta

REPLAY_CLOCK_KEY = "replay_clock"


@dataclass
class Alpha12:
    settings: Settings
    store: Store
    source: Source
    clock: Clock
    registry: Registry = field(init=False)
    monitor: PerformanceMonitor = field(init=False)
    _engine: object = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.registry = Registry(self.settings.models_dir, self.store, self.clock)
        self.monitor = PerformanceMonitor(
            self.store, self.registry, lambda: self.settings, self.clock
        )

    @classmethod
    def open(
        cls,
        db: str | Path | None = None,
        config: str | Path | None = None,
        settings: Settings | None = None,
        clock: Clock | None = None,
        source: Source | None = None,
    ) -> Alpha12:
        settings = settings or load_settings(Path(config) if config else None)
        store = Store(db or settings.db_path)
        source = source or build_source(settings)
        clock = clock or _default_clock(settings, store, source)
        return cls(settings, store, source, clock)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.stop()
        self.store.close()

    @property
    def engine(self):
        """The background engine of this process (created on first use, not started)."""
        if self._engine is None:
            from alpha12.engine import Engine

            self._engine = Engine(self)
        return self._engine

    @property
    def live(self) -> bool:
        return bool(self.source.live) and not self.clock.replayed

    @property
    def market_label(self) -> str:
        """What the user is looking at; replayed data is always labelled as not live."""
        if self.live:
            return f"LIVE market data from {self.source.name}"
        return f"REPLAYED market, not live: {self.source.name} at {self.clock.speed:g}x"

    def universe(self) -> list[str]:
        """The configured assets plus every asset with stored bars (e.g. imported from CSV)."""
        stored = self.store.bar_assets()
        return list(self.settings.assets) + [a for a in stored if a not in self.settings.assets]

    def collect_once(self, backoff: collector.Backoff | None = None):
        now = self.clock.now()
        results = collector.collect_once(
            self.store, self.source, self.settings.assets, self.settings.intervals, now, backoff
        )
        self.remember_clock()
        return results

    def remember_clock(self) -> None:
        """Persist replay time, so a restarted app resumes the replay where it stopped."""
        if self.clock.replayed:
            self.store.set_state(REPLAY_CLOCK_KEY, self.clock.now().isoformat())

    def import_csv(
        self, path: str | Path, asset: str | None = None, interval: str | None = None
    ) -> list[ImportReport]:
        # A file holds real history, so its bars are judged against the real time: judged by a
        # replay clock in the past, most of a recent file would be rejected as "in the future".
        reports = import_csv(self.store, Path(path), WallClock().now(), asset, interval)
        for report in reports:
            level = "error" if report.error else "info"
            message = report.error or (
                f"imported {report.imported} bars from {Path(report.path).name} "
                f"({report.rejected_total} rejected, {report.duplicates} duplicates)"
            )
            self.store.log_event(
                self.clock.now(), level, "csv-import", message, report.asset, report.interval
            )
        return reports

    def bar_status(self) -> pd.DataFrame:
        """Per pair: bars, first and last bar, freshness and rejected rows."""
        now = self.clock.now()
        summary = self.store.bar_summary()
        pairs = pd.DataFrame(
            [(a, i) for a in self.universe() for i in self.settings.intervals],
            columns=["asset", "interval"],
        )
        table = pairs.merge(summary, on=["asset", "interval"], how="left")
        table["bars"] = table["bars"].fillna(0).astype(int)
        table["rejected"] = table["rejected"].fillna(0).astype(int)
        closes = table["last_bar"] + table["interval"].map(interval_delta)
        table["freshness_s"] = (now - closes).dt.total_seconds()
        return table

    # -- analysis, training and monitoring ----------------------------------------------

    def pairs(self) -> list[tuple[str, str]]:
        return [(a, i) for a in self.universe() for i in self.settings.intervals]

    def backfill(self, asset: str | None = None, progress=None) -> dict[str, int]:
        """Snapshots and targets for all stored history; rows added per pair."""
        added = {}
        pairs = [p for p in self.pairs() if asset in (None, p[0])]
        for n, (a, i) in enumerate(pairs):
            if progress:
                progress(n / len(pairs), f"{a} {i}")
            added[f"{a}_{i}"] = analysis.backfill_pair(self.store, self.settings, a, i)
        return added

    def analyze_once(self) -> list[pipeline.PairAnalysis]:
        return [
            pipeline.analyze_pair(self.store, self.registry, self.settings, a, i)
            for a, i in self.pairs()
        ]

    def train(
        self, asset: str | None = None, interval: str | None = None, progress=None
    ) -> list[dict]:
        """Train (forced: cooldowns ignored) every matching pair now; one row per pair."""
        now = self.clock.now()
        pairs = [(a, i) for a, i in self.pairs() if asset in (None, a) and interval in (None, i)]
        rows = []
        for n, (a, i) in enumerate(pairs):
            if progress:
                progress(n / len(pairs), f"{a} {i}")
            rows.append(self.retrain(a, i, force=True, trigger="cli"))
        if interval is None:
            for a, message in self.monitor.train_fallbacks(
                sorted({a for a, _ in pairs}), now, "cli"
            ).items():
                rows.append(
                    {
                        "asset": a,
                        "interval": FALLBACK_INTERVAL,
                        "action": "fallback",
                        "message": message,
                    }
                )
        return rows

    def retrain(
        self, asset: str, interval: str, force: bool = False, trigger: str = "forced"
    ) -> dict:
        """Recalibrate one pair now if the rules allow it (or always, with force)."""
        now = self.clock.now()
        assessment = self.monitor.assess(asset, interval, now)
        skip = assessment.decision(forced=force)
        if skip is None:
            outcome = self.monitor.recalibrate_many([assessment], now, trigger)[0]
        else:
            outcome = Outcome(skip)
        self.monitor.record(assessment, outcome, now, trigger)
        return {
            "asset": asset,
            "interval": interval,
            "action": outcome.action,
            "message": outcome.message or "; ".join(assessment.reasons),
            "challenger_brier": outcome.challenger_score,
            "incumbent_brier": outcome.incumbent_score,
            "new_version": outcome.new_version,
        }

    def monitor_once(self) -> dict[str, dict]:
        return self.monitor.monitor_all_timeframes(self.universe(), self.settings.intervals)

    def pair_status(self) -> pd.DataFrame:
        """Per pair: bars and freshness, and the monitor's view (win rate, profit factor,
        trades, pending, status, cooldown, serving model)."""
        now = self.clock.now()
        assessed = pd.DataFrame([self.monitor.assess(a, i, now).as_dict() for a, i in self.pairs()])
        return self.bar_status().merge(assessed, on=["asset", "interval"], how="left")


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
