"""The facade every front end (the Streamlit pages, the CLI) calls.

`Alpha12` holds the process's context (settings, store, source, clock, registry, monitor) and
its engine, and answers what a user asks: what is stored and how fresh, how each pair is
doing, what the models are, what just happened. Its methods delegate: the SQL is the store's,
the maths is in pure modules (metrics, drift, snapshots), the rules are the monitor's.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from alpha12 import archive, backup, calendars, cycle, drift
from alpha12.clock import WallClock
from alpha12.context import Context
from alpha12.engine import Engine
from alpha12.lab.desk import LabDesk
from alpha12.metrics import rolling_performance
from alpha12.monitor import MIN_CALIBRATION_PREDICTIONS
from alpha12.sources.csv_files import ImportReport, import_logged, import_upload
from alpha12.store import SnapshotQuery
from alpha12.vocabulary import FALLBACK_INTERVAL, OPEN_JOBS, EngineState, Pair
from alpha12.warmstart import WARM_START_PROGRESS_KEY


class Alpha12:
    def __init__(self, context: Context):
        self.context = context
        self.lab = LabDesk(context)  # the recalibration lab: runs, results, applying them
        self._engine: Engine | None = None

    @classmethod
    def open(cls, *args, **kwargs) -> Alpha12:
        """Open a context (see Context.open for the arguments) and wrap it."""
        return cls(Context.open(*args, **kwargs))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.stop()
        self.context.close()

    # -- what the context holds -----------------------------------------------------------

    @property
    def settings(self):
        return self.context.settings

    @settings.setter
    def settings(self, value) -> None:
        self.context.settings = value

    store = property(lambda self: self.context.store)
    source = property(lambda self: self.context.source)
    clock = property(lambda self: self.context.clock)
    registry = property(lambda self: self.context.registry)
    monitor = property(lambda self: self.context.monitor)
    live = property(lambda self: self.context.live)

    @property
    def engine(self) -> Engine:
        """The background engine of this process (created on first use, not started)."""
        if self._engine is None:
            self._engine = Engine(self.context)
        return self._engine

    @property
    def market_label(self) -> str:
        """What the user is looking at; replayed data is always labelled as not live."""
        if self.live:
            return f"LIVE market data from {self.source.name}"
        return f"REPLAYED market, not live: {self.source.name} at {self.clock.speed:g}x"

    def universe(self) -> list[str]:
        return self.context.universe()

    def pairs(self) -> list[Pair]:
        return self.context.pairs()

    def collect_once(self, backoff=None):
        return self.context.collect_once(backoff)

    # -- bars -----------------------------------------------------------------------------

    def import_csv(
        self,
        path: str | Path,
        asset: str | None = None,
        interval: str | None = None,
        progress=None,
    ) -> list[ImportReport]:
        # A file holds real history, so its bars are judged against the real time: judged by a
        # replay clock in the past, most of a recent file would be rejected as "in the future".
        return import_logged(
            self.store,
            Path(path),
            WallClock().now(),
            self.clock.now(),
            asset,
            interval,
            progress,
            self.settings.calendar,
        )

    def import_csv_upload(
        self, name: str, data: bytes, asset: str | None = None, interval: str | None = None
    ) -> list[ImportReport]:
        return import_upload(
            self.store,
            name,
            data,
            WallClock().now(),
            self.clock.now(),
            asset,
            interval,
            self.settings.calendar,
        )

    def import_exchange(
        self, asset: str, interval: str, since: pd.Timestamp, progress=None
    ) -> dict[str, int]:
        """Years of `asset` bars from the settings' ccxt exchange, through the same gate as
        every bar (validated, rejections recorded with their reason); the counts."""
        from alpha12.sources.exchange import import_history  # ccxt is optional: loaded on use

        return import_history(
            self.store, self.settings, asset, interval, since, self.clock.now(), progress
        )

    def bar_status(self) -> pd.DataFrame:
        """Per pair: bars, first and last bar, freshness and rejected rows."""
        pairs = pd.DataFrame(self.pairs(), columns=["asset", "interval"])
        table = pairs.merge(self.store.bar_summary(), on=["asset", "interval"], how="left")
        table["bars"] = table["bars"].fillna(0).astype(int)
        table["rejected"] = table["rejected"].fillna(0).astype(int)
        # Trading time since the last bar closed: data does not age while its market is closed.
        now = self.clock.now()
        table["freshness_s"] = self._each_pair(
            table, lambda cal, i, last: calendars.freshness(cal, last, i, now).total_seconds()
        )
        return table

    def collection_status(self) -> pd.DataFrame:
        """bar_status plus when each pair's next bar closes on its asset's calendar (when it
        is collected next)."""
        table = self.bar_status()
        closes = self._each_pair(table, lambda cal, i, last: cal.next_bar_close(last, i))
        table["next_close"] = pd.Series(closes, index=table.index).astype("datetime64[us, UTC]")
        return table

    def _each_pair(self, table: pd.DataFrame, answer) -> list:
        """answer(calendar, interval, last bar) for each row of a bar table; None without bars."""
        rows = zip(table["asset"], table["interval"], table["last_bar"], strict=True)
        return [
            None if pd.isna(last) else answer(self.settings.calendar(asset), interval, last)
            for asset, interval, last in rows
        ]

    def price_history(self, asset: str, interval: str, bars: int = 400) -> pd.DataFrame:
        """The newest bars, each marked `short` when its session's close cut it (a stock's
        last bar of a day, a half day's)."""
        history = self.store.read_bars(asset, interval, tail=bars)
        calendar = self.settings.calendar(asset)
        return history.assign(short=calendar.short_bars(pd.DatetimeIndex(history["ts"]), interval))

    # -- analysis, training and monitoring ------------------------------------------------

    def backfill(self, asset: str | None = None, progress=None) -> dict[str, int]:
        """Snapshots and targets for all stored history; rows added per pair."""
        pairs = [p for p in self.pairs() if asset in (None, p[0])]
        added = {}
        for n, (a, i) in enumerate(pairs):
            if progress:
                progress(n / len(pairs), f"{a} {i}")
            added[f"{a}_{i}"] = cycle.backfill_pair(self.store, self.settings, a, i)
        return added

    def archive_snapshots(self, older_than_days: float, folder: Path | None = None):
        """Move snapshots older than `older_than_days` (clock time) that no model needs into a
        Parquet file in `folder` (default: archive/ beside the database)."""
        cutoff = self.clock.now() - pd.Timedelta(days=older_than_days)
        return archive.archive_snapshots(
            self.store, self.settings, cutoff, folder or self.store.path.parent / "archive"
        )

    def train(
        self, asset: str | None = None, interval: str | None = None, progress=None
    ) -> list[dict]:
        """Train (forced: cooldowns ignored) every matching pair now, and the assets'
        fallbacks when every timeframe is trained; one row per model."""
        pairs = [(a, i) for a, i in self.pairs() if asset in (None, a) and interval in (None, i)]
        return self.monitor.train_pairs(pairs, fallbacks=interval is None, progress=progress)

    def retrain(
        self, asset: str, interval: str, force: bool = False, trigger: str = "forced"
    ) -> dict:
        """Recalibrate one pair now if the rules allow it (or always, with force)."""
        return self.monitor.retrain(asset, interval, force, trigger)[1].as_row(asset, interval)

    def monitor_once(self) -> dict[str, dict]:
        return self.monitor.monitor_all_timeframes(self.universe(), self.settings.intervals)

    def request_retrain(self, asset: str, interval: str, requested_by: str = "ui") -> int:
        """Queue a forced retrain of one pair (merged with one already waiting); its job id."""
        return self.engine.request_retrain(asset, interval, requested_by)

    def request_retrain_timeframe(self, interval: str, requested_by: str = "ui") -> list[int]:
        """Queue a forced retrain of every asset on `interval`: one job per pair."""
        return [self.request_retrain(a, interval, requested_by) for a in self.universe()]

    def open_jobs(self) -> pd.DataFrame:
        return self.store.open_jobs()

    def latest_job(self, asset: str, interval: str) -> dict | None:
        """The pair's newest job; once finished, with the forced recalibration it recorded
        (action, challenger and incumbent Brier scores, new version)."""
        job = self.store.latest_job(asset, interval)
        if job is None:
            return None
        job["active"] = job["status"] in OPEN_JOBS
        outcome = self.store.first_forced_since(asset, interval, job["started_at"])
        if not job["active"] and outcome is not None:
            job.update(outcome)
        return job

    # -- the pages' views -----------------------------------------------------------------

    def pair_status(self) -> pd.DataFrame:
        """Per pair: bars and freshness, and the monitor's view (win rate, profit factor,
        trades, pending, status, cooldown, serving model)."""
        now = self.clock.now()
        assessed = pd.DataFrame([x.as_dict() for x in self.monitor.assess_all(self.pairs(), now)])
        return self.bar_status().merge(assessed, on=["asset", "interval"], how="left")

    def overview(self) -> pd.DataFrame:
        """pair_status, plus when the serving model was trained (as of) and its age in clock
        time."""
        grid = self.pair_status()
        grid["model_version"] = grid["model_version"].astype("Int64")
        grid["model_interval"] = grid["interval"].where(
            grid["model_scope"] != "fallback", FALLBACK_INTERVAL
        )
        trained = self.store.models_trained_as_of().astype({"model_version": "Int64"})
        grid = grid.merge(trained, on=["asset", "model_interval", "model_version"], how="left")
        grid["model_age_s"] = (self.clock.now() - grid["model_as_of"]).dt.total_seconds()
        return grid

    def pair_overview(self, asset: str, interval: str) -> dict:
        grid = self.overview()
        return grid[(grid["asset"] == asset) & (grid["interval"] == interval)].iloc[0].to_dict()

    def warm_start_progress(self) -> dict | None:
        """{progress, message} while this process's engine runs the warm start, else None."""
        if self.engine.state != EngineState.WARMING_UP:
            return None
        saved = self.store.get_state(WARM_START_PROGRESS_KEY)
        return saved or {"progress": 0.0, "message": "starting"}

    def recalibration_log(
        self,
        asset: str | None = None,
        interval: str | None = None,
        actions: tuple[str, ...] | None = None,
        routine: bool = True,
        after_id: int = 0,
        limit: int = 200,
    ) -> pd.DataFrame:
        """Recalibration decisions, newest (clock time) first; `routine=False` leaves out the
        pairs merely found healthy or waiting for trades (most rows)."""
        return self.store.recalibration_log(asset, interval, actions, routine, after_id, limit)

    def latest_recalibration_id(self) -> int:
        return self.store.latest_recalibration_id()

    def trades(self, asset: str, interval: str, limit: int = 2000) -> pd.DataFrame:
        """The pair's real setups (live and warm-start), newest first."""
        return self.store.pair_setups(asset, interval, limit)

    def shadow_trades(self, asset: str, interval: str, limit: int = 2000) -> pd.DataFrame:
        """The pair's shadow setups (a challenger's in shadow, or a serving model's without an
        edge), newest first."""
        return self.store.pair_setups(asset, interval, limit, shadow=True)

    def performance(self, asset: str, interval: str, window: int) -> pd.DataFrame:
        """The pair's closed trades by exit time with rolling win rate and profit factor over
        `window` trades and the equity curve in R."""
        return rolling_performance(self.store.closed_trades(asset, interval), window)

    # -- models ---------------------------------------------------------------------------

    def model_card(self, asset: str, interval: str) -> dict | None:
        """The model serving the pair (its own or the fallback): its record, metrics, feature
        importances and training window; None when no model serves."""
        return self.registry.model_card(asset, interval)

    def calibration(self, asset: str, interval: str) -> dict | None:
        """The serving model's calibration at training (its hold-out slice) and live (its
        resolved predictions since it began serving: models.calibration), with the gap that
        degrades it and the predictions needed to judge; None when no model serves."""
        assessment = self.monitor.assess(asset, interval)
        if not assessment.has_model:
            return None
        trained = assessment.model_metrics
        return {
            "version": assessment.model_version,
            "trained": {
                "ece": trained.get("ece"),
                "reliability": trained.get("reliability", []),
                "predictions": trained.get("eval_rows", 0),
            },
            "live": assessment.calibration or {"ece": None, "reliability": [], "predictions": 0},
            "max_gap": assessment.thresholds.max_calibration_gap,
            "min_predictions": MIN_CALIBRATION_PREDICTIONS,
        }

    def model_versions(self, asset: str, interval: str) -> pd.DataFrame:
        """Every version of one pair's model (interval "all" for the fallback), newest first,
        with its headline metrics as columns."""
        return self.registry.version_table(asset, interval)

    def roll_back(self, asset: str, interval: str, version: int) -> None:
        """Make an earlier (or any other) version serve again; raises RegistryError."""
        self.registry.activate(asset, interval, version)
        self.store.log_event(
            self.clock.now(), "info", "ui", f"model v{version} re-activated", asset, interval
        )

    # -- snapshots ------------------------------------------------------------------------

    def snapshot_page(
        self,
        query: SnapshotQuery,
        order_by: str = "ts",
        descending: bool = True,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[pd.DataFrame, int]:
        """One page of the matching snapshots, and how many match."""
        return self.store.snapshot_page(query, order_by, descending, limit, offset)

    def snapshot_export(self, query: SnapshotQuery, file_format: str) -> bytes:
        return self.store.snapshot_export(query, file_format)

    def snapshot_choices(self) -> dict:
        return self.store.snapshot_choices()

    def feature_sample(
        self, query: SnapshotQuery, feature: str, rows: int = 20_000
    ) -> pd.DataFrame:
        """A random sample (value, target) of one feature over the labelled matching rows."""
        return self.store.feature_sample(query, feature, rows)

    def feature_drift(self, asset: str, interval: str, recent: int = 500) -> dict | None:
        """PSI of each market feature: the pair's `recent` newest snapshots after the serving
        model's training window against those inside it ("psi" is None while either side has
        too few rows). None when no model serves the pair."""
        card = self.model_card(asset, interval)
        if card is None or pd.isna(card["window_start"]):
            return None
        start, end = card["window_start"], card["window_end"]
        reference = self.store.snapshot_features(asset, interval, start=start, end=end)
        latest = self.store.snapshot_features(asset, interval, after=end, newest=recent)
        return {
            "window_start": start,
            "window_end": end,
            "reference_rows": len(reference),
            "recent_rows": len(latest),
            "psi": drift.drift_table(reference, latest),
        }

    # -- system ---------------------------------------------------------------------------

    def system_status(self) -> dict:
        """The engine (state, heartbeat, restarts, next monitor and collection) and the clock."""
        clock = self.clock
        return {
            **self.engine.status(),
            "clock": "replay" if clock.replayed else "wall",
            "clock_now": clock.now(),
            "speed": getattr(clock, "speed", 1.0),
            "paused": bool(getattr(clock, "paused", False)),
            "monitor_period_minutes": self.settings.monitor_period_minutes,
        }

    def backup(self, to_dir: str | Path | None = None, progress=None) -> backup.Manifest:
        """A verified copy of the store and the models, taken through this process's open
        store while the engine runs; by default into a new folder beside the database named by
        the time (backup-YYYYmmdd-HHMMSS)."""
        folder = Path(to_dir) if to_dir else self.default_backup_folder()
        manifest = backup.backup(self.store, self.settings.models_dir, folder, progress)
        self.store.log_event(
            self.clock.now(),
            "info",
            "backup",
            f"backup written to {folder}: {sum(manifest.tables.values())} rows, "
            f"{len(manifest.models)} model files, verified",
        )
        return manifest

    def default_backup_folder(self) -> Path:
        return self.store.path.parent / f"backup-{WallClock().now():%Y%m%d-%H%M%S}"

    def send_test_alert(self, timeout: float = 30.0) -> tuple[bool, str]:
        """Send a test alert to every configured URL and wait for it; whether it reached them
        all, and the result in words (also an event: who tested and what came of it)."""
        delivered, message = self.context.alerter.test(timeout)
        self.store.log_event(self.clock.now(), "info", "alerts", f"test alert: {message}")
        return delivered, message

    def recent_errors(self, limit: int = 50) -> pd.DataFrame:
        return self.store.events(limit, min_level="warning")

    def timeframe_settings(self) -> pd.DataFrame:
        """The editable settings of every timeframe, one row each."""
        return self.context.timeframe_settings()

    def update_timeframe_settings(self, interval: str, changes: dict) -> list[str]:
        """Validate, save, audit and apply new values for one timeframe; the problems found
        (then nothing changes). The monitor applies them at its next run."""
        return self.context.update_timeframe_settings(interval, changes)

    def settings_audit(self, limit: int = 100) -> pd.DataFrame:
        return self.store.settings_audit(limit)
