"""Models-directory resources: a read-only folder and a full disk.

For every write the registry makes when it stores and activates a model (each one failed in
turn with ENOSPC), and for each folder it writes in made read-only: registering fails with a
plain RegistryError, nothing is corrupted (the models table, the serving version and its files
are as before, its sha256 still matches, no temp or half-written version is left), and
registering works again once space or permission returns. Through the engine, a forced retrain
in those conditions ends as a failed job, a failed recalibration row and an error event.

Read-only is real (chmod 0o555) and, when the tests run as root (chmod then blocks nothing),
also simulated: os-level creates, renames and removals in those folders raise EACCES.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from alpha12.registry import RegistryError
from alpha12.services import Alpha12
from alpha12.vocabulary import ModelStatus
from tests.reliability.small_store import (
    ASSET,
    SWAPPED_INTERVAL,
    open_on_manual_clock,
)

PAIR = (ASSET, SWAPPED_INTERVAL)
JOB_PAIR = (ASSET, "1h")  # the forced retrains: the quickest pair to train
NEW_PAIR = ("NEW", "5m")  # no folder yet: its creation is what a read-only root blocks


@pytest.fixture
def app(tmp_path):
    """The small store on a manual clock (the engine's ticks then do only what we ask)."""
    opened = open_on_manual_clock(tmp_path)
    yield opened
    opened.close()


# -- fault injection -------------------------------------------------------------------------


class FullDisk:
    """The `fail_at`-th file opened for writing under `root` (counting from 1; None only
    counts) gets ENOSPC from its first write()."""

    def __init__(self, root: Path, fail_at: int | None):
        self.root, self.fail_at, self.files = root.resolve(), fail_at, 0

    def install(self, monkeypatch) -> None:
        real_fdopen = os.fdopen

        def fdopen(fd, *args, **kwargs):
            file = real_fdopen(fd, *args, **kwargs)
            if not Path(os.readlink(f"/proc/self/fd/{fd}")).is_relative_to(self.root):
                return file
            self.files += 1
            return _NoSpace(file) if self.files == self.fail_at else file

        monkeypatch.setattr(os, "fdopen", fdopen)


class _NoSpace:
    """A file on a full disk: every write() raises ENOSPC."""

    def __init__(self, file):
        self._file = file

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


class ReadOnly:
    """`folders` made read-only: chmod 0o555, and as root (which chmod does not stop) EACCES
    from every os-level create, rename or removal of an entry in them."""

    def __init__(self, folders: list[Path]):
        self.folders = {f.resolve() for f in folders}

    def install(self, monkeypatch) -> None:
        for folder in self.folders:
            folder.chmod(0o555)
        if os.geteuid() != 0:
            return
        real = {name: getattr(os, name) for name in ("open", "mkdir", "replace", "unlink")}

        def guarded(*paths):
            for path in paths:
                if Path(os.path.abspath(path)).parent in self.folders:
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

        def open_(path, flags, *args, **kwargs):
            if flags & os.O_CREAT:
                guarded(path)
            return real["open"](path, flags, *args, **kwargs)

        def mkdir(path, *args, **kwargs):
            guarded(path)
            return real["mkdir"](path, *args, **kwargs)

        def replace(source, target, *args, **kwargs):
            guarded(source, target)
            return real["replace"](source, target, *args, **kwargs)

        def unlink(path, *args, **kwargs):
            guarded(path)
            return real["unlink"](path, *args, **kwargs)

        for name, function in (
            ("open", open_),
            ("mkdir", mkdir),
            ("replace", replace),
            ("unlink", unlink),
        ):
            monkeypatch.setattr(os, name, function)

    def remove(self) -> None:
        for folder in self.folders:
            folder.chmod(0o755)


@contextmanager
def fault(fault_object):
    with pytest.MonkeyPatch.context() as monkeypatch:
        fault_object.install(monkeypatch)
        try:
            yield fault_object
        finally:
            if isinstance(fault_object, ReadOnly):
                fault_object.remove()


# -- what must not change --------------------------------------------------------------------


def state_of(app: Alpha12, pair: tuple[str, str]) -> dict:
    """The models table, what serves the pair (version and file sha256) and every file of the
    models folder (name and bytes)."""
    served = app.registry.load_active(*pair)
    files = {
        str(p.relative_to(app.registry.root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(app.registry.root.rglob("*"))
        if p.is_file()
    }
    return {
        "models": app.store.query("SELECT * FROM models ORDER BY asset, interval, version"),
        "serving": served.version if served else None,
        "files": files,
    }


def assert_unchanged(app: Alpha12, pair, before: dict) -> None:
    after = state_of(app, pair)
    pd.testing.assert_frame_equal(after["models"], before["models"])
    assert after["serving"] == before["serving"]
    assert after["files"] == before["files"]  # no temp file, no half-written version
    if before["serving"] is not None:
        assert_verified(app, pair, before["serving"])


def assert_verified(app: Alpha12, pair, version: int) -> None:
    """The serving file's bytes hash to the sha256 the models table records."""
    recorded = app.store.scalar(
        "SELECT sha256 FROM models WHERE asset = ? AND interval = ? AND version = ?",
        [*pair, version],
    )
    served = app.registry.pair_dir(*pair) / "model.joblib"
    assert hashlib.sha256(served.read_bytes()).hexdigest() == recorded


def trained_model(app: Alpha12):
    return app.registry.load_active(ASSET, "15m").model


def register(app: Alpha12, pair) -> int:
    return app.registry.register(
        *pair, trained_model(app), app.clock.now(), "test", ModelStatus.ACTIVE
    )


def assert_plain(error: RegistryError, reason: str) -> None:
    message = str(error)
    assert reason in message and "Traceback" not in message and "\n" not in message


# -- the cases -------------------------------------------------------------------------------


def count_written_files(app: Alpha12) -> int:
    """How many files one registration of the pair writes (a real registration, which the
    cases below start from)."""
    with fault(FullDisk(app.registry.root, None)) as disk:
        register(app, PAIR)
    return disk.files


def test_full_disk_at_every_file_corrupts_nothing(app):
    files = count_written_files(app)
    assert files == 4  # the version's model and meta, then the serving copies of both
    for fail_at in range(1, files + 1):
        assert_refused_then_recovered(app, PAIR, FullDisk(app.registry.root, fail_at), errno.ENOSPC)


READ_ONLY_CASES = {
    "models root (a new pair)": (NEW_PAIR, lambda r: [r.root]),
    "pair folder": (PAIR, lambda r: [r.pair_dir(*PAIR)]),
    "versions folder": (PAIR, lambda r: [r.pair_dir(*PAIR) / "versions"]),
    "whole tree": (PAIR, lambda r: [r.root, r.pair_dir(*PAIR), r.pair_dir(*PAIR) / "versions"]),
}


@pytest.mark.parametrize("case", list(READ_ONLY_CASES))
def test_read_only_folder_corrupts_nothing(app, case):
    pair, folders = READ_ONLY_CASES[case]
    assert_refused_then_recovered(app, pair, ReadOnly(folders(app.registry)), errno.EACCES)


def assert_refused_then_recovered(app, pair, injected, error_number: int) -> None:
    """Registering under the fault fails plainly and changes nothing; without it, it works."""
    before = state_of(app, pair)
    with fault(injected), pytest.raises(RegistryError) as error:
        register(app, pair)
    assert_plain(error.value, os.strerror(error_number))
    assert_unchanged(app, pair, before)
    version = register(app, pair)  # the space or the permission is back
    assert app.registry.load_active(*pair).version == version
    assert_verified(app, pair, version)


def forced_retrain(app: Alpha12) -> dict:
    """Queue a forced retrain of the pair and let the engine's ticks work it to its end."""
    job_id = app.request_retrain(*JOB_PAIR)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        app.engine.tick()
        job = app.store.query("SELECT * FROM jobs WHERE id = ?", [job_id]).iloc[0]
        if job["status"] in ("done", "failed"):
            return job.to_dict()
        time.sleep(0.05)
    raise AssertionError("the forced retrain never finished")


def latest(app: Alpha12, table: str, columns: str) -> dict:
    return (
        app.store.query(f"SELECT {columns} FROM {table} ORDER BY id DESC LIMIT 1").iloc[0].to_dict()
    )


@pytest.mark.parametrize("kind", ["full disk", "read-only"])
def test_forced_retrain_fails_plainly_and_recovers(app, kind):
    root = app.registry.root
    versions = app.registry.pair_dir(*JOB_PAIR) / "versions"
    injected = FullDisk(root, 1) if kind == "full disk" else ReadOnly([versions])
    reason = os.strerror(errno.ENOSPC if kind == "full disk" else errno.EACCES)
    before = state_of(app, JOB_PAIR)
    with fault(injected):
        job = forced_retrain(app)
    assert job["status"] == "failed" and reason in job["message"]
    recalibration = latest(app, "recalibrations", "trigger, action, message")
    assert recalibration["action"] == "failed" and reason in recalibration["message"]
    event = latest(app, "events", "level, component, message")
    assert event["level"] == "error" and reason in event["message"]
    assert_unchanged(app, JOB_PAIR, before)
    job = forced_retrain(app)  # the resource is back
    assert job["status"] == "done", job["message"]
    action = latest(app, "recalibrations", "action, new_version")
    assert action["action"] in ("recalibrated", "rejected_challenger", "shadowed_challenger")
    assert_verified(app, JOB_PAIR, app.registry.active_version(*JOB_PAIR))
    newest = app.registry.versions(*JOB_PAIR)["version"].max()
    assert action["new_version"] == newest  # the retrain's version is stored
