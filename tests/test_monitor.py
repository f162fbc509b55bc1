"""The performance monitor under a manual clock: per-timeframe thresholds, cooldowns in clock
time, insufficient data as an answer, forced retrains, and challengers that must beat the
incumbent on the same window. Every decision is a row in `recalibrations`."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from alpha12 import cycle, metrics, models, snapshots, training
from alpha12 import monitor as monitor_module
from alpha12.bars import resample
from alpha12.clock import ManualClock
from alpha12.config import SEED_TIMEFRAMES, Settings
from alpha12.monitor import Assessment
from alpha12.services import Alpha12
from alpha12.sources.replay import SYNTHETIC_ORIGIN, SyntheticReplay
from alpha12.sources.synthetic import SyntheticMarket
from alpha12.store import Store
from alpha12.vocabulary import ATTEMPTS, Action, ModelStatus, PairStatus

DAYS = 40
END = SYNTHETIC_ORIGIN + pd.Timedelta(days=DAYS)
# 60 trades, win rate 50%, profit factor 1.25: healthy on 5m and 15m, degraded from 1h up.
BALANCED = [1.0] * 30 + [-0.8] * 30
LOSING = [1.0] * 9 + [-1.0] * 21  # win rate 30%, profit factor 0.43: degraded everywhere
CHALLENGER_ACTIONS = (Action.RECALIBRATED, Action.REJECTED_CHALLENGER, Action.SHADOWED)


def synthetic(interval: str, days: int = DAYS) -> pd.DataFrame:
    base = SyntheticMarket(seed=12, origin=SYNTHETIC_ORIGIN).base_bars("BTC", days)
    return resample(base, interval)


@pytest.fixture(scope="module")
def frame_1h(tmp_path_factory) -> pd.DataFrame:
    """The 1h training frame of the synthetic market at END."""
    store = Store(tmp_path_factory.mktemp("frame") / "s.duckdb")
    store.upsert_bars("BTC", "1h", synthetic("1h"))
    cycle.backfill_pair(store, Settings(), "BTC", "1h")
    frame = training.training_frame(store, Settings(), "BTC", "1h", END)
    store.close()
    return frame


@pytest.fixture(scope="module")
def incumbent(frame_1h) -> models.TrainedModel:
    return models.fit(frame_1h, SEED_TIMEFRAMES["1h"], seed=0)


@pytest.fixture
def app(settings, tmp_path):
    """Alpha12 over a fresh store with BTC 1h bars backfilled and a manual clock at END."""
    opened = Alpha12.open(
        settings=dataclasses.replace(settings, assets=("BTC",)),
        clock=ManualClock(END),
        source=SyntheticReplay(12, DAYS),
    )
    opened.store.upsert_bars("BTC", "1h", synthetic("1h"))
    cycle.backfill_pair(opened.store, opened.settings, "BTC", "1h")
    yield opened
    opened.close()


def add_trades(app, interval: str, pnl: list[float], version: int = 1, scope="timeframe") -> None:
    """Closed trades of model `version`, resolved before now."""
    n = len(pnl)
    exits = app.clock.now() - pd.Timedelta(hours=1) * np.arange(n, 0, -1)
    app.store.insert_setups(
        pd.DataFrame(
            {
                "asset": "BTC",
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


def keep_degraded(app, interval: str = "1h") -> None:
    """Give a newly promoted model a losing record too, so the pair stays degraded."""
    served = app.registry.load_timeframe_model("BTC", interval)
    if app.monitor.assess("BTC", interval).summary["trades"] == 0:
        add_trades(app, interval, LOSING, version=served.version)


def recalibrations(app, interval: str | None = None) -> pd.DataFrame:
    rows = app.store.query("SELECT * FROM recalibrations ORDER BY id")
    return rows if interval is None else rows[rows["interval"] == interval]


def assert_recorded(app, report: dict, trigger: str) -> None:
    """The report's decisions are the newest rows of `recalibrations`, one per pair."""
    rows = recalibrations(app).tail(len(report))
    assert [f"{r.asset}_{r.interval}" for r in rows.itertuples()] == list(report)
    assert rows["action"].tolist() == [row["action"] for row in report.values()]
    assert (rows["trigger"] == trigger).all()


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
        assert assessment.thresholds == SEED_TIMEFRAMES[interval]
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
        SEED_TIMEFRAMES[interval],
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
    assert_recorded(app, report, "monitor")
    assert app.store.scalar("SELECT count(*) FROM models") == 0
    forced = app.retrain("BTC", "1d", force=True)
    assert forced["action"] == Action.SKIPPED_DATA
    assert recalibrations(app).iloc[-1]["trigger"] == "forced"


# --- challenger against incumbent ----------------------------------------------------------


def rule_labels(frame: pd.DataFrame) -> pd.Series:
    """Labels a model can learn exactly from one feature."""
    return (frame["rsi_14"] > 50).astype(float)


def noise_before_the_evaluation_slice(frame: pd.DataFrame) -> pd.DataFrame:
    """The rule's labels on the evaluation slice, coin flips before it: a challenger
    trained on this has learned nothing the slice rewards."""
    rows = frame.dropna(subset=list(snapshots.FEATURE_NAMES)).reset_index(drop=True)
    _, evaluation = models.split_for_evaluation(rows)
    noise = np.random.default_rng(5).integers(0, 2, len(rows)).astype(float)
    noise[-len(evaluation) :] = rule_labels(evaluation)
    return rows.assign(label=noise)


def before_the_evaluation_slice(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of `frame` labelled before its evaluation slice begins: an incumbent trained
    on them can be compared with a challenger on the whole slice."""
    rows = frame.dropna(subset=list(snapshots.FEATURE_NAMES)).reset_index(drop=True)
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
    usable = challenger_frame.dropna(subset=list(snapshots.FEATURE_NAMES))
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
    rows = frame_1h.dropna(subset=list(snapshots.FEATURE_NAMES)).reset_index(drop=True)
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
    values = rng.normal(size=(rows, len(snapshots.FEATURE_NAMES)))
    wins = rng.random(rows) < 1 / (1 + np.exp(-values[:, 0]))
    ts = pd.date_range("2025-01-01", periods=rows, freq="1h", tz="UTC")
    frame = pd.DataFrame(values, columns=list(snapshots.FEATURE_NAMES))
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
    trained = models.fit(frame, SMALL, seed=0)
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
