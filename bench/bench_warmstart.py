"""Benchmark: a new user's first minute. From an empty store on the offline default (three
assets x five timeframes, a year of replayed history), the time until every pair shows a status
other than "no model" with at least one out-of-sample trade — what the Overview needs to mean
something — against the time the whole warm start takes, in the same run (before the warm
start saved setups as it walked, the Overview was full only when every walk had ended).

A watcher thread asks the facade what the Overview asks (pair statuses) and counts each pair's
saved setups, once a second, while the engine's own first step (collect, then the warm start)
runs on this thread.
"""

import dataclasses
import tempfile
import threading
import time
from pathlib import Path

from alpha12.config import Settings
from alpha12.services import Alpha12
from alpha12.vocabulary import PairStatus
from bench.timing import row

POLL_SECONDS = 1.0


def run(quick: bool = False) -> list[dict]:
    """One size only: a shorter history leaves 1d too few bars for a first trade."""
    with tempfile.TemporaryDirectory() as folder:
        settings = dataclasses.replace(
            Settings(),
            db_path=Path(folder) / "storage.duckdb",
            models_dir=Path(folder) / "models",
        )
        times = first_minute(settings)
    history = (
        f"{len(settings.assets)} assets x {len(settings.intervals)} timeframes, "
        f"{settings.history_days} days"
    )
    return [
        row(f"empty store -> stored bars ({history})", times["collected"], "s", ""),
        row(
            "empty store -> every pair has a status and a trade",
            times["overview"],
            "s",
            "<= 30 s",
            reference=times["warm start"],
        ),
        row("empty store -> warm start done (the reference)", times["warm start"], "s", ""),
    ]


def first_minute(settings: Settings) -> dict[str, float]:
    """Seconds from opening the empty store to: bars stored, the Overview full, the warm
    start done."""
    started = time.perf_counter()
    app = Alpha12.open(settings=settings)
    times: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(POLL_SECONDS):
            if "overview" not in times and overview_full(app):
                times["overview"] = time.perf_counter() - started

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        app.engine.context.collect_once(app.engine.backoff)
        times["collected"] = time.perf_counter() - started
        watcher.start()
        app.engine.warm_start_if_new()
        times["warm start"] = time.perf_counter() - started
    finally:
        stop.set()
        watcher.join()
        app.close()
    times.setdefault("overview", float("nan"))  # never full: the row says so
    return times


def overview_full(app: Alpha12) -> bool:
    statuses = app.pair_status()
    traded = app.store.query("SELECT DISTINCT asset, interval FROM setups")
    return (statuses["status"] != PairStatus.NO_MODEL).all() and len(traded) == len(statuses)
