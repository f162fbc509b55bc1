"""The soak: the engine on the default synthetic replay, running unpaused at its speed, for
ALPHA12_SOAK_MINUTES (default 60) while the pages' views are polled every few seconds, the
process's resident memory sampled all along. After the warm start, the memory must stay within
10% of its level at the first monitor run (the median over the minute from it): a leak (an
unbounded cache, a growing buffer pool) shows as a rising curve.

Skipped unless ALPHA12_SOAK=1, so `make test` stays fast:

    ALPHA12_SOAK=1 ALPHA12_SOAK_MINUTES=60 python -m pytest tests/reliability/test_soak.py -s

By default the replay is the settings' own (365 days of history, 600 market seconds a second:
an hour adds 25 market days to a year, as a service's store grows). ALPHA12_SOAK_SPEED and
ALPHA12_SOAK_HISTORY_DAYS change them (e.g. 3600 and 30: a short warm start, then 150 market
days in the hour, so the store grows by half and the curve measures data growth as much as
time); ALPHA12_SOAK_CSV names the curve's file.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import statistics
import threading
import time
from pathlib import Path

import pytest

from alpha12.config import Settings
from alpha12.engine import Engine
from alpha12.services import Alpha12

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("ALPHA12_SOAK") != "1", reason="set ALPHA12_SOAK=1"),
]
SAMPLE_SECONDS = 2.0
POLL_SECONDS = 3.0
GROWTH_LIMIT = 1.10
BASELINE_SECONDS = 60.0


def rss_bytes() -> int:
    """This process's resident set (VmRSS), now."""
    line = next(
        x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:")
    )
    return int(line.split()[1]) * 1024


class Sampler(threading.Thread):
    """Every SAMPLE_SECONDS: (seconds since start, RSS, engine state, monitor runs so far)."""

    def __init__(self, app: Alpha12):
        super().__init__(daemon=True, name="soak-sampler")
        self.app, self.rows, self.stop = app, [], threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_SECONDS):
            self.rows.append(
                {
                    "seconds": round(time.monotonic() - self.started, 1),
                    "rss_mb": round(rss_bytes() / 2**20, 1),
                    "state": str(self.app.engine.state),
                    "monitor_runs": monitor_runs(self.app),
                }
            )


def monitor_runs(app: Alpha12) -> int:
    """Monitor runs so far (one clock time per run's decisions); 0 before the first."""
    return app.store.scalar(
        "SELECT count(DISTINCT ts) FROM recalibrations WHERE trigger = 'monitor'"
    )


def poll_views(app: Alpha12) -> None:
    """What the open pages ask for at each refresh."""
    app.overview()
    app.pair_status()
    app.recalibration_log()
    app.system_status()


def test_memory_stays_flat_while_the_engine_runs(tmp_path):
    minutes = float(os.environ.get("ALPHA12_SOAK_MINUTES", "60"))
    history = int(os.environ.get("ALPHA12_SOAK_HISTORY_DAYS", Settings.history_days))
    speed = float(os.environ.get("ALPHA12_SOAK_SPEED", Settings.replay_speed))
    curve = Path(os.environ.get("ALPHA12_SOAK_CSV", tmp_path / "soak_rss.csv"))
    settings = dataclasses.replace(
        Settings(),
        db_path=tmp_path / "storage.duckdb",
        models_dir=tmp_path / "models",
        history_days=history,
        replay_speed=speed,
    )
    app = Alpha12.open(settings=settings)
    engine = Engine(app.context)
    app._engine = engine  # the facade's views report this engine
    sampler = Sampler(app)
    sampler.start()
    engine.start()
    deadline = time.monotonic() + minutes * 60
    try:
        while time.monotonic() < deadline:
            poll_views(app)
            time.sleep(POLL_SECONDS)
    finally:
        sampler.stop.set()
        sampler.join()
        engine.stop(timeout=300)
        app.close()
    write_curve(curve, sampler.rows)
    first, later = split_at_first_monitor_minute(sampler.rows)
    assert len(first) >= 10 and len(later) >= 10, f"too few samples after the warm start: {curve}"
    baseline = statistics.median(r["rss_mb"] for r in first)
    peak = max(r["rss_mb"] for r in later)
    print(
        f"\nsoak: {minutes:g} min at {speed:g}x over {history} days, {len(sampler.rows)} "
        f"samples, RSS in the minute of the first monitor run (median) {baseline:.1f} MB, "
        f"peak after it {peak} MB ({peak / baseline - 1:+.1%}), last {later[-1]['rss_mb']} MB, "
        f"{later[-1]['monitor_runs']} monitor runs; curve {curve}"
    )
    assert peak <= GROWTH_LIMIT * baseline


def split_at_first_monitor_minute(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The running engine's samples in the minute from the first monitor run (the level: one
    sample could fall on a run's transient peak, or on the warm start's frames not yet freed)
    and the samples after that minute."""
    running = [r for r in rows if r["monitor_runs"] > 0 and r["state"] == "running"]
    if not running:
        return [], []
    start = running[0]["seconds"]
    first = [r for r in running if r["seconds"] < start + BASELINE_SECONDS]
    return first, running[len(first) :]


def write_curve(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["seconds", "rss_mb", "state", "monitor_runs"])
        writer.writeheader()
        writer.writerows(rows)
