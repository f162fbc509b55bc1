"""The DuckDB store: the only place that writes SQL.

`Store` is one connection to one file (store.connection) with the typed reads and writes of
each table family: bars, snapshots, setups, models, recalibrations, jobs, the lab's kept
runs, and events with the state and the settings audit. Every other module calls these methods.
"""

from alpha12.store.backup import BackupCopy
from alpha12.store.bars import BarsTable
from alpha12.store.connection import Connection, StoreError, StoreLockedError, to_json
from alpha12.store.events import EventsTable
from alpha12.store.jobs import JobsTable
from alpha12.store.lab import LabTable
from alpha12.store.models import ModelsTable
from alpha12.store.recalibrations import RecalibrationsTable
from alpha12.store.schema import SCHEMA_VERSION
from alpha12.store.setups import SetupsTable
from alpha12.store.snapshots import PendingTail, SnapshotQuery, SnapshotsTable

__all__ = [
    "SCHEMA_VERSION",
    "PendingTail",
    "SnapshotQuery",
    "Store",
    "StoreError",
    "StoreLockedError",
    "to_json",
]


class Store(
    Connection,
    BarsTable,
    SnapshotsTable,
    SetupsTable,
    ModelsTable,
    RecalibrationsTable,
    JobsTable,
    LabTable,
    EventsTable,
    BackupCopy,
):
    """One DuckDB file, opened read-write by this process, with every table's reads and
    writes."""
