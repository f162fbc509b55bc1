"""The headless engine end to end: `python -m alpha12 run` on a fresh store warms up, trades
every timeframe, stops on Ctrl-C and reports through `status --json`. Its own module, so the
test distribution runs it beside the others (it waits for its warm start)."""

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from alpha12.store import Store
from alpha12.vocabulary import EngineState

pytestmark = pytest.mark.apart

WARM_START_LIMIT_S = 600  # about 40 s idle; a loaded 2-core box takes several times that
# A live-table row starts with the clock (to the minute) and the engine's state.
ENGINE_COLUMN = re.compile(
    rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d ({EngineState.RUNNING}|{EngineState.WARMING_UP})\b"
)
LIVE_TICKS_S = 5  # the live engine after its warm start (five market minutes), before Ctrl-C
# The replay at 60x, not the default 600x: the market time that passes during the warm start is
# then caught up in a few bars. At 600x a warm start slowed by a busy machine leaves dozens of
# bars and several monitor runs (with their retrains) to work through: the run took 43 s of CPU
# beside two busy cores against 25 s at 60x (20 s either way on an idle machine).
REPLAY_SPEED = "60"
STATUS_KEYS = {
    "win_rate",
    "profit_factor",
    "trades",
    "pending",
    "status",
    "cooldown_remaining_s",
    "model_version",
    "model_scope",
}


def interruptible() -> None:
    """Ctrl-C as at a terminal, even when this run was started in the background: a shell
    without job control starts background commands with SIGINT ignored, the child inherits
    that, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_until_warm(db, env: dict, cwd) -> tuple[int, str]:
    """`python -m alpha12 run` until its live table shows the engine running after its warm
    start, a few seconds more, then Ctrl-C: (exit code, what it printed)."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "alpha12", "--db", str(db), "run"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=interruptible,
    )
    printed, warming, deadline = [], False, time.monotonic() + WARM_START_LIMIT_S
    try:
        for line in process.stdout:
            printed.append(line)
            state = ENGINE_COLUMN.match(line)  # a row of the live table, not a log line
            warming = warming or bool(state and state[1] == EngineState.WARMING_UP)
            running = bool(state and state[1] == EngineState.RUNNING)
            if (warming and running) or time.monotonic() > deadline:
                break
        time.sleep(LIVE_TICKS_S)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=300)
    finally:
        process.kill()
    return process.returncode, "".join(printed) + rest


@pytest.mark.slow
def test_a_headless_run_warms_up_and_trades_every_timeframe(run_cli, cli_env, tmp_path):
    """`python -m alpha12 run` on a fresh store: warm start, the live engine, then Ctrl-C."""
    env = {
        "ALPHA12_ASSETS": "BTC",
        "ALPHA12_HISTORY_DAYS": "120",
        "ALPHA12_REPLAY_SPEED": REPLAY_SPEED,
        "ALPHA12_MODELS_DIR": str(tmp_path / "models"),
    }
    db = tmp_path / "storage.duckdb"
    started = time.monotonic()
    code, printed = run_until_warm(db, {**cli_env, **env}, tmp_path)
    assert code == 130, printed[-3000:]  # interrupted, as a shell reports Ctrl-C
    assert time.monotonic() - started < WARM_START_LIMIT_S, "the run never showed running"
    assert "REPLAYED market, not live" in printed

    status = run_cli("--db", db, "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    pairs = json.loads(status.stdout)["pairs"]
    assert [p["interval"] for p in pairs] == ["5m", "15m", "1h", "4h", "1d"]
    for pair in pairs:
        assert set(pair) >= STATUS_KEYS
        assert pair["model_scope"] in ("timeframe", "fallback") and pair["model_version"] >= 1
        assert isinstance(pair["trades"], int) and isinstance(pair["pending"], int)

    store = Store(db)
    closed = store.query(
        "SELECT interval, count(*) AS n FROM setups WHERE status = 'closed' GROUP BY interval"
    )
    assert set(closed["interval"]) == {"5m", "15m", "1h", "4h", "1d"}, store.events(20)
    assert store.scalar("SELECT count(*) FROM recalibrations WHERE action = 'recalibrated'") >= 1
    errors = store.events(20, min_level="error")
    assert errors.empty, errors["message"].tolist()
    store.close()
