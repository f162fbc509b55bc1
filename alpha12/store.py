"""The DuckDB store: schema and migrations, and the typed reads and writes of every table.

DuckDB allows one read-write process per file, so the process that opens the store owns it:
one connection, a cursor per thread, and writes serialised by a lock so that a unit of work
(an upsert, a job claim) is one transaction. Every SQL value travels as a parameter.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from alpha12.bars import NUMERIC_COLUMNS, empty_bars
from alpha12.errors import UserError
from alpha12.features import FEATURE_NAMES

SCHEMA_VERSION = 2
Pair = tuple[str, str]  # (asset, interval)


def to_json(value: Any, indent: int | None = None) -> str:
    """JSON for a JSON column: non-finite floats become "inf"/"-inf" or null (JSON has none)."""
    return json.dumps(_finite(value), default=str, indent=indent)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


class StoreError(UserError):
    """A problem with the database file that the user must act on."""


class StoreLockedError(StoreError):
    """Another process holds the database file."""


def _snapshots_table(name: str, unique_key: bool) -> str:
    features = ",\n  ".join(f"{feature} FLOAT" for feature in FEATURE_NAMES)
    key = ",\n  UNIQUE (asset, interval, ts, source)" if unique_key else ""
    return f"""CREATE TABLE {name} (
  id BIGINT DEFAULT nextval('snapshot_ids'), asset VARCHAR NOT NULL,
  interval VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL, source VARCHAR NOT NULL,
  {features},
  probability FLOAT, model_version INTEGER, model_scope VARCHAR,
  setup_generated BOOLEAN NOT NULL DEFAULT FALSE,
  target FLOAT, target_ts TIMESTAMPTZ, pnl_pct FLOAT{key})"""


def _schema_v1() -> list[str]:
    return [
        """CREATE TABLE bars (
  asset VARCHAR NOT NULL, interval VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL,
  open DOUBLE NOT NULL, high DOUBLE NOT NULL, low DOUBLE NOT NULL, close DOUBLE NOT NULL,
  volume DOUBLE NOT NULL, PRIMARY KEY (asset, interval, ts))""",
        "CREATE SEQUENCE rejection_ids",
        """CREATE TABLE rejections (
  id BIGINT PRIMARY KEY DEFAULT nextval('rejection_ids'), recorded_at TIMESTAMPTZ NOT NULL,
  asset VARCHAR, interval VARCHAR, origin VARCHAR NOT NULL, reason VARCHAR NOT NULL,
  count INTEGER NOT NULL)""",
        "CREATE SEQUENCE snapshot_ids",
        _snapshots_table("snapshots", unique_key=True),
        "CREATE SEQUENCE setup_ids",
        """CREATE TABLE setups (
  id BIGINT PRIMARY KEY DEFAULT nextval('setup_ids'), asset VARCHAR NOT NULL,
  interval VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL, direction SMALLINT NOT NULL,
  entry DOUBLE NOT NULL, stop DOUBLE NOT NULL, take_profit DOUBLE NOT NULL,
  atr DOUBLE NOT NULL, expires_ts TIMESTAMPTZ NOT NULL, probability DOUBLE NOT NULL,
  model_version INTEGER, model_scope VARCHAR, status VARCHAR NOT NULL DEFAULT 'open',
  exit_reason VARCHAR, exit_ts TIMESTAMPTZ, exit_price DOUBLE, pnl_pct DOUBLE,
  r_multiple DOUBLE, origin VARCHAR NOT NULL DEFAULT 'live')""",
        """CREATE TABLE models (
  asset VARCHAR NOT NULL, interval VARCHAR NOT NULL, version INTEGER NOT NULL,
  scope VARCHAR NOT NULL, trained_at TIMESTAMPTZ NOT NULL, as_of TIMESTAMPTZ NOT NULL,
  rows INTEGER NOT NULL, window_start TIMESTAMPTZ, window_end TIMESTAMPTZ,
  metrics JSON, path VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, status VARCHAR NOT NULL,
  trigger VARCHAR, PRIMARY KEY (asset, interval, version))""",
        "CREATE SEQUENCE recalibration_ids",
        """CREATE TABLE recalibrations (
  id BIGINT PRIMARY KEY DEFAULT nextval('recalibration_ids'), asset VARCHAR NOT NULL,
  interval VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL, trigger VARCHAR NOT NULL,
  action VARCHAR NOT NULL, win_rate DOUBLE, profit_factor DOUBLE, trades INTEGER,
  reasons VARCHAR, challenger_score DOUBLE, incumbent_score DOUBLE, new_version INTEGER,
  metrics_before JSON, metrics_after JSON, message VARCHAR)""",
        "CREATE SEQUENCE job_ids",
        """CREATE TABLE jobs (
  id BIGINT PRIMARY KEY DEFAULT nextval('job_ids'), kind VARCHAR NOT NULL,
  asset VARCHAR NOT NULL, interval VARCHAR NOT NULL, requested_at TIMESTAMPTZ NOT NULL,
  started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, status VARCHAR NOT NULL,
  progress DOUBLE NOT NULL DEFAULT 0, message VARCHAR, requested_by VARCHAR)""",
        "CREATE SEQUENCE event_ids",
        """CREATE TABLE events (
  id BIGINT PRIMARY KEY DEFAULT nextval('event_ids'), ts TIMESTAMPTZ NOT NULL,
  wall_ts TIMESTAMPTZ NOT NULL DEFAULT now(), level VARCHAR NOT NULL,
  component VARCHAR NOT NULL, asset VARCHAR, interval VARCHAR, message VARCHAR NOT NULL)""",
        "CREATE TABLE state (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
        "CREATE SEQUENCE settings_audit_ids",
        """CREATE TABLE settings_audit (
  id BIGINT PRIMARY KEY DEFAULT nextval('settings_audit_ids'), wall_ts TIMESTAMPTZ NOT NULL
  DEFAULT now(), key VARCHAR NOT NULL, old_value VARCHAR, new_value VARCHAR NOT NULL)""",
    ]


def _schema_v2() -> list[str]:
    """Snapshots without their UNIQUE index: at 83 bytes a row it cost more than the row's
    data. analysis.insert_snapshots keeps the key unique (this process is the only writer)."""
    return [
        _snapshots_table("snapshots_v2", unique_key=False),
        "INSERT INTO snapshots_v2 SELECT * FROM snapshots ORDER BY asset, interval, ts",
        "DROP TABLE snapshots",
        "ALTER TABLE snapshots_v2 RENAME TO snapshots",
    ]


MIGRATIONS = {1: _schema_v1, 2: _schema_v2}


class Store:
    """One DuckDB file, opened read-write by this process."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._connection = _connect(self.path)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._spans: dict[Pair, tuple[pd.Timestamp, pd.Timestamp]] | None = None  # _bar_spans
        self._migrate()

    # -- connection plumbing -------------------------------------------------------------

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor (DuckDB connections are not shared across threads)."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._connection.cursor()
            cursor.execute("SET TimeZone = 'UTC'")
            self._local.cursor = cursor
        return cursor

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A serialised write transaction: all of it lands, or none of it."""
        with self._write_lock:
            cursor = self.cursor()
            cursor.execute("BEGIN TRANSACTION")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def write_frame(self, frame: pd.DataFrame, sql: str, params: list | None = None) -> list:
        """Run one write statement that reads `frame` as the table `incoming`, in its own
        transaction; returns the statement's rows (DuckDB returns the count for DML)."""
        with self.transaction() as cursor:
            cursor.register("incoming", frame)
            try:
                return cursor.execute(sql, params or []).fetchall()
            finally:
                cursor.unregister("incoming")

    def query_with(self, frame: pd.DataFrame, sql: str, params: list | None = None) -> pd.DataFrame:
        """A read that can join `frame` as the table `incoming` (e.g. a list of keys)."""
        cursor = self.cursor()
        cursor.register("incoming", frame)
        try:
            return cursor.execute(sql, params or []).df()
        finally:
            cursor.unregister("incoming")

    def query(self, sql: str, params: list | tuple | None = None) -> pd.DataFrame:
        return self.cursor().execute(sql, params or []).df()

    def scalar(self, sql: str, params: list | tuple | None = None) -> Any:
        # fetchall, not fetchone: DuckDB refuses other work on a cursor with an unread result.
        rows = self.cursor().execute(sql, params or []).fetchall()
        return rows[0][0] if rows else None

    def close(self) -> None:
        self._connection.close()

    def _migrate(self) -> None:
        with self.transaction() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            current = (
                cursor.execute("SELECT max(version) FROM schema_version").fetchall()[0][0] or 0
            )
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer alpha12 (schema {current}); "
                    "upgrade alpha12 or use another --db file"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]():
                    cursor.execute(statement)
                cursor.execute("INSERT INTO schema_version VALUES (?)", [version])

    # -- bars ----------------------------------------------------------------------------

    def upsert_bars(self, asset: str, interval: str, bars: pd.DataFrame) -> int:
        """Insert the bars not stored yet; returns how many were new. Idempotent."""
        return self.upsert_many({(asset, interval): bars})[(asset, interval)]

    def upsert_many(self, batches: dict[Pair, pd.DataFrame]) -> dict[Pair, int]:
        """upsert_bars for several pairs in one transaction; how many bars were new per pair."""
        counts = dict.fromkeys(batches, 0)
        frames = [
            bars[["ts", *NUMERIC_COLUMNS]].assign(asset=asset, interval=interval)
            for (asset, interval), bars in batches.items()
            if not bars.empty
        ]
        if not frames:
            return counts
        inserted = self.write_frame(
            pd.concat(frames, ignore_index=True),
            # The primary key's index finds the stored bars; an anti-join would scan them all.
            """INSERT OR IGNORE INTO bars
               SELECT i.asset, i.interval, i.ts, i.open, i.high, i.low, i.close, i.volume
               FROM incoming i RETURNING asset, interval, ts""",
        )
        new = pd.DataFrame(inserted, columns=["asset", "interval", "ts"])
        for (asset, interval), times in new.groupby(["asset", "interval"])["ts"]:
            counts[(asset, interval)] = len(times)
            self._widen_span((asset, interval), times.min(), times.max())
        return counts

    def _widen_span(self, pair: Pair, first, last) -> None:
        first, last = pd.Timestamp(first).tz_convert("UTC"), pd.Timestamp(last).tz_convert("UTC")
        with self._write_lock:
            known = self._bar_spans().get(pair)
            self._spans[pair] = (
                (first, last) if known is None else (min(known[0], first), max(known[1], last))
            )

    def read_bars(
        self,
        asset: str,
        interval: str,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        tail: int | None = None,
    ) -> pd.DataFrame:
        """Stored bars in [start, end] (open times), oldest first; `tail` keeps the last N."""
        where, params = _pair_filter(asset, interval, start, end)
        order = "DESC" if tail else "ASC"
        limit = f"LIMIT {int(tail)}" if tail else ""
        frame = self.query(
            f"SELECT ts, open, high, low, close, volume FROM bars WHERE {where} "
            f"ORDER BY ts {order} {limit}",
            params,
        )
        if frame.empty:
            return empty_bars()
        return frame.iloc[::-1].reset_index(drop=True) if tail else frame

    def last_bar_ts(self, asset: str, interval: str) -> pd.Timestamp | None:
        with self._write_lock:
            span = self._bar_spans().get((asset, interval))
        return None if span is None else span[1]

    def first_bars(self) -> dict[Pair, pd.Timestamp]:
        """The oldest stored bar of every pair."""
        with self._write_lock:
            return {pair: first for pair, (first, _) in self._bar_spans().items()}

    def _bar_spans(self) -> dict[Pair, tuple[pd.Timestamp, pd.Timestamp]]:
        """(first, last) stored bar of every pair; call with the write lock held. Asked for
        every pair on every engine tick, so read from the table once, then kept up to date by
        upsert_many (this process is the file's only writer)."""
        if self._spans is None:
            frame = self.query(
                "SELECT asset, interval, min(ts) AS first, max(ts) AS last FROM bars GROUP BY ALL"
            )
            self._spans = {
                (row.asset, row.interval): (
                    pd.Timestamp(row.first).tz_convert("UTC"),
                    pd.Timestamp(row.last).tz_convert("UTC"),
                )
                for row in frame.itertuples(index=False)
            }
        return self._spans

    def bar_assets(self) -> list[str]:
        """Assets with stored bars."""
        return sorted({asset for asset, _ in self.first_bars()})

    def bar_summary(self) -> pd.DataFrame:
        """Per stored pair: bar count, first and last bar, rejected rows."""
        return self.query(
            """WITH b AS (SELECT asset, interval, count(*) AS bars, min(ts) AS first_bar,
                                 max(ts) AS last_bar FROM bars GROUP BY ALL),
                    r AS (SELECT asset, interval, sum(count) AS rejected FROM rejections
                          GROUP BY ALL)
               SELECT b.*, coalesce(r.rejected, 0)::BIGINT AS rejected FROM b
               LEFT JOIN r USING (asset, interval) ORDER BY asset, interval"""
        )

    def record_rejections(
        self,
        asset: str | None,
        interval: str | None,
        origin: str,
        counts: dict[str, int],
        at: pd.Timestamp,
    ) -> None:
        if not counts:
            return
        with self.transaction() as cursor:
            cursor.executemany(
                "INSERT INTO rejections (recorded_at, asset, interval, origin, reason, count) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [[at, asset, interval, origin, reason, n] for reason, n in counts.items()],
            )

    # -- setups ---------------------------------------------------------------------------

    def insert_setups(self, setups: pd.DataFrame) -> pd.DataFrame:
        """Insert setups (columns as signals.Setup, optionally resolved); their id, asset and
        interval."""
        if setups.empty:
            return pd.DataFrame(columns=["id", "asset", "interval"])
        names = ", ".join(setups.columns)
        inserted = self.write_frame(
            setups,
            f"INSERT INTO setups ({names}) SELECT {names} FROM incoming "
            "RETURNING id, asset, interval",
        )
        return pd.DataFrame(inserted, columns=["id", "asset", "interval"])

    def open_setups(self, pairs: list[tuple[str, str]]) -> pd.DataFrame:
        """The open setups of the (asset, interval) `pairs`, oldest first."""
        return self.query_with(
            pd.DataFrame(pairs, columns=["asset", "interval"]),
            "SELECT s.* FROM setups s JOIN incoming USING (asset, interval) "
            "WHERE s.status = 'open' ORDER BY s.ts, s.id",
        )

    def close_setups(self, resolved: pd.DataFrame) -> int:
        """Record exits (tracker.resolve's columns); an already closed setup is left alone."""
        if resolved.empty:
            return 0
        return self.write_frame(
            resolved,
            """UPDATE setups s SET status = 'closed', exit_ts = r.exit_ts,
                      exit_price = r.exit_price, exit_reason = r.exit_reason,
                      pnl_pct = r.pnl_pct, r_multiple = r.r_multiple
               FROM incoming r WHERE s.id = r.id AND s.status = 'open'""",
        )[0][0]

    # -- events and state ----------------------------------------------------------------

    def log_event(
        self,
        ts: pd.Timestamp,
        level: str,
        component: str,
        message: str,
        asset: str | None = None,
        interval: str | None = None,
    ) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "INSERT INTO events (ts, level, component, asset, interval, message) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [ts, level, component, asset, interval, message],
            )

    def events(self, limit: int = 100, min_level: str | None = None) -> pd.DataFrame:
        levels = {
            "info": ("info", "warning", "error"),
            "warning": ("warning", "error"),
            "error": ("error",),
        }[min_level or "info"]
        return self.query(
            "SELECT * FROM events WHERE level IN (SELECT unnest(?)) ORDER BY id DESC LIMIT ?",
            [list(levels), limit],
        )

    def get_state(self, key: str, default: Any = None) -> Any:
        value = self.scalar("SELECT value FROM state WHERE key = ?", [key])
        return default if value is None else json.loads(value)

    def set_state(self, key: str, value: Any) -> None:
        with self.transaction() as cursor:
            cursor.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", [key, to_json(value)])


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(path))
    except duckdb.IOException as error:
        text = str(error)
        if "lock" in text.lower():
            holder = re.search(r"PID (\d+)", text)
            who = f"process {holder.group(1)}" if holder else "another process"
            raise StoreLockedError(
                f"{path} is in use by {who} (DuckDB allows one writer per file). "
                f"Stop that alpha12 app or command, or use another file with --db."
            ) from None
        raise StoreError(f"cannot open {path}: {text}") from None
    except duckdb.Error as error:
        raise StoreError(f"cannot open {path}: {error}") from None


def _pair_filter(asset, interval, start, end) -> tuple[str, list]:
    clauses, params = ["asset = ?", "interval = ?"], [asset, interval]
    if start is not None:
        clauses.append("ts >= ?")
        params.append(start)
    if end is not None:
        clauses.append("ts <= ?")
        params.append(end)
    return " AND ".join(clauses), params
