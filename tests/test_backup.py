"""Backup while another thread writes: the copy is one snapshot (rows written together are
copied together), restores to a store with the manifest's counts whose registry serves the
same verified models; restore refuses an existing store, a non-empty models folder and a
tampered model file, naming it."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from alpha12 import models, training
from alpha12.backup import MANIFEST, MODELS, BackupError, Manifest, backup, restore
from alpha12.clock import ManualClock
from alpha12.config import Settings
from alpha12.registry import Registry
from alpha12.store import Store
from tests.conftest import backfilled_1h_store

SETTINGS = Settings()
NOW = pd.Timestamp("2025-02-01", tz="UTC")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small 1h model, trained once for the module."""
    store = backfilled_1h_store(tmp_path_factory.mktemp("training"), 20)
    model = models.fit(
        training.training_frame(store, SETTINGS, "BTC", "1h", NOW), SETTINGS.timeframe("1h")
    )
    store.close()
    assert isinstance(model, models.TrainedModel)
    return model


@pytest.fixture
def registry(store, tmp_path, trained) -> Registry:
    """Two versions of BTC 1h (v2 active) and some bars in the store."""
    made = Registry(tmp_path / "models", store, ManualClock(NOW))
    made.register("BTC", "1h", trained, NOW - pd.Timedelta(days=1), "test")
    made.register("BTC", "1h", trained, NOW, "test")
    return made


class Writer(threading.Thread):
    """Writes an event and a counter of its own events in one transaction, until stopped."""

    def __init__(self, store: Store):
        super().__init__(daemon=True)
        self.store, self.stop, self.written = store, threading.Event(), 0

    def run(self):
        while not self.stop.is_set():
            with self.store.transaction() as cursor:
                cursor.execute(
                    "INSERT INTO events (ts, level, component, message) VALUES (?, ?, ?, ?)",
                    [NOW, "info", "writer", f"write {self.written}"],
                )
                cursor.execute(
                    "INSERT OR REPLACE INTO state VALUES ('written', ?)", [str(self.written + 1)]
                )
            self.written += 1


def test_backup_during_writes_restores_an_equal_verified_store(
    store, registry, tmp_path, make_bars
):
    store.upsert_bars("ETH", "5m", make_bars(500))
    writer = Writer(store)
    writer.start()
    reports = []
    try:
        while writer.written < 20:  # the writer is really running
            pass
        manifest = backup(store, registry.root, tmp_path / "backup", lambda f, m: reports.append(f))
        written_during = writer.written
    finally:
        writer.stop.set()
        writer.join()
    assert Manifest.read(tmp_path / "backup") == manifest
    assert reports[0] == 0.0 and reports[-1] == 1.0
    assert manifest.tables["bars"] == store.scalar("SELECT count(*) FROM bars")
    assert manifest.schema_version == store.scalar("SELECT max(version) FROM schema_version")
    assert set(manifest.models) >= {"BTC_1h/model.joblib", "BTC_1h/versions/v2/model.joblib"}

    restore(
        tmp_path / "backup", tmp_path / "restored" / "s.duckdb", tmp_path / "restored" / "models"
    )
    restored = Store(tmp_path / "restored" / "s.duckdb")
    try:
        for table, rows in manifest.tables.items():
            assert restored.scalar(f"SELECT count(*) FROM {table}") == rows, table
        # one snapshot: the counter committed with each event matches the events copied
        copied = restored.scalar("SELECT count(*) FROM events WHERE component = 'writer'")
        assert restored.get_state("written") == copied
        assert 20 <= copied <= written_during
        served = Registry(tmp_path / "restored" / "models", restored, ManualClock(NOW)).load_active(
            "BTC", "1h"
        )
        assert served is not None and served.version == 2
        paths = restored.query("SELECT path FROM models")["path"]
        assert paths.str.startswith(str(tmp_path / "restored" / "models")).all()
        restored.log_event(NOW, "info", "test", "the restored store takes writes")  # sequences
    finally:
        restored.close()


@pytest.fixture
def saved(store, registry, tmp_path):
    backup(store, registry.root, tmp_path / "backup")
    return tmp_path / "backup"


def test_restore_refuses_an_existing_store(saved, settings, tmp_path):
    with pytest.raises(BackupError, match="a store in use cannot be overwritten"):
        restore(saved, settings.db_path, tmp_path / "new-models")
    assert not (tmp_path / "new-models").exists()


def test_restore_refuses_a_non_empty_models_folder(saved, registry, tmp_path):
    with pytest.raises(BackupError, match="is not empty"):
        restore(saved, tmp_path / "new.duckdb", registry.root)
    assert not (tmp_path / "new.duckdb").exists()


def test_restore_refuses_a_tampered_model_file(saved, tmp_path):
    tampered = saved / MODELS / "BTC_1h" / "versions" / "v1" / "model.joblib"
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=f"model file {tampered} does not match its sha256"):
        restore(saved, tmp_path / "new.duckdb", tmp_path / "new-models")
    assert not (tmp_path / "new.duckdb").exists()


def test_backup_refuses_a_non_empty_folder_and_restore_a_non_backup(store, registry, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BackupError, match="is not empty"):
        backup(store, registry.root, tmp_path / "full")
    with pytest.raises(BackupError, match=f"has no {MANIFEST}: not an alpha12 backup"):
        restore(tmp_path / "full", tmp_path / "new.duckdb", tmp_path / "new-models")


def test_backup_of_a_path_opens_and_closes_the_store(settings, store, registry, tmp_path):
    store.close()  # the store is not in use: a backup from its path may open it
    manifest = backup(settings.db_path, registry.root, tmp_path / "offline")
    assert manifest.tables["models"] == 2
    Store(settings.db_path).close()  # released again
