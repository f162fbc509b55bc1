"""Growth: old feature snapshots move out of the database into Parquet files, so the store, the
snapshot explorer and the monitor stay fast as history grows.

Nothing the models need moves: per pair, the newest `keep_rows` snapshots (twice the longest
training window of a recalibration: room to spare) and every snapshot inside an active model's
training window (the drift reference) stay. Rows are deleted only after the file holding them
has been written and read back with the same count.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alpha12.config import Settings
from alpha12.store import Store


@dataclass
class ArchiveReport:
    rows: int
    file: Path | None
    bytes_before: int
    bytes_after: int


def keep_rows(settings: Settings) -> int:
    """Snapshots kept per pair whatever their age: twice the longest training window."""
    return 2 * max(settings.timeframe(i).train_rows for i in settings.intervals)


def archive_snapshots(
    store: Store, settings: Settings, older_than: pd.Timestamp, folder: Path
) -> ArchiveReport:
    """Move the snapshots older than `older_than` that no model needs into one new Parquet
    file under `folder` (read them back with read_parquet('folder/*.parquet'))."""
    before = _size(store.path)
    # Named by the cutoff, and unique: a second run must never overwrite an earlier file.
    file = (
        Path(folder) / f"snapshots_before_{older_than:%Y%m%dT%H%M}_{uuid.uuid4().hex[:8]}.parquet"
    )
    rows = store.archive_snapshots(older_than, keep_rows(settings), file)
    return ArchiveReport(rows, file if rows else None, before, _size(store.path))


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
