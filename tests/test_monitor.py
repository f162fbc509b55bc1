"""The performance monitor under a manual clock: per-timeframe thresholds, cooldowns in clock
time, insufficient data as an answer, forced retrains, and challengers that must beat the
incumbent on the same window. Every decision is a row in `recalibrations`."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from alpha12 import cycle, metrics, models, training
from alpha12 import monitor as monitor_module
from alpha12.bars import resample
from alpha12.clock import ManualClock
from alpha12.config import SEED_TIMEFRAMES, Settings, SettingsError
from alpha12.features import FEATURE_NAMES
from alpha12.monitor import MIN_CALIBRATION_PREDICTIONS, Assessment
from alpha12.services import Alpha12
from alpha12.sources.replay import SYNTHETIC_ORIGIN, SyntheticReplay
from alpha12.sources.synthetic import SyntheticMarket
from alpha12.store import Store
from alpha12.vocabulary import (
    ATTEMPTS,
    FALLBACK_INTERVAL,
    FIRST_MODEL,
    Action,
    ModelStatus,
    PairStatus,
)

DAYS = 40
END = SYNTHETIC_ORIGIN + pd.Timedelta(days=DAYS)
# 60 trades, win rate 50%, profit factor 1.25: healthy on 5m and 15m, degraded from 1h up.
BALANCED = [1.0] * 30 + [-0.8] * 30
LOSING = [1.0] * 9 + [-1.0] * 21  # win rate 30%, profit factor 0.43: degraded everywhere
CHALLENGER_ACTIONS = (Action.RECALIBRATED, Action.REJECTED_CHALLENGER, Action.SHADOWED)


def synthetic(interval: str, days: int = DAYS) -> pd.DataFrame:
    base = SyntheticMarket(seed=12, origin=SYNTHETIC_ORIGIN).base_bars("BTC", days)
    return resample(base, interval)


EARLY = END - pd.Timedelta(days=20)  # a model trained then has served 20 days by END


def frame_at(folder, as_of: pd.Timestamp) -> pd.DataFrame:
    """The 1h training frame of the synthetic market as of `as_of`."""
    store = Store(folder / "s.duckdb")
    store.upsert_bars("BTC", "1h", synthetic("1h"))
    cycle.backfill_pair(store, Settings(), "BTC", "1h")
    frame = training.training_frame(store, Settings(), "BTC", "1h", as_of)
    store.close()
    return frame


@pytest.fixture(scope="module")
def frame_1h(tmp_path_factory) -> pd.DataFrame:
    """The 1h training frame of the synthetic market at END."""
    return frame_at(tmp_path_factory.mktemp("frame"), END)


@pytest.fixture(scope="module")
def incumbent(frame_1h) -> models.TrainedModel:
    return models.fit(frame_1h, SEED_TIMEFRAMES["1h"], seed=0)


@pytest.fixture(scope="module")
def early(tmp_path_factory) -> models.TrainedModel:
    """A 1h model trained as of EARLY: 20 days of bars after its window to predict live."""
    frame = frame_at(tmp_path_factory.mktemp("early"), EARLY)
    return models.fit(frame, SEED_TIMEFRAMES["1h"], seed=0)


@pytest.fixture
def app(settings, tmp_path):
    """Alpha12 over a fresh store with BTC 1h bars backfilled and a manual clock at END."""
    opened = Alpha12.open(
        settings=point_thresholds(dataclasses.replace(settings, assets=("BTC",))),
        clock=ManualClock(END),
        source=SyntheticReplay(12, DAYS),
    )
    opened.store.upsert_bars("BTC", "1h", synthetic("1h"))
    cycle.backfill_pair(opened.store, opened.settings, "BTC", "1h")
    yield opened
    opened.close()


def point_thresholds(settings: Settings) -> Settings:
    """The `threshold` trigger on every timeframe: most tests here check the point rule (the
    default, `guarded`, has tests of its own)."""
    for interval in settings.intervals:
        settings = settings.with_timeframe(interval, trigger="threshold")
    return settings


def add_trades(
    app, interval: str, pnl: list[float], version: int = 1, scope="timeframe", asset="BTC"
) -> None:
    """Closed trades of model `version`, resolved before now."""
    n = len(pnl)
    exits = app.clock.now() - pd.Timedelta(hours=1) * np.arange(n, 0, -1)
    app.store.insert_setups(
        pd.DataFrame(
            {
                "asset": asset,
                "interval": interval,
                "ts": exits - pd.Timedelta(hours=3),
                "direction": 1,
                "entry": 100.0,
                "stop": 99.0,
                "take_profit": 101.0,
                "atr": 1.0,
                "expires_ts": exits + pd.Timedelta(hours=9),
                "probability": 0.6,
                "model_version": version,
                "model_scope": scope,
                "status": "closed",
                "exit_ts": exits,
                "exit_price": 100.0 + np.array(pnl),
                "exit_reason": "horizon",
                "pnl_pct": pnl,
                "r_multiple": pnl,
            }
        )
    )


def mark_predictions(app, ts: pd.Series, probability, version: int = 1) -> None:
    """What the live cycle writes on each analysed bar: the probability and the model that
    gave it (BTC 1h snapshots)."""
    marks = pd.DataFrame({"ts": ts.to_numpy(), "probability": probability})
    marks = marks.assign(model_version=version, model_scope="timeframe", setup_generated=False)
    app.store.mark_walked("BTC", "1h", marks)


def served_since(app, model: models.TrainedModel) -> pd.DataFrame:
    """The labelled 1h snapshots after the model's training window, target known by now."""
    rows = app.store.labelled_snapshots("BTC", "1h")
    return rows[(rows["ts"] > model.window_end) & (rows["target_ts"] <= app.clock.now())]


def keep_degraded(app, interval: str = "1h") -> None:
    """Give a newly promoted model a losing record too, so the pair stays degraded."""
    served = app.registry.load_timeframe_model("BTC", interval)
    if app.monitor.assess("BTC", interval).summary["trades"] == 0:
        add_trades(app, interval, LOSING, version=served.version)


def recalibrations(app, interval: str | None = None) -> pd.DataFrame:
    rows = app.store.query("SELECT * FROM recalibrations ORDER BY id")
    return rows if interval is None else rows[rows["interval"] == interval]


def assert_recorded(app, report: dict, trigger: str | list[str]) -> None:
    """The report's decisions are the newest rows of `recalibrations`, one per pair, with
    `trigger` (one for all, or one per pair)."""
    rows = recalibrations(app).tail(len(report))
    assert [f"{r.asset}_{r.interval}" for r in rows.itertuples()] == list(report)
    assert rows["action"].tolist() == [row["action"] for row in report.values()]
    triggers = [trigger] * len(report) if isinstance(trigger, str) else trigger
    assert rows["trigger"].tolist() == triggers


# --- judging ------------------------------------------------------------------------------


def test_the_same_trades_are_judged_by_each_timeframes_seed_thresholds(app, incumbent):
    for interval in app.settings.intervals:
        app.registry.register("BTC", interval, incumbent, END, "test")
        add_trades(app, interval, BALANCED)
    judged = {i: app.monitor.assess("BTC", i) for i in app.settings.intervals}
    assert {i: a.status for i, a in judged.items()} == {
        "5m": PairStatus.HEALTHY,
        "15m": PairStatus.HEALTHY,
        "1h": PairStatus.DEGRADED,
        "4h": PairStatus.DEGRADED,
        "1d": PairStatus.DEGRADED,
    }
    assert judged["1h"].reasons == ["win rate 50.0% below 52%"]
    assert judged["1d"].reasons == [
        "win rate 50.0% below 58%",
        "profit factor 1.25 below 1.40",
    ]
    for interval, assessment in judged.items():
        seed = dataclasses.replace(SEED_TIMEFRAMES[interval], trigger="threshold")
        assert assessment.thresholds == seed
        assert assessment.summary["trades"] == 60
        assert assessment.as_dict()["win_rate"] == 0.5


@pytest.mark.parametrize(
    ("interval", "status"),
    [
        ("5m", PairStatus.INSUFFICIENT_TRADES),  # needs 50 trades
        ("15m", PairStatus.INSUFFICIENT_TRADES),  # 40
        ("1h", PairStatus.INSUFFICIENT_TRADES),  # 30
        ("4h", PairStatus.DEGRADED),  # 20: judged
        ("1d", PairStatus.DEGRADED),  # 15: judged
    ],
)
def test_twenty_trades_are_enough_to_judge_only_the_slower_timeframes(interval, status):
    pnl = np.array([1.0] * 10 + [-1.0] * 10)
    assessment = Assessment(
        "BTC",
        interval,
        metrics.summarize(pnl, pnl),
        dataclasses.replace(SEED_TIMEFRAMES[interval], trigger="threshold"),
        cooldown_remaining=pd.Timedelta(0),
        labelled_rows=10_000,
        model_version=1,
        model_scope="timeframe",
    )
    assert assessment.status == status
    assert assessment.decision() == (
        Action.SKIPPED_TRADES if status == PairStatus.INSUFFICIENT_TRADES else None
    )


def test_only_the_serving_models_trades_count(app, incumbent):
    app.registry.register("BTC", "1h", incumbent, END, "test")
    add_trades(app, "1h", LOSING, version=7)  # an older model's record
    assessment = app.monitor.assess("BTC", "1h")
    assert (assessment.summary["trades"], assessment.status) == (0, PairStatus.INSUFFICIENT_TRADES)
    assert app.monitor.assess("BTC", "4h").status == PairStatus.NO_MODEL


def test_guarded_keeps_a_pair_healthy_while_its_interval_straddles_the_threshold(app, incumbent):
    app.registry.register("BTC", "1h", incumbent, END, "test")
    add_trades(app, "1h", BALANCED)  # win rate 50%, below 1h's 52%; Wilson [37.7%, 62.3%]
    threshold = app.monitor.assess("BTC", "1h")
    assert threshold.summary["win_rate_low"] < 0.52 < threshold.summary["win_rate_high"]
    assert (threshold.status, threshold.reasons) == (
        PairStatus.DEGRADED,
        ["win rate 50.0% below 52%"],
    )
    assert app.update_timeframe_settings("1h", {"trigger": "guarded"}) == []
    guarded = app.monitor.assess("BTC", "1h")
    assert (guarded.status, guarded.reasons) == (PairStatus.HEALTHY, [])
    assert guarded.as_dict()["trigger"] == "guarded"
    assert app.monitor_once()["BTC_1h"]["action"] == Action.HEALTHY


def test_guarded_degrades_once_the_whole_interval_is_below(app, incumbent):
    app.registry.register("BTC", "1h", incumbent, END, "test")
    add_trades(app, "1h", LOSING)  # 9 of 30: Wilson upper bound 47.8%
    app.update_timeframe_settings("1h", {"trigger": "guarded"})
    assessment = app.monitor.assess("BTC", "1h")
    high = metrics.wilson_interval(9, 30)[1]
    assert assessment.status == PairStatus.DEGRADED
    assert assessment.reasons[0] == f"95% upper bound: win rate {high:.1%} below 52%"


def test_page_hinkley_degrades_a_record_that_fell_not_one_that_stayed_level(app, incumbent):
    app.registry.register("BTC", "1h", incumbent, END, "test")
    app.update_timeframe_settings("1h", {"trigger": "page_hinkley"})
    add_trades(app, "1h", [1.0, -0.8] * 30)  # win rate 50%, below 52%, but level throughout
    level = app.monitor.assess("BTC", "1h")
    assert (level.status, level.reasons) == (PairStatus.HEALTHY, [])
    app.registry.register("BTC", "1h", incumbent, END, "test")  # v2: a fresh record
    add_trades(app, "1h", BALANCED, version=2)  # 30 wins, then 30 losses
    fell = app.monitor.assess("BTC", "1h")
    statistic = metrics.page_hinkley(np.array(BALANCED))
    assert statistic > metrics.PAGE_HINKLEY_THRESHOLD
    assert (fell.status, fell.reasons) == (
        PairStatus.DEGRADED,
        [f"mean R fell: Page-Hinkley {statistic:.1f} above 12"],
    )


def test_an_unknown_trigger_is_refused():
    expected = r"timeframes\.1h\.trigger: must be one of threshold, guarded, page_hinkley"
    with pytest.raises(SettingsError, match=expected):
        Settings().with_timeframe("1h", trigger="sometimes")


def hand_ece(probability: np.ndarray, labels: np.ndarray) -> float:
    """Expected calibration error over ten equal-width bins, by a plain loop."""
    total = 0.0
    for low in np.arange(10) / 10:
        inside = (probability >= low) & (probability < low + 0.1)
        if inside.any():
            gap = abs(probability[inside].mean() - labels[inside].mean())
            total += inside.sum() / len(probability) * gap
    return total


def test_live_ece_is_the_hand_computed_value_over_the_serving_models_resolved_predictions(
    app, early
):
    app.registry.register("BTC", "1h", early, EARLY, "test")
    live = served_since(app, early).iloc[:400]
    probability = 0.05 + 0.1 * (np.arange(len(live)) % 10)  # bin centres, away from the edges
    mark_predictions(app, live["ts"], probability)
    trained = app.store.labelled_snapshots("BTC", "1h")
    mark_predictions(app, trained["ts"].iloc[:50], 0.95)  # inside its window: not live
    other = served_since(app, early).iloc[400:]
    mark_predictions(app, other["ts"], 0.95, version=2)  # another model's predictions
    calibration = app.monitor.assess("BTC", "1h").calibration
    assert calibration["predictions"] == len(live) == 400
    labels = live["label"].to_numpy()
    assert calibration["ece"] == pytest.approx(hand_ece(probability, labels), abs=1e-6)
    assert [b["count"] for b in calibration["reliability"]] == [40] * 10


def test_live_calibration_reads_only_the_newest_bars(app, early, monkeypatch):
    monkeypatch.setattr(monitor_module, "CALIBRATION_WINDOW_BARS", 100)
    app.registry.register("BTC", "1h", early, EARLY, "test")
    live = served_since(app, early)
    mark_predictions(app, live["ts"], 0.55)
    recent = live[live["ts"] > END - pd.Timedelta(hours=100)]
    assert len(live) > 400 and len(recent) > 80
    calibration = app.monitor.assess("BTC", "1h").calibration
    assert calibration["predictions"] == len(recent)
    assert calibration["ece"] == pytest.approx(abs(0.55 - recent["label"].mean()), abs=1e-6)


@pytest.mark.parametrize(
    "predictions", [MIN_CALIBRATION_PREDICTIONS - 1, MIN_CALIBRATION_PREDICTIONS]
)
def test_a_calibration_gap_degrades_the_pair_and_its_retrain_is_recorded(app, early, predictions):
    app.registry.register("BTC", "1h", early, EARLY, "test")
    add_trades(app, "1h", [0.5])  # a recent setup: the model is not silent, only miscalibrated
    live = served_since(app, early).iloc[:predictions]
    mark_predictions(app, live["ts"], 0.95)  # sure of every long, which wins about half
    assessment = app.monitor.assess("BTC", "1h")
    ece = assessment.calibration["ece"]
    assert ece == pytest.approx(abs(0.95 - live["label"].mean()), abs=1e-6) and ece > 0.10
    if predictions < MIN_CALIBRATION_PREDICTIONS:  # too few to judge; no trades to judge either
        assert (assessment.status, assessment.reasons) == (PairStatus.INSUFFICIENT_TRADES, [])
        assert app.monitor_once()["BTC_1h"]["action"] == Action.SKIPPED_TRADES
        return
    reason = f"live ECE {ece:.3f} above 0.10 on {predictions} predictions"
    assert (assessment.status, assessment.reasons) == (PairStatus.DEGRADED, [reason])
    report = app.monitor_once()["BTC_1h"]
    assert report["action"] in (Action.RECALIBRATED, Action.REJECTED_CHALLENGER)
    row = recalibrations(app, "1h").iloc[-1]
    assert (row["trigger"], row["action"], row["reasons"]) == ("monitor", report["action"], reason)
    before = json.loads(row["metrics_before"])
    assert (before["live_ece"], before["live_predictions"]) == (pytest.approx(ece), predictions)


def test_no_edge_is_a_badge_not_a_reason(app, incumbent):
    blind = dataclasses.replace(incumbent, metrics={**incumbent.metrics, "roc_auc": 0.5})
    app.registry.register("BTC", "1h", blind, END, "test")
    add_trades(app, "1h", [1.0] * 20 + [-0.5] * 10)  # a healthy record
    judged = app.monitor.assess("BTC", "1h").as_dict()
    assert (judged["status"], judged["no_edge"]) == (PairStatus.HEALTHY, True)
    assert (
        "hold-out AUC 0.500" in judged["no_edge_reason"]
        and "does not lie above 0.5" in judged["no_edge_reason"]
    )


# --- acting -------------------------------------------------------------------------------


def test_a_cooldown_blocks_the_next_recalibration_until_it_ends(app, incumbent):
    app.registry.register("BTC", "1h", incumbent, END - pd.Timedelta(days=5), "test")
    add_trades(app, "1h", LOSING)
    first = app.monitor_once()["BTC_1h"]
    assert first["action"] in ATTEMPTS and first["action"] != "failed"
    keep_degraded(app)
    attempted_at = app.clock.now()

    app.clock.advance(hours=1)
    second = app.monitor_once()
    assert second["BTC_1h"]["action"] == Action.SKIPPED_COOLDOWN
    assert second["BTC_1h"]["status"] == "cooldown"
    assert second["BTC_1h"]["cooldown_remaining_s"] == 7 * 3600  # 1h's cooldown is 8 hours
    assert_recorded(app, second, "monitor")

    app.clock.set(attempted_at + pd.Timedelta(hours=8) - pd.Timedelta(minutes=1))
    assert app.monitor_once()["BTC_1h"]["action"] == Action.SKIPPED_COOLDOWN
    app.clock.advance(minutes=2)
    third = app.monitor_once()
    assert third["BTC_1h"]["action"] in ATTEMPTS
    assert_recorded(app, third, "monitor")
    assert recalibrations(app, "1h")["action"].tolist() == [
        first["action"],
        Action.SKIPPED_COOLDOWN,
        Action.SKIPPED_COOLDOWN,
        third["BTC_1h"]["action"],
    ]


def test_one_pairs_failure_in_promotion_leaves_the_other_pairs_audit_rows(
    app, incumbent, monkeypatch
):
    for interval in ("1h", "4h"):
        app.store.upsert_bars("BTC", interval, synthetic(interval))
        cycle.backfill_pair(app.store, app.settings, "BTC", interval)
        app.registry.register("BTC", interval, incumbent, END - pd.Timedelta(days=5), "test")
        add_trades(app, interval, LOSING)
    promote = app.monitor.promote_or_reject

    def broken_on_1h(assessment, *args, **kwargs):
        if assessment.interval == "1h":
            raise RuntimeError("disk on fire")
        return promote(assessment, *args, **kwargs)

    monkeypatch.setattr(app.monitor, "promote_or_reject", broken_on_1h)
    report = app.monitor_once()
    assert report["BTC_1h"]["action"] == Action.FAILED
    assert "disk on fire" in report["BTC_1h"]["message"]
    assert report["BTC_4h"]["action"] in CHALLENGER_ACTIONS
    assert_recorded(app, report, "monitor")  # every pair's row, the failed one with its reason


def test_a_forced_retrain_ignores_the_cooldown_and_says_so(app, incumbent):
    app.registry.register("BTC", "1h", incumbent, END - pd.Timedelta(days=5), "test")
    add_trades(app, "1h", LOSING)
    assert app.monitor_once()["BTC_1h"]["action"] in ATTEMPTS
    keep_degraded(app)
    app.clock.advance(minutes=10)
    assert app.retrain("BTC", "1h")["action"] == Action.SKIPPED_COOLDOWN
    forced = app.retrain("BTC", "1h", force=True)
    assert forced["action"] in CHALLENGER_ACTIONS
    last = recalibrations(app, "1h").iloc[-1]
    assert (last["trigger"], last["action"]) == ("forced", forced["action"])
    assert last["new_version"] == forced["new_version"]
    assert app.monitor.assess("BTC", "1h").cooldown_remaining == pd.Timedelta(hours=8)


def test_insufficient_data_is_reported_not_raised(app):
    """No model anywhere: 1d has too few labelled rows to try; 4h has enough labelled rows,
    but too few once the feature warm-up is left out, so the training itself says so."""
    for interval, days in (("4h", 34), ("1d", 34)):
        app.store.upsert_bars("BTC", interval, synthetic(interval, days))
        cycle.backfill_pair(app.store, app.settings, "BTC", interval)
    report = app.monitor.monitor_all_timeframes(["BTC"], ["4h", "1d"])
    assert report["BTC_1d"]["action"] == Action.SKIPPED_DATA
    assert report["BTC_1d"]["labelled_rows"] < SEED_TIMEFRAMES["1d"].min_rows
    assert report["BTC_4h"]["labelled_rows"] >= SEED_TIMEFRAMES["4h"].min_rows
    assert report["BTC_4h"]["action"] == Action.SKIPPED_DATA
    assert report["BTC_4h"]["message"].startswith("insufficient data: have ")
    assert report["BTC_4h"]["message"].endswith(", need 100")
    assert_recorded(app, report, [FIRST_MODEL, "monitor"])  # 4h was tried: its first model
    assert app.store.scalar("SELECT count(*) FROM models") == 0
    forced = app.retrain("BTC", "1d", force=True)
    assert forced["action"] == Action.SKIPPED_DATA
    assert recalibrations(app).iloc[-1]["trigger"] == "forced"


@pytest.mark.parametrize("train_rows", [300, 600])
def test_the_timeframes_train_rows_is_what_a_retrain_trains_on(app, train_rows):
    settings = app.settings.with_timeframe("1h", train_rows=train_rows)
    monitor = monitor_module.PerformanceMonitor(
        app.store, app.registry, lambda: settings, app.clock
    )
    _, outcome = monitor.retrain("BTC", "1h", force=True)
    assert outcome.action == Action.RECALIBRATED
    [rows] = app.store.query("SELECT rows FROM models WHERE interval = '1h'")["rows"]
    assert rows == train_rows


# --- first models and silent models --------------------------------------------------------


def monitor_1h_at(monitor, when: pd.Timestamp) -> dict:
    monitor.clock.set(when)
    return monitor.monitor_all_timeframes(["BTC"], ["1h"])["BTC_1h"]


def test_a_pair_served_by_the_fallback_gets_its_own_model_once_it_has_min_rows(app, incumbent):
    """Whatever its trades (none here): short of min_rows it waits on the fallback; at the
    first run with min_rows rows a model can learn from, its own model is trained."""
    app.registry.register("BTC", FALLBACK_INTERVAL, incumbent, END, "test")
    need = SEED_TIMEFRAMES["1h"].min_rows
    history = training.labelled_history(app.store, app.settings, "BTC", "1h")
    labelled = history["target_ts"].sort_values()
    learnable = history.dropna(subset=list(FEATURE_NAMES))["target_ts"].sort_values()
    minute = pd.Timedelta(minutes=1)
    early = monitor_module.PerformanceMonitor(
        app.store, app.registry, lambda: app.settings, ManualClock(SYNTHETIC_ORIGIN)
    )

    short = monitor_1h_at(early, labelled.iloc[need - 1] - minute)
    assert short["labelled_rows"] < need and short["trades"] == 0
    assert (short["action"], short["model_scope"]) == (Action.SKIPPED_DATA, "fallback")
    # min_rows labelled, but the features' warm-up leaves fewer to learn from: fit says so
    warming = monitor_1h_at(early, learnable.iloc[need - 1] - minute)
    assert warming["labelled_rows"] >= need and warming["model_scope"] == "fallback"
    assert warming["action"] == Action.SKIPPED_DATA
    assert warming["message"].startswith("insufficient data: have ")
    first = monitor_1h_at(early, learnable.iloc[need - 1])
    assert first["action"] == Action.RECALIBRATED and first["trades"] == 0

    assert app.registry.load_timeframe_model("BTC", "1h").scope == "timeframe"
    decided = recalibrations(app, "1h")
    assert decided["trigger"].tolist() == ["monitor", FIRST_MODEL, FIRST_MODEL]
    [model] = app.store.query("SELECT * FROM models WHERE interval = '1h'").itertuples()
    assert (model.trigger, model.version) == (FIRST_MODEL, decided["new_version"].iloc[-1])
    assert model.rows >= need


@pytest.mark.parametrize("opened_a_setup", [False, True])
def test_a_model_that_opens_no_setup_for_its_silence_limit_is_degraded(
    app, incumbent, opened_a_setup
):
    """The dead state the lab found: a model that never crosses the entry threshold makes no
    trades, so it was never judged again. Silent for the time in which it could have made
    min_trades trades back to back, it counts as degraded."""
    app.registry.register("BTC", "1h", incumbent, END, "test")
    limit = monitor_module.silence_limit(SEED_TIMEFRAMES["1h"], "1h")
    assert limit == pd.Timedelta(days=15)  # 30 trades of at most 12 hourly bars
    quiet_since = incumbent.window_end  # no setup yet: it serves from its training's end
    waiting = app.monitor.assess("BTC", "1h", quiet_since + limit - pd.Timedelta(hours=1))
    assert (waiting.status, waiting.decision()) == (
        PairStatus.INSUFFICIENT_TRADES,
        Action.SKIPPED_TRADES,
    )
    app.clock.set(quiet_since + limit)
    if opened_a_setup:
        add_trades(app, "1h", [1.0])  # opened four hours ago: the count starts again
    report = monitor_1h_at(app.monitor, quiet_since + limit)
    if opened_a_setup:
        assert (report["reasons"], report["action"]) == ([], Action.SKIPPED_TRADES)
        return
    assert report["reasons"] == ["no setups in 15d 0h"]
    assert report["status"] == PairStatus.DEGRADED and report["action"] in ATTEMPTS
    assert recalibrations(app, "1h").iloc[-1]["reasons"] == "no setups in 15d 0h"
    # the attempt starts the count again, whichever model now serves
    assert app.monitor.assess("BTC", "1h", app.clock.now() + pd.Timedelta(hours=9)).reasons == []


# --- challenger against incumbent ----------------------------------------------------------


def rule_labels(frame: pd.DataFrame) -> pd.Series:
    """Labels a model can learn exactly from one feature."""
    return (frame["rsi_14"] > 50).astype(float)


def noise_before_the_evaluation_slice(frame: pd.DataFrame) -> pd.DataFrame:
    """The rule's labels on the evaluation slice, coin flips before it: a challenger
    trained on this has learned nothing the slice rewards."""
    rows = frame.dropna(subset=list(FEATURE_NAMES)).reset_index(drop=True)
    _, evaluation = models.split_for_evaluation(rows)
    noise = np.random.default_rng(5).integers(0, 2, len(rows)).astype(float)
    noise[-len(evaluation) :] = rule_labels(evaluation)
    return rows.assign(label=noise)


def before_the_evaluation_slice(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of `frame` labelled before its evaluation slice begins: an incumbent trained
    on them can be compared with a challenger on the whole slice."""
    rows = frame.dropna(subset=list(FEATURE_NAMES)).reset_index(drop=True)
    start = models.split_for_evaluation(rows)[1]["ts"].iloc[0]
    return rows[rows["target_ts"] <= start]


def train_on(frame: pd.DataFrame) -> models.TrainedModel:
    trained = models.fit(frame, SEED_TIMEFRAMES["1h"], seed=0)
    assert isinstance(trained, models.TrainedModel)
    return trained


@pytest.mark.parametrize("challenger_wins", [False, True])
def test_a_challenger_must_beat_the_incumbent_on_the_same_window(
    app, frame_1h, monkeypatch, challenger_wins
):
    ruled = frame_1h.assign(label=rule_labels(frame_1h))
    noisy = noise_before_the_evaluation_slice(ruled)
    incumbent_frame, challenger_frame = (noisy, ruled) if challenger_wins else (ruled, noisy)
    incumbent = train_on(before_the_evaluation_slice(incumbent_frame))
    app.registry.register("BTC", "1h", incumbent, END, "test")
    add_trades(app, "1h", LOSING)
    monkeypatch.setattr(monitor_module.training, "training_frame", lambda *args: challenger_frame)
    report = app.monitor_once()
    row = recalibrations(app, "1h").iloc[-1]
    assert_recorded(app, report, "monitor")
    versions = app.store.query("SELECT version, status FROM models ORDER BY version")
    serving = app.registry.load_timeframe_model("BTC", "1h").version
    if challenger_wins:
        assert row["action"] == Action.RECALIBRATED
        assert row["challenger_score"] < row["incumbent_score"]
        assert versions["status"].tolist() == ["retired", "active"] and serving == 2
    else:
        assert row["action"] == Action.REJECTED_CHALLENGER
        assert row["challenger_score"] > row["incumbent_score"] + 0.1
        assert versions["status"].tolist() == ["active", "rejected"] and serving == 1
        assert "v2 rejected" in row["message"] and "v1 keeps serving" in row["message"]
    assert row["new_version"] == 2
    usable = challenger_frame.dropna(subset=list(FEATURE_NAMES))
    evaluated = len(models.split_for_evaluation(usable)[1])
    assert row["evidence"] == f"held-out rows ({evaluated})"  # the whole slice is after v1's
    assert f"on held-out rows ({evaluated})" in row["message"]


# --- a fair comparison ----------------------------------------------------------------------


@pytest.mark.parametrize("covered", [0.5, 0.9, 1.0])
def test_an_incumbent_is_never_scored_on_rows_it_trained_on(app, frame_1h, monkeypatch, covered):
    """An incumbent whose training window reaches into (half, most or all of) the
    challenger's evaluation slice is asked to predict only the slice's rows after its window;
    with fewer than MIN_FAIR_ROWS of them the challenger waits in shadow and the incumbent
    keeps serving."""
    rows = frame_1h.dropna(subset=list(FEATURE_NAMES)).reset_index(drop=True)
    evaluation = models.split_for_evaluation(rows)[1]
    window_end = evaluation["ts"].iloc[int(covered * (len(evaluation) - 1))]
    app.registry.register("BTC", "1h", train_on(rows[rows["ts"] <= window_end]), END, "test")
    served = app.registry.load_active("BTC", "1h").model  # the very object the monitor uses
    asked = []
    predict = models.TrainedModel.predict_proba

    def spy(model, features):
        if model is served:
            asked.append(features["ts"])
        return predict(model, features)

    monkeypatch.setattr(models.TrainedModel, "predict_proba", spy)
    monkeypatch.setattr(monitor_module.training, "training_frame", lambda *args: frame_1h)
    add_trades(app, "1h", LOSING)
    app.monitor_once()
    scored = pd.concat(asked) if asked else pd.Series([], dtype=object)
    fair = int((evaluation["ts"] > window_end).sum())
    assert len(scored) == fair and (scored > window_end).all()
    row = recalibrations(app, "1h").iloc[-1]
    assert row["evidence"] == f"held-out rows ({fair})"
    statuses = app.store.query("SELECT status FROM models ORDER BY version")["status"].tolist()
    if fair >= monitor_module.MIN_FAIR_ROWS:
        assert row["action"] in (Action.RECALIBRATED, Action.REJECTED_CHALLENGER)
    else:
        assert row["action"] == Action.SHADOWED and statuses == ["active", "shadow"]
        assert app.registry.load_timeframe_model("BTC", "1h").version == 1
        assert app.registry.load_shadow("BTC", "1h").version == 2


SMALL = dataclasses.replace(SEED_TIMEFRAMES["1h"], min_rows=100)


def same_process(seed: int, rows: int = 200) -> pd.DataFrame:
    """A training frame from one data-generating process: the long wins with a probability
    that rises with one feature, the other features are noise."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, len(FEATURE_NAMES)))
    wins = rng.random(rows) < 1 / (1 + np.exp(-values[:, 0]))
    ts = pd.date_range("2025-01-01", periods=rows, freq="1h", tz="UTC")
    frame = pd.DataFrame(values, columns=list(FEATURE_NAMES))
    frame.insert(0, "ts", ts)
    frame.insert(1, "target_ts", ts + pd.Timedelta(hours=SMALL.horizon_bars))
    pnl = np.where(wins, 1.0, -1.0)
    return frame.assign(label=wins.astype(float), pnl_long=pnl, pnl_short=-pnl)


@pytest.mark.slow
def test_an_equally_good_challenger_wins_about_half_the_time():
    """Challenger and incumbent from the same process, each fitted on as many rows (the
    incumbent's window ends where the challenger's evaluation slice begins): over 40 seeds
    the challenger wins a share inside the 99% binomial range of a fair coin. The old rule,
    which scored an incumbent whose window covered the slice in sample (here the challenger's
    own final model, equally good by construction), let it win 7 times in 40 (the fair rule:
    25)."""
    fair, old = [], []
    for trial in range(40):
        frame = same_process(2 * trial)
        challenger = train_on_small(frame)
        evaluation_start = challenger.holdout.index[0]
        older = same_process(2 * trial + 1)
        incumbent = train_on_small(older[older["target_ts"] <= evaluation_start])
        comparison = monitor_module.held_out_comparison(frame, challenger, incumbent)
        assert comparison.rows == len(challenger.holdout)  # the whole slice is fair
        fair.append(comparison.challenger_wins)
        evaluation = frame[frame["ts"] >= evaluation_start]
        in_sample = np.mean((challenger.predict_proba(evaluation) - evaluation["label"]) ** 2)
        old.append(challenger.metrics["brier"] <= in_sample)
    assert 0.3 <= np.mean(fair) <= 0.7
    assert np.mean(old) < 0.3 < np.mean(fair)


def train_on_small(frame: pd.DataFrame) -> models.TrainedModel:
    # explain=False: the comparison reads no importances, a fifth of each fit's time
    trained = models.fit(frame, SMALL, seed=0, explain=False)
    assert isinstance(trained, models.TrainedModel)
    return trained


# --- challengers in shadow ------------------------------------------------------------------


def brier_after(app, models_: list[models.TrainedModel]) -> tuple[int, list[float]]:
    """How many snapshots resolved by now after every model's window, and each model's Brier
    score on them, computed here from the store's rows."""
    after = max(m.window_end for m in models_)
    rows = app.store.query(
        "SELECT * FROM snapshots WHERE ts > ? AND target_ts <= ? ORDER BY ts",
        [after, app.clock.now()],
    )
    return len(rows), [
        float(np.mean((m.predict_proba(rows) - rows["target"]) ** 2)) for m in models_
    ]


@pytest.mark.parametrize("swap", [False, True])
def test_a_shadow_challenger_is_decided_on_the_outcomes_resolved_after_both_windows(app, swap):
    as_of = END - pd.Timedelta(days=5)
    frame = training.training_frame(app.store, app.settings, "BTC", "1h", as_of)
    trained = [train_on(frame), train_on(noise_before_the_evaluation_slice(frame))]
    incumbent, shadow = reversed(trained) if swap else trained
    app.registry.register("BTC", "1h", incumbent, as_of, "test")
    app.registry.register("BTC", "1h", shadow, as_of, "test", ModelStatus.SHADOW)
    rows, (shadow_brier, incumbent_brier) = brier_after(app, [shadow, incumbent])
    assert rows >= monitor_module.MIN_FAIR_ROWS
    app.monitor_once()
    decided = recalibrations(app, "1h").iloc[0]
    wins = shadow_brier <= incumbent_brier
    assert decided["action"] == (Action.SHADOW_PROMOTED if wins else Action.SHADOW_REJECTED)
    assert decided["evidence"] == f"shadow outcomes ({rows})"
    assert decided["challenger_score"] == pytest.approx(shadow_brier)
    assert decided["incumbent_score"] == pytest.approx(incumbent_brier)
    assert app.registry.load_timeframe_model("BTC", "1h").version == (2 if wins else 1)
    assert app.registry.load_shadow("BTC", "1h") is None
    statuses = app.store.query("SELECT status FROM models ORDER BY version")["status"].tolist()
    assert statuses == (["retired", "active"] if wins else ["active", "rejected"])


def test_a_newer_challenger_replaces_an_older_shadow(app, incumbent):
    app.registry.register("BTC", "1h", incumbent, END, "test")  # its window covers the slice
    add_trades(app, "1h", LOSING)
    assert app.monitor_once()["BTC_1h"]["action"] == Action.SHADOWED
    app.clock.advance(hours=8)  # the cooldown; no bar has resolved since
    second = app.monitor_once()["BTC_1h"]
    assert second["action"] == Action.SHADOWED
    assert second["message"].endswith("; shadow v2 ends undecided")
    statuses = app.store.query("SELECT status FROM models ORDER BY version")["status"].tolist()
    assert statuses == ["active", "rejected", "shadow"]
    assert app.registry.load_shadow("BTC", "1h").version == 3
