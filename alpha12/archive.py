"""Growth: old feature snapshots move out of the database into Parquet files, so the store, the
snapshot explorer and the monitor stay fast as history grows.

Nothing the models need moves: per pair, the newest KEEP_ROWS snapshots (the training window
of a recalibration, with room to spare) and every snapshot inside an active model's training
window (the drift reference) stay. Rows are deleted only after the file holding them has been
written and read back with the same count.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alpha12.analysis import MAX_TRAIN_ROWS
from alpha12.registry import FALLBACK_INTERVAL
from alpha12.store import Store
from alpha12.vocabulary import ModelStatus

KEEP_ROWS = 2 * MAX_TRAIN_ROWS

# Rows older than the cutoff and outside what the models need, by id.
_ARCHIVABLE = """
    WITH ranked AS (
        SELECT id, asset, interval, ts,
               row_number() OVER (PARTITION BY asset, interval, source ORDER BY ts DESC) AS newest
        FROM snapshots),
    needed AS (
        SELECT asset, interval, min(window_start) AS since FROM models
        WHERE status = ? GROUP BY ALL)
    SELECT r.id FROM ranked r
    LEFT JOIN needed own ON own.asset = r.asset AND own.interval = r.interval
    LEFT JOIN needed pooled ON pooled.asset = r.asset AND pooled.interval = ?
    WHERE r.ts < ? AND r.newest > ? AND r.ts < least(coalesce(own.since, 'infinity'::TIMESTAMPTZ),
                                        coalesce(pooled.since, 'infinity'::TIMESTAMPTZ))"""


@dataclass
class ArchiveReport:
    rows: int
    file: Path | None
    bytes_before: int
    bytes_after: int


def archive_snapshots(store: Store, older_than: pd.Timestamp, folder: Path) -> ArchiveReport:
    """Move the snapshots older than `older_than` that no model needs into one new Parquet
    file under `folder` (read them back with read_parquet('folder/*.parquet'))."""
    before = _size(store.path)
    # Named by the cutoff, and unique: a second run must never overwrite an earlier file.
    file = (
        Path(folder) / f"snapshots_before_{older_than:%Y%m%dT%H%M}_{uuid.uuid4().hex[:8]}.parquet"
    )
    with store.transaction() as cursor:
        cursor.execute(
            f"CREATE OR REPLACE TEMP TABLE archived AS {_ARCHIVABLE}",
            [ModelStatus.ACTIVE, FALLBACK_INTERVAL, older_than, KEEP_ROWS],
        )
        rows = cursor.execute("SELECT count(*) FROM archived").fetchall()[0][0]
        if rows:
            file.parent.mkdir(parents=True, exist_ok=True)
            cursor.execute(
                "COPY (SELECT * FROM snapshots WHERE id IN (SELECT id FROM archived) "
                "ORDER BY asset, interval, ts) TO ? (FORMAT parquet, COMPRESSION zstd)",
                [str(file)],
            )
            written = cursor.execute("SELECT count(*) FROM read_parquet(?)", [str(file)])
            if written.fetchall()[0][0] != rows:
                raise OSError(f"{file} holds fewer rows than were archived; nothing deleted")
            cursor.execute("DELETE FROM snapshots WHERE id IN (SELECT id FROM archived)")
        cursor.execute("DROP TABLE archived")
    store.cursor().execute("CHECKPOINT")  # hand the freed blocks back to the file
    return ArchiveReport(rows, file if rows else None, before, _size(store.path))


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
