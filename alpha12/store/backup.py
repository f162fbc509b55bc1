"""A consistent copy of the open database while the app keeps writing, and what a restored
copy needs: its row counts, and its models table pointed at the restored models folder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from alpha12.store.connection import StoreError

BACKUP_ALIAS = "alpha12_backup"


class BackupCopy:
    def copy_database_to(self, path: Path) -> tuple[dict[str, int], int]:
        """Copy the whole database into a new file at `path`; the rows per table and the
        schema version of the very snapshot that was copied."""
        with self.cursor() as cursor:
            with self._write_lock:  # this process's writers wait the moment the checkpoint takes
                _checkpoint(cursor)
            cursor.execute(f"ATTACH ? AS {BACKUP_ALIAS}", [str(path)])
            try:
                with _read_snapshot(cursor):
                    tables = _row_counts(cursor)
                    version = cursor.execute("SELECT max(version) FROM schema_version")
                    schema = version.fetchall()[0][0]
                    name = cursor.execute("SELECT current_database()").fetchall()[0][0]
                    cursor.execute(f"COPY FROM DATABASE {_quoted(name)} TO {BACKUP_ALIAS}")
            finally:
                cursor.execute(f"DETACH {BACKUP_ALIAS}")
        return tables, schema

    def move_model_paths(self, old_root: str, new_root: str) -> None:
        """Point the models table's file paths under `old_root` to `new_root` instead."""
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE models SET path = ? || substr(path, ?) WHERE starts_with(path, ?)",
                [new_root, len(old_root) + 1, old_root],
            )


def row_counts_of(path: Path) -> dict[str, int]:
    """Rows per table of the database file at `path`, opened read-only."""
    try:
        with duckdb.connect(str(path), read_only=True) as copy:
            return _row_counts(copy)
    except duckdb.Error as error:
        raise StoreError(f"{path} cannot be read: {error}") from None


def _quoted(name: str) -> str:
    """A DuckDB identifier, double-quoted; names come from DuckDB's own catalogue."""
    return '"' + name.replace('"', '""') + '"'


def _checkpoint(cursor: duckdb.DuckDBPyConnection) -> None:
    """Fold the WAL into the file first, when no write is in flight; the copy does not depend
    on it (it reads a snapshot), so a checkpoint refused by a concurrent write is skipped."""
    with suppress(duckdb.TransactionException):
        cursor.execute("CHECKPOINT")


def _row_counts(cursor: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows per table of the current database."""
    names = cursor.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "ORDER BY table_name"
    ).fetchall()
    return {
        name: cursor.execute(f"SELECT count(*) FROM {_quoted(name)}").fetchall()[0][0]
        for (name,) in names
    }


@contextmanager
def _read_snapshot(cursor: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction: every read inside sees the same committed state, whatever commits
    meanwhile (DuckDB's MVCC), and the engine's writers are never blocked."""
    cursor.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    cursor.execute("COMMIT")
