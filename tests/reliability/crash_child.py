"""The child side of the crash suite: one life of the headless engine (`alpha12 run`), with
fault injection that can stop it inside a chosen operation so the parent kills it exactly there.

A life runs in a process forked from a forkserver that has already imported alpha12 (so twenty
lives do not pay twenty interpreter starts). It reports to the parent over a pipe:

    ("started", {wall, pid})              Engine.start returned (interrupted jobs re-queued)
    ("requeued", {running})               jobs still 'running' right after the re-queue
    ("heartbeat", {after_s, ticks})       first heartbeat committed: seconds after the start,
                                          engine ticks begun by then
    ("paused", {point, ...})              stopped inside `point`; waiting to be killed
    ("exit", {code})                      the run ended by itself

Pause points (the first occurrence pauses the thread that reaches it, for good):
    upsert_bars:before-commit   new bars of one or more pairs inserted by Store.upsert_many
                                (which upsert_bars calls too), not yet committed
    upsert_bars:after-commit    the same upsert just committed, before it returns
    model-file:before-replace   a new version's model file written in full, not yet renamed
    register:before-commit      the models row of a new version inserted, not yet committed
    publish:before-model-file   the top-level (serving) model.joblib about to be replaced by a
                                new version's (its meta.json already replaced)
    job:running                 a forced retrain job marked running (progress committed)
"""

from __future__ import annotations

import faulthandler
import os
import threading
import time
import types
from contextlib import contextmanager
from pathlib import Path

from alpha12 import cli, registry
from alpha12.engine import Engine
from alpha12.registry import Registry
from alpha12.store import Store
from alpha12.vocabulary import JobStatus

PAUSE_POINTS = (
    "upsert_bars:before-commit",
    "upsert_bars:after-commit",
    "model-file:before-replace",
    "register:before-commit",
    "publish:before-model-file",
    "job:running",
)
PRELOAD = ["alpha12.cli", "alpha12.services", "tests.reliability.crash_child"]


class Reporter:
    """Sends markers to the parent; `pause` stops the calling thread at the armed point."""

    def __init__(self, connection, armed: str | None):
        self.connection = connection
        self.armed = armed
        self._lock = threading.Lock()

    def send(self, kind: str, **info) -> None:
        with self._lock:
            self.connection.send((kind, info))

    def pause(self, point: str, **info) -> None:
        if point != self.armed:
            return
        self.armed = None  # one pause per life; the parent kills the process now
        self.send("paused", point=point, **info)
        time.sleep(600)


_ops = threading.local()  # the stack of instrumented operations on this thread


def _current() -> tuple[str, dict] | None:
    stack = getattr(_ops, "stack", [])
    return stack[-1] if stack else None


@contextmanager
def _operation(name: str, **info):
    _ops.stack = [*getattr(_ops, "stack", []), (name, info)]
    try:
        yield
    finally:
        _ops.stack = _ops.stack[:-1]


def install(reporter: Reporter, retrain: list[tuple[str, str]]) -> None:
    """Wrap the operations the parent may kill inside; each wrapper calls the original."""
    _wrap_transactions(reporter)
    _wrap_upsert(reporter)
    _wrap_registry(reporter)
    _wrap_engine(reporter, retrain)


def _wrap_transactions(reporter: Reporter) -> None:
    original = Store.transaction

    @contextmanager
    def transaction(self):
        with original(self) as cursor:
            yield cursor
            current = _current()
            if current is not None:  # the body ran; COMMIT has not
                reporter.pause(f"{current[0]}:before-commit", **current[1])

    Store.transaction = transaction


def _wrap_upsert(reporter: Reporter) -> None:
    original = Store.upsert_many

    def upsert_many(self, batches):
        pairs = []
        for (asset, interval), bars in batches.items():
            last = self.last_bar_ts(asset, interval)
            new = bars["ts"] if last is None else bars["ts"][bars["ts"] > last]
            if not new.empty:
                pairs.append(
                    {"asset": asset, "interval": interval, "new_ts": [t.isoformat() for t in new]}
                )
        if not pairs:  # nothing would be written: not a moment worth dying in
            return original(self, batches)
        with _operation("upsert_bars", pairs=pairs):
            inserted = original(self, batches)
        reporter.pause("upsert_bars:after-commit", pairs=pairs)
        return inserted

    Store.upsert_many = upsert_many


def _wrap_registry(reporter: Reporter) -> None:
    """Registry operations by their effect on disk (a rename into place), so the points hold
    however register, activate and publish divide the work between them."""
    register, activate = Registry.register, Registry.activate

    def wrapped_register(self, asset, interval, *args, **kwargs):
        version = self._next_version(asset, interval)
        with _operation("register", asset=asset, interval=interval, version=version):
            return register(self, asset, interval, *args, **kwargs)

    def wrapped_activate(self, asset, interval, version):
        with _operation("activate", asset=asset, interval=interval, version=version):
            return activate(self, asset, interval, version)

    def wrapped_replace(source, destination) -> None:
        current, target = _current(), Path(destination)
        info = current[1] if current else {}
        if target.name == "model.joblib" and target.parent.parent.name == "versions":
            reporter.pause("model-file:before-replace", temp=str(source), **info)
        elif target.name == "model.joblib":
            reporter.pause("publish:before-model-file", **info)
        os.replace(source, destination)

    registry_os = types.ModuleType("os")  # the registry's `os`, with a pausing replace
    registry_os.__dict__.update(os.__dict__)
    registry_os.replace = wrapped_replace
    Registry.register, Registry.activate = wrapped_register, wrapped_activate
    registry.os = registry_os


def _wrap_engine(reporter: Reporter, retrain: list[tuple[str, str]]) -> None:
    start, requeue, tick = Engine.start, Engine._requeue_interrupted_jobs, Engine.tick
    heartbeat, update_job = Engine._heartbeat, Engine._update_job
    life = {"ticks": 0}

    def wrapped_requeue(self):
        requeue(self)
        running = self.store.scalar(
            "SELECT count(*) FROM jobs WHERE status = ?", [JobStatus.RUNNING]
        )
        reporter.send("requeued", running=running)

    def wrapped_start(self):
        life["started"] = time.monotonic()
        start(self)
        reporter.send("started", wall=time.time(), pid=os.getpid())
        for asset, interval in retrain:  # forced retrains for the trainer, as the UI queues them
            reporter.send(
                "job", id=self.request_retrain(asset, interval, requested_by="crash-test")
            )

    def wrapped_tick(self):
        life["ticks"] += 1
        return tick(self)

    def wrapped_heartbeat(self):
        heartbeat(self)
        if "started" in life and "beat" not in life:
            life["beat"] = True
            reporter.send(
                "heartbeat", after_s=time.monotonic() - life["started"], ticks=life["ticks"]
            )

    def wrapped_update_job(self, job_id, status, progress, message):
        update_job(self, job_id, status, progress, message)
        if status == JobStatus.RUNNING:
            reporter.pause("job:running", id=job_id, progress=progress)

    Engine.start, Engine._requeue_interrupted_jobs = wrapped_start, wrapped_requeue
    Engine.tick, Engine._heartbeat, Engine._update_job = (
        wrapped_tick,
        wrapped_heartbeat,
        wrapped_update_job,
    )


def live(spec: dict, connection) -> None:
    """One life: the spec's ALPHA12_* variables, the wrappers, then `alpha12 run`."""
    _redirect_output(spec["log"])
    faulthandler.enable()  # a native crash (not a kill) leaves its stack in the life's log
    for name in [n for n in os.environ if n.startswith("ALPHA12_")]:
        del os.environ[name]
    os.environ.update(spec["env"])
    reporter = Reporter(connection, spec.get("pause_at"))
    install(reporter, [tuple(pair) for pair in spec["retrain"]])
    code = cli.main(["--db", spec["db"], "run", "--for", str(spec["seconds"])])
    reporter.send("exit", code=code)


def hold(db: str, connection) -> None:
    """Hold the store open read-write (as a running app would) until the parent says stop."""
    store = Store(db)
    connection.send(("held", {"pid": os.getpid()}))
    connection.recv()
    store.close()


def _redirect_output(log: str) -> None:
    """The run's live table and any traceback go to the life's log, kept for a failure."""
    handle = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    os.close(handle)
