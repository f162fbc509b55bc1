"""The facade every front end (the Streamlit pages, the CLI) calls; nothing else opens the store.

`Alpha12` ties settings, store, source and clock together and answers the questions a user
asks: what is stored, how fresh it is, and what just happened.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alpha12 import analysis, archive, collector
from alpha12.clock import Clock, ReplayClock, WallClock, utc
from alpha12.config import Settings, SettingsError, load_settings
from alpha12.engine import ENGINE_STATE_KEY
from alpha12.features import FEATURE_NAMES
from alpha12.monitor import Outcome, PerformanceMonitor
from alpha12.registry import FALLBACK_INTERVAL, Registry
from alpha12.sources import Source, build_source
from alpha12.sources.csv_files import ImportReport, import_csv
from alpha12.store import Store, to_json
from alpha12.timeframes import interval_delta
from alpha12.vocabulary import OPEN_JOBS, ROUTINE_ACTIONS, EngineState, PairStatus

REPLAY_CLOCK_KEY = "replay_clock"
# Uploads in the app; .streamlit/config.toml's server.maxUploadSize says the same to the browser.
MAX_UPLOAD_MB = 50
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024


@dataclass
class Alpha12:
    settings: Settings
    store: Store
    source: Source
    clock: Clock
    registry: Registry = field(init=False)
    monitor: PerformanceMonitor = field(init=False)
    _engine: object = field(init=False, default=None)
    _settings_lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)

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
        app = cls(settings, store, source, clock)
        app.apply_saved_settings()  # thresholds edited in the app hold for every front end
        return app

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
            self.store,
            self.source,
            self.settings.assets,
            self.settings.intervals,
            now,
            backoff,
            timeout_s=self.settings.source_timeout_s,
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

    def import_csv_upload(
        self, name: str, data: bytes, asset: str | None = None, interval: str | None = None
    ) -> list[ImportReport]:
        """A CSV uploaded in the app, imported as `import_csv` imports a file (its name, or
        `asset` and `interval`, tell the pair). Over MAX_UPLOAD_BYTES it is refused before the
        store is touched."""
        if len(data) > MAX_UPLOAD_BYTES:
            error = (
                f"{name}: {len(data):,} bytes is over the upload limit of {MAX_UPLOAD_MB} MB; "
                "import larger files with `python -m alpha12 import-csv`"
            )
            return [ImportReport(name, asset, interval, error=error)]
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / upload_file_name(name)  # the user's name never picks a path
            path.write_bytes(data)
            reports = self.import_csv(path, asset, interval)
        for report in reports:
            report.path = name
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

    def archive_snapshots(self, older_than_days: float, folder: Path | None = None):
        """Move snapshots older than `older_than_days` (clock time) that no model needs into a
        Parquet file in `folder` (default: archive/ beside the database)."""
        cutoff = self.clock.now() - pd.Timedelta(days=older_than_days)
        return archive.archive_snapshots(
            self.store, cutoff, folder or self.store.path.parent / "archive"
        )

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
        assessed = pd.DataFrame([x.as_dict() for x in self.monitor.assess_all(self.pairs(), now)])
        return self.bar_status().merge(assessed, on=["asset", "interval"], how="left")

    # -- views for the app --
    # What the Streamlit pages show and change; each page calls these and never the store.

    def warm_start_progress(self) -> dict | None:
        """{progress, message} while this process's engine runs the warm start, else None."""
        if self.engine.state != EngineState.WARMING_UP:
            return None
        return self.store.get_state(WARM_START_KEY) or {"progress": 0.0, "message": "starting"}

    def overview(self) -> pd.DataFrame:
        """pair_status, plus when the serving model was trained (as of) and its age in clock
        time."""
        grid = self.pair_status()
        grid["model_version"] = grid["model_version"].astype("Int64")
        grid["model_interval"] = grid["interval"].where(
            grid["model_scope"] != "fallback", FALLBACK_INTERVAL
        )
        trained = self.store.query(
            "SELECT asset, interval AS model_interval, version AS model_version, "
            "as_of AS model_as_of FROM models"
        ).astype({"model_version": "Int64"})
        grid = grid.merge(trained, on=["asset", "model_interval", "model_version"], how="left")
        grid["model_age_s"] = (self.clock.now() - grid["model_as_of"]).dt.total_seconds()
        return grid

    def pair_overview(self, asset: str, interval: str) -> dict:
        grid = self.overview()
        return grid[(grid["asset"] == asset) & (grid["interval"] == interval)].iloc[0].to_dict()

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
        clauses, params = _equal_to({"asset": asset, "interval": interval})
        if actions is not None:
            clauses.append("list_contains(?, action)")
            params.append(list(actions))
        if not routine:
            clauses.append("NOT list_contains(?, action)")
            params.append(list(ROUTINE_ACTIONS))
        return self.store.query(
            f"SELECT * FROM recalibrations WHERE {' AND '.join([*clauses, 'id > ?'])} "
            "ORDER BY ts DESC, id DESC LIMIT ?",
            [*params, after_id, limit],
        )

    def latest_recalibration_id(self) -> int:
        return int(self.store.scalar("SELECT coalesce(max(id), 0) FROM recalibrations"))

    def request_retrain(self, asset: str, interval: str, requested_by: str = "ui") -> int:
        """Queue a forced retrain of one pair (merged with one already waiting); its job id."""
        return self.engine.request_retrain(asset, interval, requested_by)

    def request_retrain_timeframe(self, interval: str, requested_by: str = "ui") -> list[int]:
        """Queue a forced retrain of every asset on `interval`: one job per pair."""
        return [self.request_retrain(a, interval, requested_by) for a in self.universe()]

    def open_jobs(self) -> pd.DataFrame:
        return self.store.query(
            "SELECT * FROM jobs WHERE status IN (?, ?) ORDER BY id", list(OPEN_JOBS)
        )

    def latest_job(self, asset: str, interval: str) -> dict | None:
        """The pair's newest job; once finished, with the forced recalibration it recorded
        (action, challenger and incumbent Brier scores, new version)."""
        jobs = self.store.query(
            "SELECT * FROM jobs WHERE asset = ? AND interval = ? ORDER BY id DESC LIMIT 1",
            [asset, interval],
        )
        if jobs.empty:
            return None
        job = jobs.iloc[0].to_dict()
        job["active"] = job["status"] in OPEN_JOBS
        outcome = self.store.query(
            """SELECT action, challenger_score, incumbent_score, new_version FROM recalibrations
               WHERE asset = ? AND interval = ? AND trigger = 'forced' AND ts >= ?
               ORDER BY id LIMIT 1""",
            [asset, interval, job["started_at"]],
        )
        if not job["active"] and not outcome.empty:
            job.update(outcome.iloc[0].to_dict())
        return job

    def trades(self, asset: str, interval: str, limit: int = 2000) -> pd.DataFrame:
        """The pair's setups (live and warm-start), newest first."""
        return self.store.query(
            "SELECT * EXCLUDE (asset, interval) FROM setups WHERE asset = ? AND interval = ? "
            "ORDER BY ts DESC LIMIT ?",
            [asset, interval, limit],
        )

    def performance(self, asset: str, interval: str, window: int) -> pd.DataFrame:
        """The pair's closed trades by exit time with rolling win rate and profit factor over
        `window` trades and the equity curve in R."""
        closed = self.store.query(
            "SELECT exit_ts, pnl_pct, r_multiple, origin, model_version, model_scope FROM setups "
            "WHERE asset = ? AND interval = ? AND status = 'closed' ORDER BY exit_ts, id",
            [asset, interval],
        )
        return rolling_performance(closed, window)

    def price_history(self, asset: str, interval: str, bars: int = 400) -> pd.DataFrame:
        return self.store.read_bars(asset, interval, tail=bars)

    def model_card(self, asset: str, interval: str) -> dict | None:
        """The model serving the pair (its own or the fallback): its record, metrics, feature
        importances and training window; None when no model serves."""
        served = self.registry.load_timeframe_model(asset, interval)
        if served is None:
            return None
        record = self.store.query(
            "SELECT * FROM models WHERE asset = ? AND interval = ? AND version = ?",
            [served.asset, served.interval, served.version],
        ).iloc[0]
        meta = self._version_meta(served.asset, served.interval, served.version)
        return {
            **record.drop(["metrics", "path", "sha256"]).to_dict(),
            "metrics": _json_numbers(record["metrics"]),
            "importances": meta.get("feature_importances", {}),
            "hyper_parameters": meta.get("hyper_parameters", {}),
        }

    def _version_meta(self, asset: str, interval: str, version: int) -> dict:
        path = self.registry.pair_dir(asset, interval) / "versions" / f"v{version}" / "meta.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):  # a missing file only costs the card its importances
            return {}

    def model_versions(self, asset: str, interval: str) -> pd.DataFrame:
        """Every version of one pair's model (interval "all" for the fallback), newest first,
        with its headline metrics as columns."""
        versions = self.registry.versions(asset, interval)
        metrics = pd.DataFrame(
            [_json_numbers(m) for m in versions["metrics"]], columns=list(MODEL_METRICS)
        )
        return pd.concat(
            [versions.drop(columns=["metrics", "path", "sha256"]), metrics[list(MODEL_METRICS)]],
            axis=1,
        )

    def roll_back(self, asset: str, interval: str, version: int) -> None:
        """Make an earlier (or any other) version serve again; raises RegistryError."""
        self.registry.activate(asset, interval, version)
        self.store.log_event(
            self.clock.now(), "info", "ui", f"model v{version} re-activated", asset, interval
        )

    def snapshot_page(
        self,
        query: SnapshotQuery,
        order_by: str = "ts",
        descending: bool = True,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[pd.DataFrame, int]:
        """One page of the matching snapshots, sorted and paged in DuckDB, and how many match."""
        if order_by not in SNAPSHOT_COLUMNS:
            raise ValueError(f"cannot sort snapshots by {order_by!r}")
        where, params = query.where()
        total = self.store.scalar(f"SELECT count(*) FROM snapshots WHERE {where}", params)
        order = f"ORDER BY {order_by} {'DESC' if descending else 'ASC'} NULLS LAST, id"
        # Page the ids first and read whole rows for that page only: sorting 50 wide columns
        # to skip to a deep offset is several times slower.
        rows = self.store.query(
            f"SELECT * FROM snapshots WHERE id IN (SELECT id FROM snapshots WHERE {where} "
            f"{order} LIMIT ? OFFSET ?) {order}",
            [*params, int(limit), int(offset)],
        )
        return rows, int(total)

    def snapshot_export(self, query: SnapshotQuery, file_format: str) -> bytes:
        """Every matching snapshot as a CSV or Parquet file, written by DuckDB."""
        if file_format not in ("csv", "parquet"):
            raise ValueError(f"unknown export format {file_format!r}")
        where, params = query.where()
        options = "FORMAT csv, HEADER" if file_format == "csv" else "FORMAT parquet"
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"snapshots.{file_format}"
            self.store.cursor().execute(  # the path is a parameter too: any folder name works
                f"COPY (SELECT * FROM snapshots WHERE {where} ORDER BY ts, id) TO ? ({options})",
                [*params, str(path)],
            )
            return path.read_bytes()

    def snapshot_choices(self) -> dict:
        """Values the snapshot filters offer: sources, model versions and the time range."""
        first, last = (
            self.store.cursor().execute("SELECT min(ts), max(ts) FROM snapshots").fetchall()[0]
        )
        return {
            "sources": self.store.query("SELECT DISTINCT source FROM snapshots ORDER BY 1")[
                "source"
            ].tolist(),
            "model_versions": self.store.query(
                "SELECT DISTINCT model_version FROM snapshots WHERE model_version IS NOT NULL "
                "ORDER BY 1"
            )["model_version"].tolist(),
            "first": first,
            "last": last,
        }

    def feature_sample(
        self, query: SnapshotQuery, feature: str, rows: int = 20_000
    ) -> pd.DataFrame:
        """A random sample (value, target) of one feature over the labelled matching rows."""
        if feature not in FEATURE_NAMES:
            raise ValueError(f"unknown feature {feature!r}")
        where, params = query.where()
        return self.store.query(
            f"SELECT * FROM (SELECT {feature} AS value, target FROM snapshots WHERE {where} "
            f"AND target IS NOT NULL AND {feature} IS NOT NULL) "
            f"USING SAMPLE reservoir({int(rows)} ROWS) REPEATABLE (12)",  # a constant, by DuckDB
            params,
        )

    def feature_drift(self, asset: str, interval: str, recent: int = 500) -> dict | None:
        """PSI of each market feature: the pair's `recent` newest snapshots after the serving
        model's training window against those inside it ("psi" is None while either side has
        fewer than MIN_DRIFT_ROWS). None when no model serves the pair."""
        card = self.model_card(asset, interval)
        if card is None or pd.isna(card["window_start"]):
            return None
        columns = ", ".join(FEATURE_NAMES)
        pair = "asset = ? AND interval = ? AND source = ?"
        reference = self.store.query(
            f"SELECT {columns} FROM snapshots WHERE {pair} AND ts BETWEEN ? AND ?",
            [asset, interval, analysis.SNAPSHOT_SOURCE, card["window_start"], card["window_end"]],
        )
        latest = self.store.query(
            f"SELECT {columns} FROM snapshots WHERE {pair} AND ts > ? ORDER BY ts DESC LIMIT ?",
            [asset, interval, analysis.SNAPSHOT_SOURCE, card["window_end"], int(recent)],
        )
        report = {
            "window_start": card["window_start"],
            "window_end": card["window_end"],
            "reference_rows": len(reference),
            "recent_rows": len(latest),
            "psi": None,  # too few rows on a side for the bins to mean anything
        }
        if min(len(reference), len(latest)) >= MIN_DRIFT_ROWS:
            psi = [population_stability(reference[f], latest[f]) for f in MARKET_FEATURES]
            table = pd.DataFrame({"feature": MARKET_FEATURES, "psi": psi})
            table["drift"] = table["psi"].map(drift_level)
            report["psi"] = table.sort_values("psi", ascending=False, ignore_index=True)
        return report

    def system_status(self) -> dict:
        """The engine (state, heartbeat, restarts, next monitor and collection) and the clock."""
        engine = self.engine
        beat = self.store.get_state(ENGINE_STATE_KEY) or {}
        heartbeat = engine.last_heartbeat or _timestamp(beat.get("heartbeat_wall"))
        return {
            "state": engine.state,
            "running": engine.running,
            "restarts": engine.restarts,
            "heartbeat": heartbeat,
            "heartbeat_age_s": (
                (WallClock().now() - heartbeat).total_seconds() if heartbeat else None
            ),
            "next_monitor": _timestamp(beat.get("next_monitor")) if engine.running else None,
            "next_collection": _timestamp(beat.get("next_collection")) if engine.running else None,
            "clock": "replay" if self.clock.replayed else "wall",
            "clock_now": self.clock.now(),
            "speed": getattr(self.clock, "speed", 1.0),
            "paused": bool(getattr(self.clock, "paused", False)),
            "monitor_period_minutes": self.settings.monitor_period_minutes,
        }

    def collection_status(self) -> pd.DataFrame:
        """bar_status plus when each pair's next bar closes (when it is collected next)."""
        table = self.bar_status()
        delta = table["interval"].map(interval_delta)
        table["next_close"] = table["last_bar"] + 2 * delta
        return table

    def recent_errors(self, limit: int = 50) -> pd.DataFrame:
        return self.store.events(limit, min_level="warning")

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
        (then nothing changes). The monitor reads `self.settings` at every run, so the values
        apply at its next run."""
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
            with self.store.transaction() as cursor:  # the overrides and their audit land together
                cursor.execute(
                    "INSERT OR REPLACE INTO state VALUES (?, ?)",
                    [SETTINGS_OVERRIDES_KEY, to_json(saved)],
                )
                cursor.executemany(
                    "INSERT INTO settings_audit (key, old_value, new_value) VALUES (?, ?, ?)", audit
                )
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

    def settings_audit(self, limit: int = 100) -> pd.DataFrame:
        return self.store.query("SELECT * FROM settings_audit ORDER BY id DESC LIMIT ?", [limit])


def upload_file_name(name: str) -> str:
    """An uploaded file's name, reduced to a plain file name (BTC_1h.csv stays as it is)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name).lstrip(".")
    return safe or "upload.csv"


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


# -- helpers for the app views --

WARM_START_KEY = "warm_start"
SETTINGS_OVERRIDES_KEY = "settings_overrides"
EDITABLE = ("win_rate", "profit_factor", "min_trades", "cooldown_hours", "min_rows")
MODEL_METRICS = (
    "brier",
    "roc_auc",
    "log_loss",
    "ece",
    "base_rate",
    "signal_trades",
    "signal_win_rate",
    "signal_profit_factor",
)
SNAPSHOT_COLUMNS = (
    "id",
    "asset",
    "interval",
    "ts",
    "source",
    *FEATURE_NAMES,
    "probability",
    "model_version",
    "model_scope",
    "setup_generated",
    "target",
    "target_ts",
    "pnl_pct",
)
# Calendar features follow the clock, not the market: their PSI only tells which hours and
# days each window covers, so drift is measured on the others.
MARKET_FEATURES = tuple(f for f in FEATURE_NAMES if not f.startswith(("tod_", "dow_")))
PSI_BINS = 10
MIN_DRIFT_ROWS = 10 * PSI_BINS  # rows needed on each side: ten per bin on average
PSI_MODERATE, PSI_SIGNIFICANT = 0.1, 0.25  # the usual reading of the population stability index


@dataclass(frozen=True)
class SnapshotQuery:
    """Filters of the snapshots table; None means "any"."""

    asset: str | None = None
    interval: str | None = None
    start: pd.Timestamp | None = None  # inclusive
    end: pd.Timestamp | None = None  # exclusive
    setup_generated: bool | None = None
    labelled: bool | None = None
    source: str | None = None
    model_version: int | None = None

    def where(self) -> tuple[str, list]:
        """A WHERE clause (fixed column names only) and its parameters."""
        clauses, params = _equal_to(
            {
                "asset": self.asset,
                "interval": self.interval,
                "source": self.source,
                "model_version": self.model_version,
                "setup_generated": self.setup_generated,
            }
        )
        for clause, value in (("ts >= ?", self.start), ("ts < ?", self.end)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if self.labelled is not None:
            clauses.append("target IS NOT NULL" if self.labelled else "target IS NULL")
        return " AND ".join(clauses) or "TRUE", params


def _equal_to(values: dict) -> tuple[list[str], list]:
    """SQL equality conditions for the columns whose value is given (names from code only)."""
    given = {column: value for column, value in values.items() if value is not None}
    return [f"{column} = ?" for column in given], list(given.values())


def timeframe_summary(grid: pd.DataFrame) -> pd.DataFrame:
    """One row per timeframe of an overview grid: pairs per status, trades and the pooled win
    rate of its pairs."""
    counts = pd.crosstab(grid["interval"], grid["status"]).reindex(
        columns=list(PairStatus), fill_value=0
    )
    wins = (grid["win_rate"].fillna(0) * grid["trades"]).groupby(grid["interval"]).sum()
    summary = grid.groupby("interval", sort=False).agg(
        pairs=("asset", "size"),
        trades=("trades", "sum"),
        pending=("pending", "sum"),
        win_rate_threshold=("win_rate_threshold", "first"),
    )
    summary["win_rate"] = (wins / summary["trades"]).where(summary["trades"] > 0)
    return summary.join(counts).reset_index()


def rolling_performance(closed: pd.DataFrame, window: int) -> pd.DataFrame:
    """Closed trades (oldest first) with rolling win rate and profit factor over the last
    `window` trades (shown from min(window, 10) trades on) and the cumulative R."""
    pnl = closed["pnl_pct"].astype(float)
    rolling = {"window": window, "min_periods": min(window, 10)}
    gross_profit = pnl.clip(lower=0).rolling(**rolling).sum()
    gross_loss = (-pnl).clip(lower=0).rolling(**rolling).sum()
    return closed.assign(
        win_rate=(pnl > 0).astype(float).rolling(**rolling).mean(),
        profit_factor=np.where(  # as metrics.profit_factor: inf with no loss, NaN with neither
            gross_loss > 0,
            gross_profit / gross_loss.where(gross_loss > 0),
            np.where(gross_profit > 0, np.inf, np.nan),
        ),
        equity_r=closed["r_multiple"].astype(float).cumsum(),
    )


def population_stability(reference: pd.Series, recent: pd.Series, bins: int = PSI_BINS) -> float:
    """PSI of `recent` against `reference`, over the reference's quantile bins; NaN when
    either side has no values."""
    expected, actual = reference.dropna().to_numpy(float), recent.dropna().to_numpy(float)
    if expected.size == 0 or actual.size == 0:
        return math.nan
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    share = [
        np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
        / values.size
        for values in (expected, actual)
    ]
    # A floor keeps an empty bin from making the log infinite (a common PSI convention).
    expected_share, actual_share = (np.maximum(s, 1e-4) for s in share)
    return float(np.sum((actual_share - expected_share) * np.log(actual_share / expected_share)))


def drift_level(psi: float) -> str:
    if math.isnan(psi):
        return "unknown"
    if psi >= PSI_SIGNIFICANT:
        return "significant"
    return "moderate" if psi >= PSI_MODERATE else "stable"


def _json_numbers(value: str | dict | None) -> dict:
    """A metrics JSON column as a dict, with the "inf" strings JSON needed back as floats."""
    parsed = json.loads(value) if isinstance(value, str) else dict(value or {})
    return {key: float(item) if item in ("inf", "-inf") else item for key, item in parsed.items()}


def _timestamp(value: str | None) -> pd.Timestamp | None:
    return utc(value) if value else None
