"""Kept lab runs: stored and re-opened identically, resumed after a crash, cancelled mid-run
with whole parts only, queued behind each other in the engine, the CLI's lab command, and the
thresholds of a run applied to the live settings through the audited path."""

from __future__ import annotations

import dataclasses
import json
import threading

import numpy as np
import pandas as pd
import pytest

from alpha12 import cli
from alpha12.clock import ManualClock
from alpha12.engine import Engine
from alpha12.lab import LabError, runner, runs
from alpha12.lab.policies import parse_policies
from alpha12.services import Alpha12
from tests.conftest import PAIR

POLICIES = "never,custom:min_trades=8"
RESULT_KEYS = {
    "asset",
    "interval",
    "policy",
    "params",
    "trades",
    "win_rate",
    "profit_factor",
    "expectancy_r",
    "total_r",
    "max_drawdown_r",
    "retrains",
    "promotions",
    "seconds",
    "win_rate_interval",
    "profit_factor_interval",
    "expectancy_r_interval",
    "regret_r",
    "diff_vs_never",
}


@pytest.fixture
def lab_app(lab_settings, hourly):
    """A facade over a store holding only the lab pair's hourly bars, on a manual clock."""
    settings = dataclasses.replace(lab_settings, assets=("BTC",), intervals=("1h",))
    app = Alpha12.open(settings=settings, clock=ManualClock(hourly["ts"].iloc[-1]))
    app.store.upsert_bars(*PAIR, hourly)
    yield app
    app.close()


def create(app, policies: str = POLICIES, oracle_candidates: int | None = None) -> int:
    return runs.create(
        app.store,
        app.settings,
        [PAIR],
        parse_policies(policies),
        app.clock.now(),
        "test",
        oracle_candidates,
    )


def counting_replays(monkeypatch, fail_at: int | None = None) -> list[str]:
    """Record each replayed part's policy; with `fail_at`, that replay raises (a crash)."""
    replayed, original = [], runner.replay

    def counted(*args):
        replayed.append(args[4].name if args[4] else runner.ORACLE)
        if len(replayed) == fail_at:
            raise RuntimeError("the process died here")
        return original(*args)

    monkeypatch.setattr(runner, "replay", counted)
    return replayed


def test_a_run_is_kept_and_reopens_with_identical_results(lab_app):
    run_id = create(lab_app, "never,seed", oracle_candidates=3)
    kept = runs.execute(lab_app.store, lab_app.settings, run_id, lab_app.clock.now)
    again = lab_app.lab.open(run_id)
    assert kept.record["status"] == again.record["status"] == "done"
    assert len(kept.lab.table) == 2 and kept.lab.table["trades"].min() > 0
    pd.testing.assert_frame_equal(again.lab.table, kept.lab.table)
    assert again.lab.sentences == kept.lab.sentences and again.lab.sentences[PAIR]
    assert again.lab.gaps == kept.lab.gaps
    for one, other in zip(kept.lab.curves(*PAIR), again.lab.curves(*PAIR), strict=True):
        assert one.keys() == other.keys() == {"never", "seed"}
        for name in one:
            if isinstance(one[name], pd.DataFrame):
                pd.testing.assert_frame_equal(one[name], other[name])
            else:
                assert one[name] == other[name]
    assert len(again.lab.curves(*PAIR)[1]["seed"]) > 0  # seed retrained: markers to draw
    best, reopened = kept.lab.oracle(*PAIR), again.lab.oracle(*PAIR)
    assert reopened.total_r == best.total_r and reopened.retrain_times == best.retrain_times
    np.testing.assert_array_equal(reopened.gain, best.gain)
    record = again.record
    assert json.loads(record["pairs"]) == [list(PAIR)]
    assert [p["name"] for p in json.loads(record["policies"])] == ["never", "seed"]
    assert json.loads(record["settings"])["timeframes"]["1h"]["min_trades"] == 5
    assert record["code_version"].startswith("0.")
    assert json.loads(record["data_range"])["pairs"]["BTC 1h"]["bars"] == 600
    for file_format in ("csv", "parquet"):
        data = lab_app.lab.export(run_id, file_format)
        read = pd.read_csv if file_format == "csv" else pd.read_parquet
        import io

        exported = read(io.BytesIO(data))
        assert list(exported["policy"]) == ["never", "seed"]
        assert exported["total_r"].tolist() == kept.lab.table["total_r"].tolist()


def test_a_run_resumes_after_a_crash_with_its_finished_parts(lab_app, monkeypatch):
    run_id = create(lab_app)
    replayed = counting_replays(monkeypatch, fail_at=2)
    with pytest.raises(RuntimeError, match="died"):
        runs.execute(lab_app.store, lab_app.settings, run_id, lab_app.clock.now)
    assert lab_app.store.lab_parts(run_id)["policy"].tolist() == ["never"]
    assert lab_app.lab.open(run_id).record["status"] == "failed"
    finished = runs.load_parts(lab_app.store, run_id)[(*PAIR, "never")]
    replayed.clear()
    resumed = lab_app.lab.resume(run_id)
    assert replayed == ["custom:min_trades=8"]  # only the part the crash cut off
    assert resumed.record["status"] == "done"
    pd.testing.assert_frame_equal(resumed.lab.parts[(*PAIR, "never")].trades, finished.trades)
    monkeypatch.undo()  # an uninterrupted run of the same policies gives the same table
    fresh = runs.execute(lab_app.store, lab_app.settings, create(lab_app), lab_app.clock.now)
    pd.testing.assert_frame_equal(
        resumed.lab.table.drop(columns="seconds"), fresh.lab.table.drop(columns="seconds")
    )


def test_a_stored_part_reads_back_exactly(lab_app):
    """Through the store and back: the oracle part (no trades) and a walked part."""
    bars, run_id = lab_app.store.read_bars(*PAIR), create(lab_app)
    seed = parse_policies("seed")[0]
    for policy, candidates in ((None, 3), (seed, None)):
        original = runner.replay(bars, lab_app.settings, *PAIR, policy, candidates, 0.0)
        lab_app.store.save_lab_part(run_id, runs.part_row(original))
        back = runs.load_parts(lab_app.store, run_id)[original.key]
        pd.testing.assert_frame_equal(back.trades, original.trades)
        pd.testing.assert_frame_equal(back.decisions, original.decisions)
        assert (back.start, back.params, back.message, back.seconds) == (
            original.start,
            original.params,
            original.message,
            original.seconds,
        )
    assert len(back.trades) > 0


def test_cancel_mid_run_keeps_whole_finished_parts_only(lab_app, monkeypatch):
    run_id = lab_app.lab.request([PAIR], POLICIES + ",seed", oracle_candidates=None)
    engine = Engine(lab_app.context)
    replayed = counting_replays(monkeypatch)
    original = runs.part_row

    def cancel_after_the_first(part):
        lab_app.lab.cancel(run_id)  # the user clicks Cancel while the first part is saved
        return original(part)

    monkeypatch.setattr(runs, "part_row", cancel_after_the_first)
    engine._run_job(engine._claim_job())
    assert replayed == ["never"]  # the runner stopped before the next part
    kept = lab_app.lab.open(run_id)
    assert kept.record["status"] == "cancelled" and kept.lab.stopped
    parts = lab_app.store.lab_parts(run_id)
    assert parts["policy"].tolist() == ["never"]
    assert parts[["trades", "decisions", "params"]].notna().all().all()
    assert list(kept.lab.table["policy"]) == ["never"]
    job = lab_app.store.query("SELECT status, message FROM jobs").iloc[0]
    assert job["status"] == "cancelled" and "cancelled" in job["message"]


def test_a_queued_run_is_cancelled_at_once(lab_app):
    run_id = lab_app.lab.request([PAIR], POLICIES, oracle_candidates=None)
    assert lab_app.lab.cancel(run_id) == "cancelled"
    assert lab_app.store.claim_job(lab_app.clock.now()) is None  # nothing left to work
    assert lab_app.lab.open(run_id).record["status"] == "cancelled"
    with pytest.raises(LabError, match="no lab run 99"):
        lab_app.lab.cancel(99)


def test_two_lab_runs_queue_one_behind_the_other(lab_app, monkeypatch):
    release, started = threading.Event(), []

    def held(store, settings, run_id, *args):
        started.append(run_id)
        release.wait(10)
        store.set_lab_status(run_id, "done", "held")
        return runs.KeptRun(run_id, store.lab_run_record(run_id), runner.LabRun(None, {}))

    monkeypatch.setattr(runs, "execute", held)
    first = lab_app.lab.request([PAIR], POLICIES, oracle_candidates=None)
    second = lab_app.lab.request([PAIR], POLICIES, oracle_candidates=None)
    engine = Engine(lab_app.context)
    monkeypatch.setattr(engine, "cycle", lambda *args: None)  # no collection: jobs only
    engine.tick()
    wait = threading.Event()
    while not started and not wait.wait(0.01):
        pass
    for _ in range(3):
        engine.tick()  # the trainer is busy with the first run: the second waits
    statuses = lab_app.lab.runs().set_index("id")["job_status"]
    assert started == [first] and (statuses[first], statuses[second]) == ("running", "queued")
    release.set()
    engine._training.result(timeout=10)
    engine.tick()
    engine._training.result(timeout=10)
    assert started == [first, second]
    engine._trainer.shutdown()


def test_invalid_policies_are_refused_before_any_row_is_written(lab_app):
    with pytest.raises(LabError, match="hours: must be > 0"):
        lab_app.lab.request([PAIR], "never,timer:hours=-3")
    with pytest.raises(LabError, match="no bars stored for ETH 1h"):
        lab_app.lab.request([("ETH", "1h")], "never")
    assert lab_app.lab.runs().empty
    assert lab_app.store.scalar("SELECT count(*) FROM jobs") == 0


def test_applying_a_policy_sets_its_thresholds_through_the_audit(lab_app):
    run_id = create(lab_app, "never,custom:win_rate=0.4:cooldown_hours=6")
    runs.execute(lab_app.store, lab_app.settings, run_id, lab_app.clock.now)
    with pytest.raises(LabError, match="never has no thresholds to apply"):
        lab_app.lab.apply(run_id, "1h", "never")
    with pytest.raises(LabError, match="no policy 'seed'"):
        lab_app.lab.apply(run_id, "1h", "seed")
    assert lab_app.settings_audit().empty
    assert lab_app.lab.apply(run_id, "1h", "custom:win_rate=0.4:cooldown_hours=6") == []
    timeframe = lab_app.settings.timeframe("1h")
    assert (timeframe.win_rate, timeframe.cooldown_hours, timeframe.min_trades) == (0.4, 6.0, 5)
    audit = lab_app.settings_audit()
    assert set(audit["key"]) == {"timeframes.1h.win_rate", "timeframes.1h.cooldown_hours"}


def test_applying_the_guarded_policy_sets_the_guarded_trigger(lab_app):
    run_id = create(lab_app, "guarded")
    runs.execute(lab_app.store, lab_app.settings, run_id, lab_app.clock.now)
    assert lab_app.settings.timeframe("1h").trigger == "threshold"
    assert lab_app.lab.apply(run_id, "1h", "guarded") == []
    assert lab_app.settings.timeframe("1h").trigger == "guarded"
    audit = lab_app.settings_audit()
    assert audit[["key", "new_value"]].values.tolist() == [["timeframes.1h.trigger", '"guarded"']]


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def lab_files(isolated_env, tmp_path, hourly):
    config = tmp_path / "lab.toml"
    config.write_text(
        'assets = ["BTC"]\nintervals = ["1h"]\nn_jobs = 1\n'
        "[timeframes.1h]\nwin_rate = 0.55\nprofit_factor = 1.2\nmin_trades = 5\n"
        "cooldown_hours = 12\nmin_rows = 150\nhorizon_bars = 12\ntp_mult = 1.5\n"
        "sl_mult = 1.5\nentry_threshold = 0.51\n"
    )
    db = tmp_path / "lab.duckdb"
    app = Alpha12.open(db=db, config=config)
    app.store.upsert_bars(*PAIR, hourly)
    app.close()
    return ["--db", db, "--config", config]


def run_main(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_lab_json_has_every_key(lab_files, capsys):
    code, out, err = run_main(
        capsys, *lab_files, "lab", "--asset", "BTC", "--interval", "1h",
        "--policies", "never,seed", "--oracle-candidates", "3", "--json",
    )  # fmt: skip
    assert code == 0, err
    printed = json.loads(out)
    assert set(printed) == {"run_id", "results", "verdicts"} and printed["run_id"] == 1
    assert [r["policy"] for r in printed["results"]] == ["never", "seed"]
    [verdict] = printed["verdicts"]
    assert verdict["asset"] == "BTC" and verdict["interval"] == "1h"
    assert "did best" in verdict["sentence"]
    for result in printed["results"]:
        assert set(result) == RESULT_KEYS
        for name in ("win_rate", "profit_factor", "expectancy_r"):
            low, high = result[f"{name}_interval"]
            assert low is None or low <= result[name] <= high
        assert result["regret_r"] is not None  # the oracle ran (3 candidates)
        assert set(result["diff_vs_never"]) == {"expectancy_r", "low", "high"}
        assert result["params"]["window_rows"] > 0
    never = printed["results"][0]["diff_vs_never"]
    assert never == {"expectancy_r": 0.0, "low": 0.0, "high": 0.0}
    code, out, err = run_main(capsys, *lab_files, "lab", "--resume", "1")
    assert code == 0, err
    assert "lab run 1" in out and "did best" in out and "seed" in out


def test_cli_lab_refuses_bad_policies_before_any_work(lab_files, capsys):
    with pytest.raises(SystemExit) as refused:
        cli.main([*map(str, lab_files), "lab", "--asset", "BTC", "--interval", "1h",
                  "--policies", "never,rolling:bars=2.5"])  # fmt: skip
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "bars" in err and "whole number" in err
    app = Alpha12.open(db=lab_files[1], config=lab_files[3])
    try:
        assert app.lab.runs().empty
    finally:
        app.close()


def test_cli_lab_says_how_many_bars_are_missing(isolated_env, tmp_path, make_bars, capsys):
    db = tmp_path / "short.duckdb"
    app = Alpha12.open(db=db)
    app.store.upsert_bars(*PAIR, make_bars(150, "1h"))
    app.close()
    code, _, err = run_main(
        capsys, "--db", db, "lab", "--asset", "BTC", "--interval", "1h",
        "--policies", "seed", "--oracle-candidates", "0",
    )  # fmt: skip
    assert code == 1
    assert "too little history for a first model: it needs at least 262 bars, there are 150" in err


def test_cli_lab_on_a_store_the_app_holds_points_to_the_lab_page(store, run_cli):
    completed = run_cli(
        "--db", store.path, "lab", "--asset", "BTC", "--interval", "1h", "--policies", "seed",
        timeout=60,
    )  # fmt: skip
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert "in use" in completed.stderr and "the app's Lab page" in completed.stderr
