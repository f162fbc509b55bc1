"""The headless engine end to end: `python -m alpha12 run --for N` on a fresh store warms up,
trades every timeframe and reports through `status --json`. Its own module, so the test
distribution can run it beside the others (it waits out its run)."""

import json

import pytest

from alpha12.store import Store

RUN_SECONDS = 120  # the warm start (about 40 s idle, 90 s on a loaded 2-core box) fits in here
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


@pytest.mark.slow
def test_a_headless_run_warms_up_and_trades_every_timeframe(run_cli, tmp_path):
    """`python -m alpha12 run --for N` on a fresh store: warm start, then the live engine."""
    env = {
        "ALPHA12_ASSETS": "BTC",
        "ALPHA12_HISTORY_DAYS": "120",
        "ALPHA12_MODELS_DIR": str(tmp_path / "models"),
    }
    db = tmp_path / "storage.duckdb"
    run = run_cli("--db", db, "run", "--for", RUN_SECONDS, env=env, timeout=RUN_SECONDS + 240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "REPLAYED market, not live" in run.stdout

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
