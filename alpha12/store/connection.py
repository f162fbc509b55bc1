"""The connection to the DuckDB file: opening it, migrating its schema, and the plumbing every
table family's reads and writes go through.

DuckDB allows one read-write process per file, so the process that opens the store owns it:
one connection, a cursor per thread used inside `cursor()` blocks, and writes serialised by a
lock so that a unit of work (an upsert, a job claim) is one transaction. `reopen` closes and
opens the file again between blocks, which hands back the C heap DuckDB keeps. Every SQL value
travels as a parameter.

A statement reads a frame (pandas or Arrow) as the table `incoming` through DuckDB's replacement
scan: the frame is a local variable of that name in the function that calls `execute`, where
DuckDB looks the name up. Registering and unregistering it instead cost about a millisecond a
statement (measured), a sixth of a live cycle's statements' time.
"""

from __future__ import annotations

import json
import math
import re
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from alpha12.errors import UserError
from alpha12.store.schema import MIGRATIONS, SCHEMA_VERSION
from alpha12.vocabulary import Pair


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


def equal_to(values: dict) -> tuple[list[str], list]:
    """SQL equality conditions for the columns whose value is given (names from code only)."""
    given = {column: value for column, value in values.items() if value is not None}
    return [f"{column} = ?" for column in given], list(given.values())


def arrow_table(columns: dict) -> pa.Table:
    """Columns (Series or arrays) as an Arrow table, which DuckDB reads faster than a pandas
    frame (of a live cycle's few rows and 50 columns: a third of the time); NaN and NaT are
    NULL, as they are read from pandas."""
    return pa.table({name: pa.array(values, from_pandas=True) for name, values in columns.items()})


REOPEN_WAIT_SECONDS = 5.0  # how long `reopen` holds new work back for the work in flight
CLOSE_WAIT_SECONDS = 30.0  # how long `close` waits for the work in flight to finish


class StoreError(UserError):
    """A problem with the database file that the user must act on."""


class StoreLockedError(StoreError):
    """Another process holds the database file."""


class Connection:
    """One DuckDB file, opened read-write by this process."""

    def __init__(self, path: str | Path, memory_limit: str | None = None):
        self.path = Path(path)
        self._memory_limit = memory_limit
        self._local = threading.local()
        self._write_lock = threading.RLock()
        # Every use of a cursor happens inside `cursor()`; `reopen` and `close` wait until
        # none is.
        self._gate = threading.Condition()
        self._in_use = 0
        self._draining = False
        self._cursors: weakref.WeakSet = weakref.WeakSet()  # a dead thread's goes with it
        self._generation = 0  # bumped by `reopen`: each thread then takes a fresh cursor
        self._closed = False
        self._connection: duckdb.DuckDBPyConnection | None = self._open()
        self._spans: dict[Pair, tuple[pd.Timestamp, pd.Timestamp]] | None = None  # _bar_spans
        self._migrate()

    # -- connection plumbing -------------------------------------------------------------

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """This thread's cursor (DuckDB connections are not shared across threads), held
        for the block: `reopen` and `close` wait for every block to end and hold new ones
        back."""
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            with self._gate:
                self._gate.wait_for(lambda: not self._draining)
                self._in_use += 1
        self._local.depth = depth + 1
        try:
            yield self._thread_cursor()
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._gate:
                    self._in_use -= 1
                    self._gate.notify_all()

    def _thread_cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None or self._local.generation != self._generation:
            with self._gate:
                if self._closed:
                    raise StoreError(f"{self.path} is closed")
                if self._connection is None:  # a reopen could not open the file: try again
                    self._connection = self._open()
                cursor = self._connection.cursor()
                self._cursors.add(cursor)
            cursor.execute("SET TimeZone = 'UTC'")
            self._local.cursor, self._local.generation = cursor, self._generation
        return cursor

    def reopen(self, timeout: float = REOPEN_WAIT_SECONDS) -> bool:
        """Close DuckDB's instance and open the file again, once every cursor in use is
        done; whether it did (False, with nothing changed, when the work in flight outlasts
        `timeout`: new work waits meanwhile, so a long export must not hold everyone).
        DuckDB keeps C heap from each join and aggregate on text keys (about 1 KB a query,
        measured; see RELIABILITY.md) until its instance closes, so a process that runs for
        weeks reopens its store now and then to hold its memory flat."""
        with self._drained(timeout, "reopen") as idle:
            if not idle:
                return False
            self._close_all()
            self._connection = self._open()
            return True

    def close(self, timeout: float = CLOSE_WAIT_SECONDS) -> None:
        """Close the store once the work in flight is done; new work is refused."""
        with self._drained(timeout, "close") as idle:
            if not idle:
                raise StoreError(
                    f"{self.path} is still in use by another thread after {timeout:g} s; "
                    "stop the engine before closing the store"
                )
            self._closed = True
            self._close_all()

    @contextmanager
    def _drained(self, timeout: float, action: str) -> Iterator[bool]:
        """Holds new cursor blocks back and waits up to `timeout` for the open ones to end;
        yields whether they did (DuckDB refuses to close a cursor that is still running)."""
        if getattr(self._local, "depth", 0):
            raise RuntimeError(f"{action}() inside a cursor block would wait for itself")
        with self._gate:
            self._draining = True
            try:
                yield self._gate.wait_for(lambda: self._in_use == 0, timeout)
            finally:
                self._draining = False
                self._gate.notify_all()

    @contextmanager
    def serialised(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """This thread's cursor with the write lock held, for writes whose statements each
        stand alone: DuckDB commits each on its own, all of it or none of it (a BEGIN and a
        COMMIT around one cost 0.4 ms more, measured: the engine's heartbeat, every tick)."""
        # The cursor first, then the lock: one order everywhere, so `reopen` cannot deadlock.
        with self.cursor() as cursor, self._write_lock:
            yield cursor

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A serialised write transaction: all of it lands, or none of it."""
        with self.serialised() as cursor:
            cursor.execute("BEGIN TRANSACTION")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def write_frame(
        self, frame: pd.DataFrame | pa.Table, sql: str, params: list | None = None
    ) -> list:
        """Run one write statement that reads `frame` as the table `incoming`, in its own
        transaction; returns the statement's rows (DuckDB returns the count for DML)."""
        incoming = frame  # noqa: F841 -- DuckDB reads it by name
        with self.transaction() as cursor:
            return cursor.execute(sql, params or []).fetchall()

    def query_with(self, frame: pd.DataFrame, sql: str, params: list | None = None) -> pd.DataFrame:
        """A read that can join `frame` as the table `incoming` (e.g. a list of keys)."""
        incoming = frame  # noqa: F841 -- DuckDB reads it by name
        with self.cursor() as cursor:
            return cursor.execute(sql, params or []).df()

    def rows_with(self, frame: pd.DataFrame, sql: str, params: list | None = None) -> list[tuple]:
        """query_with's rows as tuples: for a few rows walked one by one, where a frame's
        conversion (about half a millisecond per time column) would cost more than the read."""
        incoming = frame  # noqa: F841 -- DuckDB reads it by name
        with self.cursor() as cursor:
            return cursor.execute(sql, params or []).fetchall()

    def query(self, sql: str, params: list | tuple | None = None) -> pd.DataFrame:
        with self.cursor() as cursor:
            return cursor.execute(sql, params or []).df()

    def rows(self, sql: str, params: list | tuple | None = None) -> list[tuple]:
        with self.cursor() as cursor:
            # fetchall, not fetchone: DuckDB refuses other work on a cursor with an unread result.
            return cursor.execute(sql, params or []).fetchall()

    def scalar(self, sql: str, params: list | tuple | None = None) -> Any:
        rows = self.rows(sql, params)
        return rows[0][0] if rows else None

    def _close_all(self) -> None:
        self._generation += 1  # every thread's cursor is closed: the next use takes a new one
        for cursor in list(self._cursors):
            cursor.close()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _open(self) -> duckdb.DuckDBPyConnection:
        connection = _connect(self.path)
        if self._memory_limit:
            _limit_memory(connection, self._memory_limit)
        return connection

    def memory_limit(self) -> str:
        """DuckDB's memory limit as it reports it (e.g. '488.2 MiB')."""
        return self.scalar("SELECT current_setting('memory_limit')")

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


def _limit_memory(connection: duckdb.DuckDBPyConnection, limit: str) -> None:
    """Cap DuckDB's buffer pool (it spills to disk beyond it), so a process that runs for
    months holds a bounded amount of memory however large the file grows."""
    try:
        connection.execute("SET memory_limit = ?", [limit])
    except duckdb.Error as error:
        connection.close()
        raise StoreError(f"memory_limit {limit!r} was refused by DuckDB: {error}") from None


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
