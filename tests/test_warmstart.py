"""Warm start: a new store gets out-of-sample trades on every timeframe, and no model ever
predicts a bar inside its own training window."""

import dataclasses

import pandas as pd
import pytest

from alpha12 import snapshots, warmstart
from alpha12.clock import ManualClock
from alpha12.config import Settings
from alpha12.lab import runner
from alpha12.lab.policies import Seed
from alpha12.registry import FALLBACK_INTERVAL
from alpha12.services import Alpha12
from alpha12.sources.replay import SyntheticReplay
from alpha12.timeframes import interval_delta
from alpha12.vocabulary import Action
from tests.conftest import PAIR

HISTORY_DAYS = 120
# Shorter walks than the product's, so the test stays fast; the rules are the same.
SHORT_WALKS = {"5m": 600, "15m": 300, "1h": 240, "4h": 120, "1d": 40}
STRICT_WIN_RATE = 0.7
FALLBACKS_TRAINED: list[dict] = []  # the warm start's calls to train the fallbacks, as seen


@pytest.fixture(scope="module")
def warmed(tmp_path_factory):
    """One asset, five timeframes, 120 days of history, warm-started: (app, summary)."""
    folder = tmp_path_factory.mktemp("warm")
    settings = dataclasses.replace(
        Settings(),
        assets=("BTC",),
        history_days=HISTORY_DAYS,
        db_path=folder / "storage.duckdb",
        models_dir=folder / "models",
    )
    for interval in settings.intervals:  # a win-rate bar few models clear: the monitor must act
        settings = settings.with_timeframe(interval, win_rate=STRICT_WIN_RATE)
    source = SyntheticReplay(settings.seed, HISTORY_DAYS)
    app = Alpha12.open(settings=settings, clock=ManualClock(source.default_start), source=source)
    app.collect_once()
    train_fallbacks = warmstart._train_fallbacks

    def seen(*args) -> None:
        traded = app.store.query("SELECT DISTINCT interval FROM setups")["interval"]
        FALLBACKS_TRAINED.append({"traded": set(traded)})
        train_fallbacks(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(warmstart, "WARM_START_BARS", SHORT_WALKS)
        patch.setattr(warmstart, "_train_fallbacks", seen)
        summary = warmstart.warm_start(app.monitor, app.pairs())
    yield app, summary
    app.close()


def serving_models(app) -> pd.DataFrame:
    """Each setup with the as-of time of the model that made it."""
    return app.store.query(
        """SELECT s.*, m.as_of, m.window_end FROM setups s JOIN models m
           ON m.asset = s.asset AND m.version = s.model_version AND m.scope = s.model_scope
           AND m.interval = CASE WHEN s.model_scope = 'fallback' THEN ? ELSE s.interval END""",
        [FALLBACK_INTERVAL],
    )


def test_every_timeframe_with_a_model_gets_warm_start_trades(warmed):
    app, summary = warmed
    assert list(summary) == [f"BTC_{i}" for i in app.settings.intervals]
    setups = app.store.query("SELECT * FROM setups")
    assert set(setups["origin"]) == {"warm_start"}
    for interval in app.settings.intervals:
        assert app.registry.load_timeframe_model("BTC", interval) is not None
        mine = setups[setups["interval"] == interval]
        # 1d walks 22 bars (its history's first model needs the rest): with a 10-bar horizon
        # that is room for two trades that run their full course, of which the model takes one
        assert (mine["status"] == "closed").sum() >= (1 if interval == "1d" else 3), interval
        assert (mine["status"] == "open").sum() <= 1  # one setup at a time per pair
    assert warmstart.pending_pairs(app.store, app.pairs()) == []


def test_no_model_predicts_inside_its_own_training_window(warmed):
    app, _ = warmed
    setups = serving_models(app)
    assert len(setups) == app.store.scalar("SELECT count(*) FROM setups")
    closes = setups["ts"] + setups["interval"].map(interval_delta)
    assert (setups["as_of"] <= closes).all()
    assert (setups["window_end"] < setups["ts"]).all()  # its last training row came earlier
    # The same holds for every probability written on the snapshots.
    inside = app.store.scalar(
        """SELECT count(*) FROM snapshots s JOIN models m ON m.asset = s.asset
           AND m.version = s.model_version AND m.scope = s.model_scope
           AND m.interval = CASE WHEN s.model_scope = 'fallback' THEN ? ELSE s.interval END
           WHERE s.probability IS NOT NULL
             AND m.as_of > s.ts + CASE s.interval WHEN '5m' THEN INTERVAL 5 MINUTE
                 WHEN '15m' THEN INTERVAL 15 MINUTE WHEN '1h' THEN INTERVAL 1 HOUR
                 WHEN '4h' THEN INTERVAL 4 HOUR ELSE INTERVAL 1 DAY END""",
        [FALLBACK_INTERVAL],
    )
    marked = app.store.scalar("SELECT count(*) FROM snapshots WHERE probability IS NOT NULL")
    assert marked > sum(SHORT_WALKS.values()) // 2 and inside == 0


def test_every_model_learnt_only_labels_known_when_it_was_trained(warmed):
    """A label resolves at the earliest one bar after its own bar closes, so a model trained
    as of T has no training row later than T - 2 bars."""
    app, _ = warmed
    trained = app.store.query("SELECT * FROM models WHERE interval != ?", [FALLBACK_INTERVAL])
    assert len(trained) >= len(app.settings.intervals) - 1  # 1d may have only the fallback
    latest = trained["window_end"] + 2 * trained["interval"].map(interval_delta)
    assert (latest <= trained["as_of"]).all()


def test_models_are_replaced_during_the_walk_and_every_decision_is_recorded(warmed):
    app, _ = warmed
    used = serving_models(app).groupby("interval")["model_version"].nunique()
    assert used.max() >= 2  # the monitor's rules ran during the walk and changed a model
    decisions = app.store.query("SELECT * FROM recalibrations")
    assert set(decisions["trigger"]) == {"warm_start"}
    assert set(decisions["interval"]) == set(app.settings.intervals)
    assert set(app.store.query("SELECT trigger FROM models")["trigger"]) == {"warm_start"}


def test_warm_start_trades_resolve_as_the_targets_say(warmed):
    app, _ = warmed
    setups = app.store.query("SELECT * FROM setups WHERE status = 'closed'")
    for interval, trades in setups.groupby("interval"):
        bars = app.store.read_bars("BTC", interval)
        outcome = {
            d: snapshots.outcomes(
                bars,
                interval,
                app.settings.timeframe(interval),
                app.settings.round_trip_cost_bps,
                d,
            ).set_index(bars["ts"])
            for d in (1, -1)
        }
        for trade in trades.itertuples():
            expected = outcome[trade.direction].loc[trade.ts]
            assert trade.exit_ts == expected["target_ts"]
            assert trade.pnl_pct == pytest.approx(expected["pnl_pct"])


def slow_pairs_app(folder, days: int) -> Alpha12:
    """BTC at 4h and 1d over `days` of collected history, not yet warm-started."""
    settings = dataclasses.replace(
        Settings(),
        assets=("BTC",),
        intervals=("4h", "1d"),
        history_days=days,
        db_path=folder / "storage.duckdb",
        models_dir=folder / "models",
    )
    source = SyntheticReplay(settings.seed, days)
    app = Alpha12.open(settings=settings, clock=ManualClock(source.default_start), source=source)
    app.collect_once()
    return app


def test_a_stopped_warm_start_leaves_its_pairs_for_the_next_start(tmp_path):
    app = slow_pairs_app(tmp_path, 60)
    summary = warmstart.warm_start(app.monitor, app.pairs(), should_stop=lambda: True)
    assert set(summary.values()) == {"not walked: stopped"}
    assert app.store.scalar("SELECT count(*) FROM setups") == 0
    assert warmstart.pending_pairs(app.store, app.pairs()) == app.pairs()
    app.close()


def test_the_warm_start_walk_is_the_lab_seed_walk(hourly, lab_settings, monkeypatch):
    """One code path: walking the same bars, the warm start and the lab's `seed` policy open
    the same trades and take the same decisions (only their origin tag differs)."""
    monkeypatch.setitem(warmstart.WARM_START_BARS, PAIR[1], len(hourly))  # the whole history
    settings = dataclasses.replace(lab_settings, assets=(PAIR[0],), intervals=(PAIR[1],))
    lab = runner.replay(hourly, settings, *PAIR, Seed(), None, 0.0)
    with runner.scratch_monitor(hourly, settings, *PAIR) as monitor:
        warmstart.warm_start(monitor, [PAIR])
        setups = monitor.store.query("SELECT * FROM setups WHERE status = 'closed' ORDER BY ts")
        decided = monitor.store.query(
            "SELECT ts, action, new_version FROM recalibrations ORDER BY id"
        )
    assert len(lab.trades) >= 10 and (lab.decisions["action"] == Action.RECALIBRATED).sum() >= 2
    pd.testing.assert_frame_equal(
        setups[runner.TRADE_COLUMNS].reset_index(drop=True),
        lab.trades[runner.TRADE_COLUMNS].reset_index(drop=True),
        check_dtype=False,
    )
    pd.testing.assert_frame_equal(
        decided.reset_index(drop=True),
        lab.decisions[["ts", "action", "new_version"]].reset_index(drop=True),
        check_dtype=False,
    )


def test_a_warm_start_stopped_mid_walk_walks_again_without_duplicates(tmp_path):
    app = slow_pairs_app(tmp_path, 120)
    asked = []

    def stop_once_a_setup_is_saved() -> bool:  # a stop request in the middle of the walks
        asked.append(1)
        return app.store.scalar("SELECT count(*) FROM setups") > 0

    first = warmstart.warm_start(app.monitor, app.pairs(), should_stop=stop_once_a_setup_is_saved)
    assert "not walked: stopped" in first.values() and len(asked) > 1
    assert app.store.scalar("SELECT count(*) FROM setups") > 0  # a walk cut short saved some
    second = warmstart.warm_start(app.monitor, warmstart.pending_pairs(app.store, app.pairs()))
    assert "not walked: stopped" not in second.values()
    assert warmstart.pending_pairs(app.store, app.pairs()) == []
    setups = app.store.query("SELECT asset, interval, ts FROM setups")
    assert not setups.duplicated().any()
    app.close()


def test_the_fallbacks_train_once_when_a_walk_first_needs_one(warmed):
    """120 days leave 1d too few rows for a model of its own: its walk, the last of the
    overview's order, trains the fallbacks as it begins (the pairs before it have their first
    trades by then), and its trades are the fallback's."""
    app, _ = warmed
    assert len(FALLBACKS_TRAINED) == 1
    assert "1d" not in FALLBACKS_TRAINED[0]["traded"]
    assert {"5m", "15m", "1h"} <= FALLBACKS_TRAINED[0]["traded"]
    daily = app.store.query("SELECT model_scope FROM setups WHERE interval = '1d'")
    assert not daily.empty and (daily["model_scope"] == "fallback").any()
