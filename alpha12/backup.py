"""Backup and restore of a store and its models folder, taken while the app runs.

DuckDB allows one writer per file, so the copy is made through the open `Store` by the process
that owns it: a CHECKPOINT, then one read transaction that counts every table and copies the
whole database (`COPY FROM DATABASE`) into a fresh file, so counts and copy are the same
snapshot while the engine keeps writing. The models folder is copied beside it and every file
hashed. manifest.json records counts, hashes, schema version and time; the backup is read back
and checked against it, and `restore` checks it again before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from alpha12 import __version__
from alpha12.clock import WallClock
from alpha12.errors import UserError
from alpha12.store import Store, StoreError
from alpha12.store.backup import row_counts_of

MANIFEST = "manifest.json"
DATABASE = "storage.duckdb"
MODELS = "models"
Progress = Callable[[float, str], None]


class BackupError(UserError):
    """A backup cannot be made, or a backup cannot be restored as it is."""


@dataclass(frozen=True)
class Manifest:
    created_at: str  # ISO time, UTC
    alpha12_version: str
    schema_version: int
    tables: dict[str, int]  # rows per table
    models: dict[str, str]  # path inside the models folder -> sha256
    models_root: str  # where the models were: the restored models table points there first

    def write(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        try:
            return cls(**json.loads((folder / MANIFEST).read_text()))
        except FileNotFoundError:
            raise BackupError(f"{folder} has no {MANIFEST}: not an alpha12 backup") from None
        except (ValueError, TypeError) as error:
            raise BackupError(f"{folder / MANIFEST} is damaged: {error}") from None


def backup(
    store: Store | str | Path,
    models_dir: str | Path,
    to_dir: str | Path,
    progress: Progress | None = None,
) -> Manifest:
    """Copy the store (the open `Store`, or a path this process can open) and the models
    folder into the new or empty `to_dir`, verified; returns the manifest written there."""
    report = progress or (lambda fraction, message: None)
    target = _empty_folder(Path(to_dir))
    if not isinstance(store, Store):
        opened = Store(store)  # raises StoreLockedError when another process holds it
        try:
            return backup(opened, models_dir, target, progress)
        finally:
            opened.close()
    report(0.0, f"copying the database {store.path}")
    tables, schema = store.copy_database_to(target / DATABASE)
    report(0.5, f"copying the models from {models_dir}")
    models = _copy_models(Path(models_dir), target / MODELS)
    manifest = Manifest(
        created_at=WallClock().now().isoformat(),
        alpha12_version=__version__,
        schema_version=schema,
        tables=tables,
        models=models,
        models_root=str(Path(models_dir)),
    )
    report(0.9, "verifying the copy")
    _verify(target, manifest)
    manifest.write(target)
    report(1.0, f"backup written to {target}")
    return manifest


def restore(from_dir: str | Path, new_db_path: str | Path, new_models_dir: str | Path) -> Manifest:
    """A new store and models folder from the verified backup in `from_dir`; never overwrites."""
    source, db_path, models_dir = Path(from_dir), Path(new_db_path), Path(new_models_dir)
    manifest = Manifest.read(source)
    if db_path.exists():
        raise BackupError(
            f"{db_path} already exists: restore only writes a new store (a store in use cannot "
            "be overwritten, and an old one is not replaced); choose a new path"
        )
    _empty_folder(models_dir)
    _verify(source, manifest)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = db_path.with_name(f".{db_path.name}.restoring")
    shutil.copyfile(source / DATABASE, temporary)
    os.replace(temporary, db_path)
    _copy_models(source / MODELS, models_dir)
    _check_hashes(models_dir, manifest.models)
    restored = Store(db_path)
    try:
        restored.move_model_paths(manifest.models_root, str(models_dir))
    finally:
        restored.close()
    return manifest


def _empty_folder(folder: Path) -> Path:
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty: choose a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _copy_models(source: Path, target: Path) -> dict[str, str]:
    """Copy every model file (not the temp files of writes in progress); sha256 per file of
    the bytes written."""
    hashes = {}
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = path.relative_to(source)
        if any(part.startswith(".") for part in relative.parts):
            continue
        data = path.read_bytes()
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).write_bytes(data)
        hashes[relative.as_posix()] = hashlib.sha256(data).hexdigest()
    return hashes


def _verify(folder: Path, manifest: Manifest) -> None:
    """The backup in `folder` holds what `manifest` says: table counts and model hashes."""
    try:
        counts = row_counts_of(folder / DATABASE)
    except StoreError as error:
        raise BackupError(str(error)) from None
    if counts != manifest.tables:
        differ = sorted(
            t
            for t in counts.keys() | manifest.tables.keys()
            if counts.get(t) != manifest.tables.get(t)
        )
        raise BackupError(
            f"{folder / DATABASE}: row counts differ from the manifest in {', '.join(differ)}"
        )
    _check_hashes(folder / MODELS, manifest.models)


def _check_hashes(folder: Path, expected: dict[str, str]) -> None:
    for relative, sha256 in expected.items():
        path = folder / relative
        if not path.is_file():
            raise BackupError(f"model file {path} is missing")
        if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
            raise BackupError(f"model file {path} does not match its sha256 in the manifest")
