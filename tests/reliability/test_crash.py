"""Crash safety: the headless engine killed with SIGKILL twenty times on one store, and a store
held by another process.

Kills: 20 lives of `alpha12 run` on one DuckDB file and models folder, so damage would
accumulate. Each life is killed at a moment drawn from a seeded RNG: inside a bar upsert
(before and after its COMMIT), inside a model write (model file written but not renamed into
place, models row inserted but not committed, serving copy half published), while a forced
retrain job runs, or at a random time. After every kill the parent opens the store and checks
that nothing committed was lost or changed, nothing is duplicated, the killed operation left all
of its commit or none of it, every active model verifies and is served, and the next life
resumed (interrupted jobs re-queued, heartbeat by its first tick). A last life runs clean.

Lives are forked from a forkserver that imported alpha12 once (tests/reliability/crash_child.py
runs `alpha12.cli.main(["run", ...])` with the fault injection), not `python -m alpha12`: twenty
interpreter starts would cost a minute.

Held store: while another process holds the file read-write, the store, the facade, every CLI
command and the app refuse with one plain message naming the file, the holder's PID and the way
out, and change nothing; once the holder exits, everything opens with nothing lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import multiprocessing
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from alpha12 import cli
from alpha12.clock import WallClock
from alpha12.config import Settings
from alpha12.context import REPLAY_CLOCK_KEY
from alpha12.engine import ENGINE_STATE_KEY
from alpha12.registry import Registry
from alpha12.services import Alpha12
from alpha12.store import Store, StoreLockedError
from alpha12.warmstart import WARM_STARTED_KEY
from tests.app.helpers import app_variables
from tests.reliability import crash_child

pytestmark = pytest.mark.apart

SEED = 7_2025  # the kill schedule's seed: a failure replays exactly
KILLS = 20
ASSET = "BTC"
INTERVALS = ("15m", "1h")
# A new serving model is published only when a challenger wins, which the warm start's first
# model always does: the first life dies there (so the point is reached for sure). The second
# re-runs the warm start to its end and dies in the forced retrain that follows. The other
# lives are shuffled by the seed.
FIRST_KILLS = ("publish:before-model-file", "job:running")
INJECTED_KILLS = (
    "upsert_bars:before-commit",
    "upsert_bars:before-commit",
    "upsert_bars:after-commit",
    "model-file:before-replace",
    "register:before-commit",
    "job:running",
)
RANDOM_KILL_SECONDS = (0.2, 1.5)  # after the fork: from opening the store to running ticks
PAUSE_TIMEOUT_S = 90  # a life that never reaches its pause point fails the test
FINAL_RUN_S = 2
HEARTBEAT_HANG_S = 15  # a first heartbeat later than this is a hang, however loaded the machine
REPO = Path(__file__).resolve().parents[2]


def life_variables(folder: Path) -> dict[str, str]:
    """One asset, two timeframes, nine days of history: a warm start of seconds. The replay
    runs 900x (a 15m bar closes every second), and long cooldowns keep the monitor's own
    retrains rare, so the trainer is free for the forced jobs."""
    return {
        "ALPHA12_CONFIG": str(folder / "absent.toml"),
        "ALPHA12_ASSETS": ASSET,
        "ALPHA12_INTERVALS": ",".join(INTERVALS),
        "ALPHA12_HISTORY_DAYS": "9",
        "ALPHA12_REPLAY_SPEED": "900",
        "ALPHA12_N_JOBS": "1",  # no joblib worker processes left behind by a kill
        "ALPHA12_MODELS_DIR": str(folder / "models"),
        "ALPHA12_TIMEFRAMES__15M__COOLDOWN_HOURS": "96",
        "ALPHA12_TIMEFRAMES__1H__COOLDOWN_HOURS": "96",
        "ALPHA12_TIMEFRAMES__15M__MIN_ROWS": "600",  # a short walk: fewer rows to trade through
        "ALPHA12_TIMEFRAMES__15M__TRAIN_ROWS": "600",
        "ALPHA12_TIMEFRAMES__1H__MIN_ROWS": "150",
    }


@pytest.fixture(scope="module")
def forkserver():
    """Lives fork from a server that imported alpha12 once (an interpreter start costs ~3 s)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(crash_child.PRELOAD)
    return context


def kill_schedule(rng: random.Random) -> list[str | float]:
    """Pause points by name, random moments as seconds after the fork."""
    randoms = KILLS - len(FIRST_KILLS) - len(INJECTED_KILLS)
    rest = [*INJECTED_KILLS, *(round(rng.uniform(*RANDOM_KILL_SECONDS), 2) for _ in range(randoms))]
    rng.shuffle(rest)
    return [*FIRST_KILLS, *rest]


# --- one life -------------------------------------------------------------------------------


@dataclass
class Life:
    number: int
    kill: str | float | None  # a pause point, seconds after the fork, or None (runs to the end)
    started_wall: float = 0.0
    markers: list[tuple[str, dict]] = field(default_factory=list)
    exitcode: int | None = None
    lock_refusals: int = 0
    seconds: float = 0.0

    def marker(self, kind: str) -> dict | None:
        return next((info for k, info in self.markers if k == kind), None)


def run_life(forkserver, folder: Path, life: Life) -> Life:
    spec = {
        "db": str(folder / "storage.duckdb"),
        "env": life_variables(folder),
        "log": str(folder / f"life-{life.number:02d}.log"),
        "pause_at": life.kill if isinstance(life.kill, str) else None,
        "retrain": [[ASSET, interval] for interval in INTERVALS],
        "seconds": FINAL_RUN_S if life.kill is None else 600,
    }
    reader, writer = forkserver.Pipe(duplex=False)
    process = forkserver.Process(target=crash_child.live, args=(spec, writer), daemon=True)
    began = time.monotonic()
    life.started_wall = time.time()
    process.start()
    writer.close()
    try:
        _follow(process, reader, life, began, spec["db"])
    finally:
        if life.kill is None:
            process.join(60)  # a clean life exits by itself
        if process.is_alive():
            process.kill()  # SIGKILL: no atexit, no finally, no DuckDB checkpoint
        process.join(30)
        _drain(reader, life)
    life.exitcode = process.exitcode
    life.seconds = time.monotonic() - began
    return life


def _follow(process, reader, life: Life, began: float, db: str) -> None:
    """Read markers until the moment to kill (or the end of a clean life)."""
    if isinstance(life.kill, float):
        deadline = began + life.kill
    else:
        deadline = began + (PAUSE_TIMEOUT_S if life.kill else FINAL_RUN_S + 60)
    while (left := deadline - time.monotonic()) > 0:
        if not reader.poll(min(left, 0.05)):
            continue
        try:
            kind, info = reader.recv()
        except EOFError:
            break
        life.markers.append((kind, info))
        if kind == "started":
            life.lock_refusals += _refused_while_held(db, info["pid"])
        if kind == "paused" or kind == "exit":
            return
    if isinstance(life.kill, str) or life.kill is None:
        log = Path(db).parent / f"life-{life.number:02d}.log"
        raise AssertionError(
            f"life {life.number} never reached {life.kill or 'its end'}: {life.markers}\n"
            + log.read_text()[-3000:]
        )


def _drain(reader, life: Life) -> None:
    while True:
        try:
            if not reader.poll(0):
                return
            life.markers.append(reader.recv())
        except (EOFError, OSError):
            return


def _refused_while_held(db: str, pid: int) -> int:
    """While a life runs, a second opener is refused with the holder's PID (1 check)."""
    with pytest.raises(StoreLockedError) as refused:
        Store(db).close()
    assert db in str(refused.value) and f"process {pid}" in str(refused.value)
    return 1


# --- what the store holds after a kill --------------------------------------------------------


@dataclass
class Seen:
    """What the store held at one inspection: compared with the next one."""

    bars: pd.DataFrame
    snapshots: pd.DataFrame
    setups: pd.DataFrame
    closed_setups: pd.DataFrame
    models: pd.DataFrame
    recalibrations: pd.DataFrame
    jobs: pd.DataFrame
    finished_jobs: pd.DataFrame
    events: pd.DataFrame
    warm_started: set
    replay_clock: pd.Timestamp | None
    heartbeat: pd.Timestamp | None


DUPLICATES = {
    "bars": "SELECT asset, interval, ts FROM bars GROUP BY ALL HAVING count(*) > 1",
    "snapshots": "SELECT asset, interval, ts, source FROM snapshots GROUP BY ALL "
    "HAVING count(*) > 1",
    "setups": "SELECT asset, interval, ts FROM setups GROUP BY ALL HAVING count(*) > 1",
    "models": "SELECT asset, interval, version FROM models GROUP BY ALL HAVING count(*) > 1",
    "active models": "SELECT asset, interval FROM models WHERE status = 'active' GROUP BY ALL "
    "HAVING count(*) > 1",
    "open retrain jobs": "SELECT asset, interval FROM jobs WHERE kind = 'retrain' "
    "AND status IN ('queued', 'running') GROUP BY ALL HAVING count(*) > 1",
}


def inspect(store: Store) -> Seen:
    """Read everything the checks compare; assert there are no duplicates."""
    for name, sql in DUPLICATES.items():
        duplicated = store.query(sql)
        assert duplicated.empty, f"duplicate {name}: {duplicated.head().to_dict('records')}"
    engine = store.get_state(ENGINE_STATE_KEY) or {}
    clock = store.get_state(REPLAY_CLOCK_KEY)
    return Seen(
        bars=store.query("SELECT * FROM bars"),
        snapshots=store.query("SELECT asset, interval, ts, source FROM snapshots"),
        setups=store.query("SELECT id, asset, interval, ts, direction, entry FROM setups"),
        closed_setups=store.query(
            "SELECT id, exit_ts, exit_price, exit_reason FROM setups WHERE status = 'closed'"
        ),
        models=store.query("SELECT asset, interval, version, sha256, path FROM models"),
        recalibrations=store.query("SELECT id, asset, interval, ts, action FROM recalibrations"),
        jobs=store.query("SELECT id, asset, interval, requested_at FROM jobs"),
        finished_jobs=store.query(
            "SELECT id, status, finished_at FROM jobs WHERE status IN ('done', 'failed')"
        ),
        events=store.query("SELECT id, ts, level, message FROM events"),
        warm_started={tuple(pair) for pair in store.get_state(WARM_STARTED_KEY, [])},
        replay_clock=pd.Timestamp(clock) if clock else None,
        heartbeat=pd.Timestamp(engine["heartbeat_wall"]) if engine else None,
    )


def missing_rows(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Rows of `before` (all columns equal) that `after` no longer has."""
    if before.empty:
        return before
    merged = before.merge(after.drop_duplicates(), how="left", indicator=True)
    return merged[merged["_merge"] == "left_only"]


def assert_nothing_lost(before: Seen | None, after: Seen) -> int:
    """Every committed row seen before is still there, unchanged; returns the rows compared."""
    if before is None:
        return 0
    compared = 0
    for name in (
        "bars",
        "snapshots",
        "setups",
        "closed_setups",
        "models",
        "recalibrations",
        "jobs",
        "finished_jobs",
        "events",
    ):
        lost = missing_rows(getattr(before, name), getattr(after, name))
        assert lost.empty, f"{len(lost)} {name} rows lost: {lost.head().to_dict('records')}"
        compared += len(getattr(before, name))
    assert before.warm_started <= after.warm_started
    for name in ("replay_clock", "heartbeat"):
        earlier, later = getattr(before, name), getattr(after, name)
        assert earlier is None or (later is not None and later >= earlier), name
    return compared


def assert_active_models_verify(store: Store, models_dir: Path) -> int:
    """Each active model's kept file hashes to its record and the registry serves it."""
    active = store.query(
        "SELECT asset, interval, version, sha256 FROM models WHERE status = 'active'"
    )
    registry = Registry(models_dir, store, WallClock())
    for row in active.itertuples():
        kept = models_dir / f"{row.asset}_{row.interval}" / "versions" / f"v{row.version}"
        digest = hashlib.sha256((kept / "model.joblib").read_bytes()).hexdigest()
        assert digest == row.sha256, f"{row.asset} {row.interval} v{row.version}: sha256"
        served = registry.load_active(row.asset, row.interval)
        assert served is not None and served.version == row.version, (row, served)
    return len(active)


def assert_paused_operation_consistent(store: Store, point: str, info: dict) -> None:
    """What the operation killed at `point` left behind: all of a commit, none of the rest."""
    operation, moment = point.split(":")
    if operation == "upsert_bars":  # one transaction for every pair of the batch
        for pair in info["pairs"]:
            stored = set(
                store.query(
                    "SELECT ts FROM bars WHERE asset = ? AND interval = ?",
                    [pair["asset"], pair["interval"]],
                )["ts"]
            )
            announced = {pd.Timestamp(ts) for ts in pair["new_ts"]}
            present = announced & stored
            if moment == "before-commit":
                assert not present, f"{len(present)} uncommitted bars survived the kill"
            else:
                assert present == announced, f"{len(announced - present)} committed bars lost"
    elif operation in ("model-file", "register"):  # the row comes after the file, in one tx
        row = _model_row(store, info)
        assert row.empty, f"a models row for an unfinished write: {row.to_dict('records')}"
    elif operation == "publish":  # the files went first; the table never made it serve
        row = _model_row(store, info)
        assert "active" not in set(row["status"]), row.to_dict("records")
    elif operation == "job":
        status = store.scalar("SELECT status FROM jobs WHERE id = ?", [info["id"]])
        assert status == "running", status  # committed; the next start must re-queue it


def _model_row(store: Store, info: dict) -> pd.DataFrame:
    return store.query(
        "SELECT status FROM models WHERE asset = ? AND interval = ? AND version = ?",
        [info["asset"], info["interval"], info["version"]],
    )


def assert_resumed(life: Life, seen: Seen) -> None:
    """A life that started its engine re-queued every interrupted job and beat its heart
    by the end of its first tick (the warm start's progress beats before any), and that
    heartbeat was committed (it survived the kill)."""
    requeued = life.marker("requeued")
    if requeued is not None:
        assert requeued["running"] == 0, "a job left 'running' after the engine restarted"
    beat = life.marker("heartbeat")
    if beat is not None:
        assert beat["ticks"] <= 1 and beat["after_s"] <= HEARTBEAT_HANG_S, beat
        assert seen.heartbeat >= pd.Timestamp(life.started_wall, unit="s", tz="UTC")


# --- the tests ------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the kills covered, for the assertions at the end and the report line."""

    lives: list[Life] = field(default_factory=list)
    rows_rechecked: int = 0
    active_models_verified: int = 0
    interrupted_jobs: set[int] = field(default_factory=set)

    def paused_points(self) -> list[str]:
        return sorted(
            life.marker("paused")["point"] for life in self.lives if life.marker("paused")
        )

    def line(self) -> str:
        beats = [
            life.marker("heartbeat")["after_s"] for life in self.lives if life.marker("heartbeat")
        ]
        return (
            f"crash suite: seed {SEED}, {len(self.lives) - 1} kills "
            f"({len(self.paused_points())} inside: {', '.join(self.paused_points())}), "
            f"{self.rows_rechecked:,} committed rows re-checked, {self.active_models_verified} "
            f"active-model verifications, {len(beats)} restarts beat in their first tick "
            f"(max {max(beats):.2f} s), {sum(life.lock_refusals for life in self.lives)} second "
            f"openers refused while a life ran"
        )


def check_after_life(life: Life, before: Seen | None, folder: Path, tally: Tally) -> Seen:
    """Open the store the life left behind and run every check on it."""
    store = Store(folder / "storage.duckdb")  # opening replays DuckDB's write-ahead log
    try:
        seen = inspect(store)
        tally.rows_rechecked += assert_nothing_lost(before, seen)
        paused = life.marker("paused")
        if paused is not None:
            assert_paused_operation_consistent(store, paused["point"], paused)
            if paused["point"] == "job:running":
                tally.interrupted_jobs.add(paused["id"])
        tally.active_models_verified += assert_active_models_verify(store, folder / "models")
        assert_resumed(life, seen)
    finally:
        store.close()
    tally.lives.append(life)
    return seen


def assert_interrupted_jobs_not_running(folder: Path, interrupted: set[int]) -> None:
    store = Store(folder / "storage.duckdb")
    try:
        jobs = store.query("SELECT id, status FROM jobs").set_index("id")["status"]
    finally:
        store.close()
    assert "running" not in set(jobs), jobs.to_dict()
    assert interrupted and set(jobs[list(interrupted)]) <= {"queued", "done", "failed"}


@pytest.mark.slow
def test_twenty_kills_lose_nothing_and_the_engine_resumes(forkserver, tmp_path):
    schedule = kill_schedule(random.Random(SEED))
    tally, seen = Tally(), None
    for number, kill in enumerate([*schedule, None], start=1):  # None: a last, clean life
        life = run_life(forkserver, tmp_path, Life(number, kill))
        seen = check_after_life(life, seen, tmp_path, tally)

    *killed, final = tally.lives
    assert [life.exitcode for life in killed] == [-9] * KILLS
    assert final.exitcode == 0 and final.marker("exit") == {"code": 0}, final.markers
    assert tally.paused_points() == sorted([*FIRST_KILLS, *INJECTED_KILLS])
    assert_interrupted_jobs_not_running(tmp_path, tally.interrupted_jobs)
    assert seen.warm_started == {(ASSET, interval) for interval in INTERVALS}
    print("\n" + tally.line())


# --- a store held by another process ----------------------------------------------------------

HELD_INTERVALS = ("1h",)
CLI_COMMANDS = (
    ("status",),
    ("status", "--json"),
    ("collect", "--once"),
    ("import-csv", "BTC_1h.csv"),
    ("backfill",),
    ("train",),
    ("run", "--for", "1"),
    ("monitor", "--once"),
    ("retrain", "--asset", ASSET, "--interval", "1h", "--force"),
)


def held_settings(folder: Path) -> Settings:
    return dataclasses.replace(
        Settings(),
        assets=(ASSET,),
        intervals=HELD_INTERVALS,
        history_days=5,
        db_path=folder / "storage.duckdb",
        models_dir=folder / "models",
    )


def held_variables(folder: Path) -> dict[str, str]:
    """The ALPHA12_* variables that point the CLI and app.py at the store in `folder`."""
    return {**app_variables(folder, held_settings(folder)), "ALPHA12_ENGINE": "off"}


def table_contents(db: Path) -> dict[str, pd.DataFrame]:
    store = Store(db)
    try:
        tables = store.query("SELECT table_name FROM duckdb_tables()")["table_name"]
        return {name: store.query(f'SELECT * FROM "{name}" ORDER BY ALL') for name in tables}
    finally:
        store.close()


def file_tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def held(forkserver, tmp_path, monkeypatch):
    """A small store (bars, snapshots, state) and another process holding it read-write.
    Yields (folder, holder PID, release)."""
    for name in [n for n in os.environ if n.startswith("ALPHA12_")]:
        monkeypatch.delenv(name)
    for name, value in held_variables(tmp_path).items():
        monkeypatch.setenv(name, value)
    app = Alpha12.open(settings=held_settings(tmp_path))
    app.collect_once()
    app.backfill()
    app.store.set_state("kept", {"by": "the crash suite"})
    app.close()
    (tmp_path / "BTC_1h.csv").write_text("timestamp,open,high,low,close,volume\n")
    parent, child = forkserver.Pipe()
    holder = forkserver.Process(
        target=crash_child.hold, args=(str(tmp_path / "storage.duckdb"), child)
    )
    holder.start()
    kind, info = parent.recv()
    assert kind == "held"

    def release() -> None:
        parent.send("release")
        holder.join(30)
        assert holder.exitcode == 0

    yield tmp_path, info["pid"], release
    if holder.is_alive():
        holder.kill()
        holder.join(30)
    st.cache_resource.clear()  # the app context opened after the release closes its store


def run_cli_here(*args) -> tuple[int, str, str]:
    """cli.main in this process (no interpreter start): exit code, stdout, stderr. Not capsys:
    streamlit's logger, set up by the AppTest runs, must not be left holding its buffer."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def assert_plain_refusal(message: str, db: Path, pid: int) -> None:
    """One line naming the file, the holder's PID and the way out; no traceback."""
    assert "Traceback" not in message
    assert len(message.strip().splitlines()) == 1, message
    assert str(db) in message and f"in use by process {pid}" in message, message
    assert "Stop that alpha12 app or command, or use another file with --db" in message


def test_a_held_store_refuses_every_opener_plainly_and_changes_nothing(held):
    folder, pid, release = held
    db = folder / "storage.duckdb"
    before_tables_tree = file_tree(folder)
    refusals = 0

    with pytest.raises(StoreLockedError) as store_refused:
        Store(db)
    assert_plain_refusal(str(store_refused.value), db, pid)
    with pytest.raises(StoreLockedError) as facade_refused:
        Alpha12.open(settings=held_settings(folder))
    assert_plain_refusal(str(facade_refused.value), db, pid)
    refusals += 2

    for command in CLI_COMMANDS:  # in this process: every command's path to the store
        code, out, err = run_cli_here("--db", db, *command)
        assert code == 2 and out == "", command
        assert_plain_refusal(err, db, pid)
        refusals += 1

    completed = subprocess.run(  # and once as a real process, as a user types it
        [sys.executable, "-m", "alpha12", "--db", str(db), "status", "--json"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2 and completed.stdout == ""
    assert_plain_refusal(completed.stderr, db, pid)

    page = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert not page.exception, [e.value for e in page.exception]
    assert len(page.error) == 1 and page.error[0].value.startswith("alpha12 cannot start: ")
    assert_plain_refusal(page.error[0].value, db, pid)
    refusals += 2

    assert file_tree(folder) == before_tables_tree  # the refused openers wrote nothing
    print(f"\nheld store: {refusals} refusals, all one plain line naming {db.name} and PID")
    release()


def test_once_the_holder_exits_everything_opens_with_nothing_lost(held):
    folder, _, release = held
    db = folder / "storage.duckdb"
    release()
    tables = table_contents(db)
    assert len(tables["bars"]) and len(tables["snapshots"]) and len(tables["state"])

    code, out, err = run_cli_here("--db", db, "status", "--json")
    assert code == 0 and '"bars": ' in out, err
    page = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert not page.exception and not page.error, [e.value for e in page.error]
    st.cache_resource.clear()

    after = table_contents(db)
    for name in ("bars", "snapshots", "models", "setups", "jobs", "recalibrations"):
        pd.testing.assert_frame_equal(after[name], tables[name], check_dtype=False)
    assert Store(db).get_state("kept") == {"by": "the crash suite"}
