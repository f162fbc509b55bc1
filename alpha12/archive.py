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

from alpha12.snapshots import MAX_TRAIN_ROWS
from alpha12.store import Store

KEEP_ROWS = 2 * MAX_TRAIN_ROWS


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
    rows = store.archive_snapshots(older_than, KEEP_ROWS, file)
    return ArchiveReport(rows, file if rows else None, before, _size(store.path))


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
