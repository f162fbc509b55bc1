"""The recalibration lab: policies replayed on scratch stores through the live code path, the
oracle, the statistics, cancel/resume and bad input."""

import dataclasses
import itertools
import tempfile
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from alpha12 import metrics, training
from alpha12.config import DEFAULT_TRIGGER, Settings
from alpha12.lab import LabError, oracle, runner, stats
from alpha12.lab.policies import (
    Custom,
    Guarded,
    Never,
    Policy,
    Seed,
    Timer,
    parse_policies,
    parse_policy,
)
from alpha12.lab.walk import Ledger, PairWalk
from alpha12.monitor import MIN_FAIR_ROWS, Assessment
from alpha12.vocabulary import ATTEMPTS, Action
from tests.conftest import PAIR


@pytest.fixture
def scratch_root(tmp_path, monkeypatch):
    """Scratch folders go here, so a test can see that none is left behind."""
    root = tmp_path / "scratch"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def replay(bars, settings, policy):
    return runner.replay(bars, settings, *PAIR, policy, None, 0.0)


# -- (a) no look-ahead ------------------------------------------------------------------


def test_changing_bars_after_t_changes_nothing_decided_or_closed_before_t(hourly, lab_settings):
    """Bars from t on are scrambled (and most of them dropped, which keeps the test short)."""
    cut, kept = 440, 490
    scrambled = hourly.iloc[:kept].copy()
    factor = np.exp(np.random.default_rng(9).normal(0, 0.02, kept - cut))
    for column in ("open", "high", "low", "close"):
        scrambled.loc[scrambled.index[cut:], column] *= factor
    t = hourly["ts"].iloc[cut]  # bar `cut` opens at t: nothing before t depends on it
    before, after = (replay(b, lab_settings, Seed()) for b in (hourly, scrambled))

    def early(part):
        return (
            part.trades[part.trades["exit_ts"] <= t].reset_index(drop=True),
            part.decisions[part.decisions["ts"] <= t].reset_index(drop=True),
        )

    (trades, decisions), (trades_after, decisions_after) = early(before), early(after)
    assert len(trades) >= 10 and decisions["action"].isin(ATTEMPTS).sum() >= 3, len(trades)
    pd.testing.assert_frame_equal(trades, trades_after)
    pd.testing.assert_frame_equal(decisions, decisions_after)
    assert not before.trades.equals(after.trades)  # the scrambling did reach the walk


# -- (b) the seed policy is the live monitor's rule -------------------------------------


def test_seed_decisions_are_the_live_monitors(hourly, lab_settings, monkeypatch):
    """Every seed decision is the value Assessment.decision returned (one code path), and
    after the walk's last retrain the scratch store's own PerformanceMonitor.assess decides
    exactly what the walk did at each tick."""
    returned = []
    original = Assessment.decision

    def spy(self, forced=False):
        returned.append(original(self, forced))
        return returned[-1]

    monkeypatch.setattr(Assessment, "decision", spy)
    with runner.scratch_monitor(hourly, lab_settings, *PAIR) as monitor:
        walk = PairWalk(monitor, *PAIR, Seed())
        walk.run()
        decisions = pd.DataFrame(walk.decisions)
        last_attempt = decisions.index[decisions["action"].isin(ATTEMPTS)].max()
        after = decisions.loc[last_attempt + 1 :]
        live = [monitor.assess(*PAIR, tick).decision() for tick in after["ts"]]
    assert len(returned) - len(after) == len(decisions)  # one call per decision
    skips = returned[: len(decisions)]
    walked = [None if a in ATTEMPTS else a for a in decisions["action"]]
    assert [s is None for s in skips] == [w is None for w in walked]
    assert [s for s in skips if s] == [w for w in walked if w]
    assert len(after) >= 3 and live == list(after["action"])
    # Every challenger after the first model was compared on held-out rows after the
    # incumbent's window, or went into shadow for want of enough of them.
    trained = decisions.iloc[1:]
    trained = trained[trained["action"].isin(ATTEMPTS) & (trained["action"] != Action.FAILED)]
    rows = trained["evidence"].str.extract(r"^held-out rows \((\d+)\)$")[0].astype(int)
    assert len(trained) >= 2
    assert ((rows >= MIN_FAIR_ROWS) == (trained["action"] != Action.SHADOWED)).all()


def test_guarded_retrains_less_often_than_seed_on_the_same_bars(hourly, lab_settings):
    seed, guarded = (replay(hourly, lab_settings, p) for p in (Seed(), Guarded()))
    attempts = [p.decisions["action"].isin(ATTEMPTS).sum() for p in (seed, guarded)]
    assert attempts[1] < attempts[0]


@pytest.mark.slow
def test_the_benchs_per_bar_loop_reaches_the_walks_trades(hourly, lab_settings):
    """bench_lab times the walk against a naive per-bar loop: both must trade alike, or the
    ratio compares different work."""
    from bench.bench_lab import NaiveWalk

    trades = []
    for kind in (PairWalk, NaiveWalk):
        with runner.scratch_monitor(hourly, lab_settings, *PAIR) as monitor:
            walk = kind(monitor, *PAIR, Seed())
            walk.run()
            trades.append(pd.DataFrame(walk.trades))
    assert len(trades[0]) >= 10
    pd.testing.assert_frame_equal(*trades)


def walked(hourly, settings, policy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(decisions, models) of one walk on a scratch store."""
    with runner.scratch_monitor(hourly, settings, *PAIR) as monitor:
        walk = PairWalk(monitor, *PAIR, policy)
        walk.run()
        return pd.DataFrame(walk.decisions), monitor.store.query("SELECT * FROM models")


@pytest.mark.parametrize(
    ("train_rows", "policy", "widest"),
    [
        (200, Timer(hours=100), 200),
        (300, Timer(hours=100), 300),  # the lab's default: the timeframe's setting
        (300, Timer(hours=100, window_rows=250), 250),  # a policy's own window wins
    ],
)
def test_the_training_window_is_the_timeframes_train_rows_unless_a_policy_sets_one(
    hourly, lab_settings, train_rows, policy, widest
):
    settings = lab_settings.with_timeframe("1h", train_rows=train_rows)
    _, trained = walked(hourly, settings, policy)
    assert len(trained) >= 3 and trained["rows"].max() == widest


def test_a_silent_model_is_retrained_after_its_silence_limit(hourly, lab_settings):
    """A model that never crosses the entry threshold opens no setups; the seed rule judges it
    again after the time in which it could have made min_trades trades (5 x 12 bars here)."""
    silent = lab_settings.with_timeframe("1h", entry_threshold=0.99)
    decisions, _ = walked(hourly, silent, Seed())
    retrained = decisions[decisions["trigger"].str.startswith("no setups in 2d 12h")]
    assert len(retrained) >= 2 and retrained["action"].isin(ATTEMPTS).all()
    spacing = retrained["ts"].diff().dropna()
    assert (spacing == pd.Timedelta(hours=60)).all()  # each attempt starts the count again
    attempts = decisions[decisions["action"].isin(ATTEMPTS)]
    assert len(attempts) == len(retrained) + 1  # the first model, then only these


# -- (c) policy validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("sometimes", ["sometimes", "unknown"]),
        ("timer:days=3", ["days", "unknown key"]),
        ("timer:hours=-1", ["hours", "must be > 0"]),
        ("timer:hours=soon", ["hours", "expected a number"]),
        ("rolling:bars=2.5", ["bars", "whole number"]),
        ("custom:win_rate=1.5", ["win_rate", "within [0, 1]"]),
        ("custom:cooldown_hours=-2", ["cooldown_hours", ">= 0"]),
        ("seed:window_rows=0", ["window_rows", ">= 1"]),
        ("seed,never,seed", ["seed", "more than once"]),
        ("", ["none given"]),
    ],
)
def test_bad_policies_are_refused_with_key_and_reason(text, words):
    with pytest.raises(LabError) as refused:
        parse_policies(text)
    assert all(word in str(refused.value) for word in words), str(refused.value)


def test_policies_parse_and_name_themselves_back():
    text = (
        "never,timer:hours=168,rolling:bars=500,seed,guarded,custom:win_rate=0.5:cooldown_hours=24"
    )
    policies = parse_policies(text)
    assert [p.kind for p in policies] == ["never", "timer", "rolling", "seed", "guarded", "custom"]
    assert [parse_policy(p.name) for p in policies] == policies
    assert policies[1] == Timer(hours=168.0) and policies[1].always_promote
    assert policies[5].params()["win_rate"] == 0.5 and not policies[5].always_promote
    with pytest.raises(LabError, match="hours: must be > 0"):
        Timer(hours=0)
    base = Settings().timeframe("4h")
    adjusted = policies[5].adjust(base)
    assert (adjusted.win_rate, adjusted.cooldown_hours) == (0.5, 24.0)
    assert dataclasses.replace(adjusted, win_rate=base.win_rate, cooldown_hours=24) == (
        dataclasses.replace(base, cooldown_hours=24)
    )


def test_the_seed_policy_judges_by_the_configured_trigger_the_others_by_their_own():
    base = Settings().timeframe("1h")
    assert (base.trigger, Seed().adjust(base)) == (DEFAULT_TRIGGER, base)
    configured = dataclasses.replace(base, trigger="threshold")
    assert Seed().adjust(configured).trigger == "threshold"
    for text in ("guarded", "page_hinkley"):
        assert parse_policy(text).adjust(base) == dataclasses.replace(base, trigger=text)


# -- (d) the oracle -------------------------------------------------------------------------


def brute_force(gain: np.ndarray, cost: float) -> float:
    stretches, best = gain.shape[1], -np.inf
    for retrains in itertools.product([False, True], repeat=stretches - 1):
        model, total = 0, gain[0, 0]
        for s, retrain in enumerate(retrains, start=1):
            model = s if retrain else model
            total += gain[model, s] - cost * retrain
        best = max(best, total)
    return best


def test_oracle_dp_equals_brute_force_on_random_matrices():
    rng = np.random.default_rng(0)
    for _ in range(200):
        stretches = int(rng.integers(1, 7))
        gain = rng.normal(0, 3, (stretches, stretches))
        gain[1:][rng.random((stretches - 1, stretches)) < 0.15] = -np.inf  # untrainable models
        cost = float(rng.choice([0.0, 0.5, 5.0]))
        value, serving = oracle.best_schedule(gain, cost)
        assert value == pytest.approx(brute_force(gain, cost))
        retrains = sum(a != b for a, b in itertools.pairwise(serving))
        assert sum(gain[j, s] for s, j in enumerate(serving)) - cost * retrains == pytest.approx(
            value
        )
        assert serving[0] == 0 and all(j <= s for s, j in enumerate(serving))


def test_oracle_earns_at_least_the_first_model_on_its_grid(hourly, lab_settings):
    part = runner.replay(hourly, lab_settings, *PAIR, None, 5, 0.0)
    best = part.oracle
    assert len(best.candidates) == 5 and len(best.serving) == 5
    assert best.objective >= best.gain[0].sum()  # never retraining is one of its schedules
    assert best.total_r == pytest.approx(sum(best.gain[j, s] for s, j in enumerate(best.serving)))


# -- (e) scratch space --------------------------------------------------------------------


def test_scratch_is_removed_and_the_live_store_untouched(
    store, hourly, lab_settings, scratch_root, monkeypatch
):
    store.upsert_bars(*PAIR, hourly)
    summary = store.bar_summary()
    run = runner.run_lab(store, lab_settings, [PAIR], [Never()], oracle_candidates=None)
    assert run.table["trades"].iloc[0] > 0
    assert list(scratch_root.iterdir()) == []
    pd.testing.assert_frame_equal(store.bar_summary(), summary)
    assert training.labelled_history(store, lab_settings, *PAIR).empty  # no snapshots written
    assert store.open_setups([PAIR]).empty
    assert not lab_settings.models_dir.exists()

    def broken(self):
        raise RuntimeError("walk failed")

    monkeypatch.setattr(PairWalk, "run", broken)
    with pytest.raises(RuntimeError, match="walk failed"):
        runner.run_lab(store, lab_settings, [PAIR], [Never()], oracle_candidates=None)
    assert list(scratch_root.iterdir()) == []


# -- (f) cancel and resume --------------------------------------------------------------------


def test_a_cancelled_run_keeps_finished_parts_and_resume_runs_only_the_rest(
    store, hourly, lab_settings, monkeypatch
):
    store.upsert_bars(*PAIR, hourly)
    finished = []
    first = runner.run_lab(
        store,
        lab_settings,
        [PAIR],
        [Never(), Custom(min_trades=8)],
        progress=lambda _f, message: finished.append(message),
        should_stop=lambda: len(finished) >= 1,
        oracle_candidates=None,
    )
    assert first.stopped and list(first.parts) == [(*PAIR, "never")]
    replayed = []
    original = runner.replay

    def counted(*args):
        replayed.append(args[4].name)
        return original(*args)

    monkeypatch.setattr(runner, "replay", counted)
    resumed = runner.run_lab(
        store,
        lab_settings,
        [PAIR],
        [Never(), Custom(min_trades=8)],
        done=first.parts,
        oracle_candidates=None,
    )
    assert replayed == ["custom:min_trades=8"] and not resumed.stopped
    assert resumed.parts[(*PAIR, "never")] is first.parts[(*PAIR, "never")]
    assert list(resumed.table["policy"]) == ["never", "custom:min_trades=8"]


# -- (g) bad input ----------------------------------------------------------------------------


def test_too_little_history_is_a_message_not_a_crash(store, make_bars, lab_settings):
    store.upsert_bars(*PAIR, make_bars(150, "1h"))
    run = runner.run_lab(store, lab_settings, [PAIR], [Seed()], oracle_candidates=3)
    need = 99 + 150 + 12 + 1  # warm-up, min_rows, horizon, one bar to trade
    assert run.problems[PAIR] == (
        f"BTC 1h: too little history for a first model: it needs at least {need} bars, "
        "there are 150"
    )
    assert run.table.empty


def test_gaps_are_reported_and_walked_across(store, hourly, lab_settings):
    holed = hourly.drop(index=range(350, 356)).reset_index(drop=True)
    store.upsert_bars(*PAIR, holed)
    run = runner.run_lab(store, lab_settings, [PAIR], [Never()], oracle_candidates=None)
    assert run.gaps[PAIR] == {"count": 1, "longest": pd.Timedelta(hours=6)}
    trades = run.parts[(*PAIR, "never")].trades
    missing = set(hourly["ts"].iloc[350:356])
    assert (trades["ts"] > hourly["ts"].iloc[356]).any() and not set(trades["ts"]) & missing


# -- (h) statistics -----------------------------------------------------------------------------


def random_trades(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2025-01-01", periods=n, freq="3h", tz="UTC")
    r = rng.choice([-1.0, 1.0], n) + rng.normal(0, 0.2, n)
    return pd.DataFrame(
        {"ts": ts, "exit_ts": ts + pd.Timedelta(hours=2), "r_multiple": r, "pnl_pct": r * 0.8}
    )


def test_intervals_contain_their_point_estimates():
    for seed in range(5):
        trades = random_trades(60, seed)
        point, bounds = stats.run_metrics(trades), stats.trade_intervals(trades, seed=seed)
        for name in ("expectancy_r", "win_rate", "profit_factor"):
            assert bounds[f"{name}_low"] <= point[name] <= bounds[f"{name}_high"], name
            assert bounds[f"{name}_low"] < bounds[f"{name}_high"]


def test_paired_difference_of_a_run_with_itself_is_exactly_zero():
    trades = random_trades(80, 1)
    bars = pd.Series(pd.date_range("2025-01-01", periods=250, freq="1h", tz="UTC"))
    same = stats.per_bar(trades, bars)
    assert stats.paired_block_diff(same, same, block=36) == (0.0, 0.0, 0.0)
    better = stats.per_bar(trades.assign(r_multiple=trades["r_multiple"] + 0.5), bars)
    diff, low, high = stats.paired_block_diff(better, same, block=36)
    assert diff == pytest.approx(0.5) and low == pytest.approx(0.5) and high == pytest.approx(0.5)
    worse = stats.per_bar(random_trades(80, 2), bars)
    diff, low, high = stats.paired_block_diff(worse, same, block=36)
    assert low < diff < high


def test_without_an_edge_the_walk_trades_in_shadow_judges_it_and_counts_nothing(
    hourly, lab_settings, monkeypatch
):
    """trade_without_edge = false and every model without an edge: the walk's setups are all
    shadow; its monitor still judges the models by them (and retrains), the lab's results
    count no trade."""
    monkeypatch.setattr(metrics, "edge_verdict", lambda _metrics: (True, "no edge (test)"))
    strict = lab_settings.with_timeframe("1h", trade_without_edge=False)
    part = replay(hourly, strict, Seed())
    assert part.trades.empty
    judged = part.decisions["action"].iloc[1:]
    assert (judged != Action.SKIPPED_TRADES).any() and judged.isin(ATTEMPTS).any()


@dataclass(frozen=True, kw_only=True)
class RetrainOnceAt(Policy):
    """A test policy: one retrain, at the monitor tick `at`, never another."""

    at: pd.Timestamp | None = None
    kind: ClassVar[str] = "once"

    def due(self, tick) -> bool:
        return tick.time == self.at

    def decision(self, assessment, tick) -> str | None:
        return assessment.decision(forced=True)


def test_the_walk_puts_a_challenger_in_shadow_and_decides_it_later(hourly, lab_settings):
    """A retrain 14 hours after the first model leaves too few held-out rows after its
    window: the challenger waits in shadow, and the walk's monitor decides it once the rows
    resolved after both windows are enough, as the live monitor would."""
    with runner.scratch_monitor(hourly, lab_settings, *PAIR) as monitor:
        walk = PairWalk(monitor, *PAIR)
        walk.policy = RetrainOnceAt(at=walk.start_time + pd.Timedelta(hours=14))
        walk.run()
        statuses = monitor.store.query("SELECT status FROM models ORDER BY version")["status"]
    decisions = pd.DataFrame(walk.decisions)
    assert decisions["action"].tolist()[1:] in (
        [Action.SHADOWED, Action.SHADOW_PROMOTED],
        [Action.SHADOWED, Action.SHADOW_REJECTED],
    )
    shadowed, decided = decisions.iloc[1], decisions.iloc[2]
    assert shadowed["evidence"].startswith("held-out rows (")
    assert decided["evidence"] == f"shadow outcomes ({MIN_FAIR_ROWS})"  # decided at once
    assert decided["ts"] > shadowed["ts"] and decided["new_version"] == 2
    promoted = decided["action"] == Action.SHADOW_PROMOTED
    assert statuses.tolist() == (["retired", "active"] if promoted else ["active", "rejected"])


def test_the_ledger_answers_what_a_pass_over_every_trade_did():
    """closed_by and newest, against the list comprehensions they replaced, on trades of two
    models whose exits arrive out of order."""
    rng = np.random.default_rng(5)
    start = pd.Timestamp("2025-01-01", tz="UTC")
    trades = [
        {
            "exit_ts": start + pd.Timedelta(hours=int(h)),
            "model_version": int(v),
            "model_scope": "timeframe",
            "pnl_pct": float(p),
            "r_multiple": float(p) / 2,
        }
        for h, v, p in zip(
            rng.integers(0, 200, 120), rng.integers(1, 3, 120), rng.normal(0, 1, 120), strict=True
        )
    ]
    ledger = Ledger()
    for trade in trades:
        ledger.add(trade)
    by_exit = sorted(trades, key=lambda t: t["exit_ts"])
    for tick in start + pd.to_timedelta([0, 37, 99, 150, 250], unit="h"):
        assert ledger.closed_by(tick) == sum(t["exit_ts"] <= tick for t in trades)
        for version in (1, 2, 3):
            mine = [t for t in by_exit if t["exit_ts"] <= tick and t["model_version"] == version]
            pnl, r = ledger.newest(version, "timeframe", tick, 10)
            np.testing.assert_array_equal(pnl, [t["pnl_pct"] for t in mine[-10:]])
            np.testing.assert_array_equal(r, [t["r_multiple"] for t in mine[-10:]])


def test_parts_fanned_over_two_cores_give_the_table_one_core_gives_in_the_order_asked(
    store, hourly, lab_settings
):
    """Parts finish in any order on two workers (the last one fitting over both cores); the
    table is the one-by-one run's, row for row, in the order the policies were asked for."""
    store.upsert_bars(*PAIR, hourly)
    policies = [Timer(hours=100), Never(), Custom(min_trades=8)]
    tables = [
        runner.run_lab(
            store,
            dataclasses.replace(lab_settings, n_jobs=n_jobs),
            [PAIR],
            policies,
            oracle_candidates=None,
        ).table.drop(columns="seconds")
        for n_jobs in (1, 2)
    ]
    assert list(tables[1]["policy"]) == [p.name for p in policies]
    pd.testing.assert_frame_equal(*tables)
