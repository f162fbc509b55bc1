"""`python -m alpha12`: status as JSON, collect filling every pair, and plain errors."""

import json
import os
import signal
import threading

import pandas as pd
import pytest

from alpha12 import cli
from alpha12.config import Settings
from alpha12.services import Alpha12
from alpha12.sources.replay import SYNTHETIC_ORIGIN

HISTORY_DAYS = 20
# A crawling replay clock, so the bar counts do not depend on how long the commands take.
SMALL_REPLAY = {"ALPHA12_HISTORY_DAYS": str(HISTORY_DAYS), "ALPHA12_REPLAY_SPEED": "0.001"}
BARS_PER_DAY = {"5m": 288, "15m": 96, "1h": 24, "4h": 6, "1d": 1}
PAIR_KEYS = {"asset", "interval", "bars", "first_bar", "last_bar", "freshness_s", "rejected"}


@pytest.fixture
def small_replay(isolated_env, monkeypatch) -> None:
    for name, value in SMALL_REPLAY.items():
        monkeypatch.setenv(name, value)


def run_main(capsys, *args) -> tuple[int, str, str]:
    """cli.main in this process (faster than a subprocess): exit code, stdout, stderr."""
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def status_json(capsys, db) -> dict:
    code, out, err = run_main(capsys, "--db", db, "status", "--json")
    assert code == 0, err
    return json.loads(out)


def test_status_json_on_a_fresh_db(small_replay, tmp_path, capsys):
    status = status_json(capsys, tmp_path / "fresh.duckdb")
    assert status["live"] is False
    assert "not live" in status["market"]
    assert status["engine"] == {"state": "stopped", "heartbeat": None, "heartbeat_age_s": None}
    assert pd.Timestamp(status["clock"]) >= SYNTHETIC_ORIGIN + pd.Timedelta(days=HISTORY_DAYS)
    settings = Settings()
    pairs = status["pairs"]
    assert [(p["asset"], p["interval"]) for p in pairs] == [
        (a, i) for a in settings.assets for i in settings.intervals
    ]
    for pair in pairs:
        assert set(pair) >= PAIR_KEYS
        assert (pair["bars"], pair["first_bar"], pair["last_bar"]) == (0, None, None)
        assert (pair["freshness_s"], pair["rejected"]) == (None, 0)


def test_collect_once_fills_every_default_pair(run_cli, small_replay, tmp_path, capsys):
    db = tmp_path / "collected.duckdb"
    collected = run_cli("--db", db, "collect", "--once", env=SMALL_REPLAY)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert "REPLAYED market, not live" in collected.stdout
    assert "0 pair errors" in collected.stdout
    status = status_json(capsys, db)
    clock = pd.Timestamp(status["clock"])
    assert len(status["pairs"]) == len(Settings().assets) * 5
    for pair in status["pairs"]:
        interval = pair["interval"]
        assert pair["bars"] == HISTORY_DAYS * BARS_PER_DAY[interval], pair
        assert pd.Timestamp(pair["first_bar"]) == SYNTHETIC_ORIGIN
        last_close = pd.Timestamp(pair["last_bar"]) + pd.Timedelta(days=1) / BARS_PER_DAY[interval]
        assert last_close == SYNTHETIC_ORIGIN + pd.Timedelta(days=HISTORY_DAYS)
        assert 0 <= pair["freshness_s"] == round((clock - last_close).total_seconds())
        assert pair["rejected"] == 0
    # the replay resumes where it stopped: a second pass finds nothing new
    code, out, _ = run_main(capsys, "--db", db, "collect", "--once")
    assert code == 0 and "+0 bars" in out


def test_status_as_a_table(isolated_env, tmp_path, capsys):
    assert cli.main(["--db", str(tmp_path / "t.duckdb"), "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("REPLAYED market, not live")
    assert "freshness_s" in out and "SOL" in out


def test_invalid_settings_exit_with_a_plain_message(isolated_env, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ALPHA12_TIMEFRAMES__5M__WIN_RATE", "1.5")
    monkeypatch.setenv("ALPHA12_SEED", "many")
    code, _, err = run_main(capsys, "--db", tmp_path / "x.duckdb", "status")
    assert code == 2
    assert "Traceback" not in err
    assert "timeframes.5m.win_rate" in err and "seed" in err
    assert not (tmp_path / "x.duckdb").exists()  # nothing is created for a bad configuration


def test_a_missing_import_path_is_a_plain_error(isolated_env, tmp_path, capsys):
    code = cli.main(["--db", str(tmp_path / "x.duckdb"), "import-csv", str(tmp_path / "nope")])
    captured = capsys.readouterr()
    assert code != 0
    assert "nope" in captured.out + captured.err
    assert "Traceback" not in captured.err


def test_follow_stops_cleanly_on_interrupt(isolated_env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ALPHA12_HISTORY_DAYS", "2")

    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.time, "sleep", interrupt)
    assert cli.main(["--db", str(tmp_path / "f.duckdb"), "collect", "--follow"]) == 130
    assert "+" in capsys.readouterr().out  # one pass ran before the interrupt


def test_ctrl_c_inside_a_database_query_exits_130_without_a_traceback(
    isolated_env, tmp_path, capsys, monkeypatch
):
    """DuckDB turns a Ctrl-C that lands in a query into RuntimeError("Query interrupted"). A
    real query and real SIGINTs, sent until the query gives way (DuckDB misses some); the
    handler raises KeyboardInterrupt, as Python's own does, only while the query runs."""
    in_query, stop, raised = threading.Event(), threading.Event(), []

    def endless_query(app):
        # On one thread DuckDB's own thread runs the query and looks for signals between its
        # steps; on more it may wait for its workers without looking (then Ctrl-C is missed).
        app.store.rows("SET threads = 1")
        in_query.set()
        try:
            app.store.rows("SELECT count(*) FROM range(10000000000000)")  # hours, unless stopped
        except BaseException as error:
            raised.append(type(error))
            raise
        finally:
            in_query.clear()

    def ctrl_c(signum, frame):
        if in_query.is_set():
            raise KeyboardInterrupt

    def press_ctrl_c() -> None:
        in_query.wait()
        while not stop.wait(0.2):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Alpha12, "pair_status", endless_query)
    previous = signal.signal(signal.SIGINT, ctrl_c)
    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    try:
        code, _, err = run_main(capsys, "--db", tmp_path / "x.duckdb", "status")
    finally:
        stop.set()
        presser.join()
        signal.signal(signal.SIGINT, previous)
    assert raised == [RuntimeError]  # DuckDB's, not a KeyboardInterrupt
    assert code == 130 and "Traceback" not in err


@pytest.mark.parametrize("args", [[], ["collect", "--once", "--follow"], ["bogus"]])
def test_bad_arguments_exit_2(args, isolated_env, capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(args)
    assert raised.value.code == 2
