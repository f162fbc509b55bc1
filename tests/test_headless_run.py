"""The headless engine end to end: `python -m alpha12 run` on a fresh store warms up, trades
every timeframe, stops on Ctrl-C and reports through `status --json`. Its own module, so the
test distribution runs it beside the others (it waits for its warm start)."""

import json
import signal
import subprocess
import sys
import time

import pytest

from alpha12.store import Store

WARM_START_LIMIT_S = 600  # about 40 s idle; a loaded 2-core box takes several times that
LIVE_TICKS_S = 10  # the live engine after its warm start, before Ctrl-C
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
    )
    printed, warming, deadline = [], False, time.monotonic() + WARM_START_LIMIT_S
    try:
        for line in process.stdout:
            printed.append(line)
            warming = warming or "warming_up" in line
            if (warming and " running " in line) or time.monotonic() > deadline:
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
        "ALPHA12_MODELS_DIR": str(tmp_path / "models"),
    }
    db = tmp_path / "storage.duckdb"
    code, printed = run_until_warm(db, {**cli_env, **env}, tmp_path)
    assert code == 130, printed[-3000:]  # interrupted, as a shell reports Ctrl-C
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
