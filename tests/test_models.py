"""Training, calibration and evaluation: too little data is an answer, not an exception; a
model trained on the synthetic market or on real BTC 1h records every metric in meta.json."""

import dataclasses
import hashlib
import json
import math
import threading

import numpy as np
import pandas as pd
import pytest
import threadpoolctl
from sklearn.model_selection import TimeSeriesSplit

from alpha12 import cycle, models, snapshots, training
from alpha12.bars import resample
from alpha12.clock import ManualClock, WallClock
from alpha12.config import Settings
from alpha12.features import FEATURE_NAMES
from alpha12.registry import Registry
from alpha12.sources.csv_files import import_csv
from alpha12.sources.replay import SYNTHETIC_ORIGIN
from alpha12.sources.synthetic import SyntheticMarket
from alpha12.store import Store
from tests.conftest import BTC_DIR

POOLED_DAYS = 60

SETTINGS = Settings()
TIMEFRAME = SETTINGS.timeframe("1h")
TRAINED_AT = pd.Timestamp("2026-03-01 12:00", tz="UTC")
METRICS = {
    "roc_auc",
    "brier",
    "log_loss",
    "ece",
    "reliability",
    "base_rate",
    "signal_trades",
    "signal_win_rate",
    "signal_profit_factor",
    "signal_expectancy_pct",
    "train_rows",
    "eval_rows",
    "eval_start",
}
META = {
    "asset",
    "interval",
    "scope",
    "version",
    "trained_at",
    "as_of",
    "rows",
    "window",
    "features",
    "hyper_parameters",
    "metrics",
    "feature_importances",
    "library_versions",
    "trigger",
    "sha256",
}


def backfilled(store: Store, asset: str, bars: pd.DataFrame) -> pd.Timestamp:
    """Store and backfill 1h bars; the close of the last one."""
    store.upsert_bars(asset, "1h", bars)
    cycle.backfill_pair(store, SETTINGS, asset, "1h")
    return bars["ts"].iloc[-1] + pd.Timedelta(hours=1)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """(store, as_of, frame) for 30 days of synthetic 1h bars: fewer than 1000 rows."""
    store = Store(tmp_path_factory.mktemp("synthetic") / "s.duckdb")
    base = SyntheticMarket(seed=12, origin=SYNTHETIC_ORIGIN).base_bars("BTC", 30)
    as_of = backfilled(store, "BTC", resample(base, "1h"))
    yield store, as_of, training.training_frame(store, SETTINGS, "BTC", "1h", as_of)
    store.close()


@pytest.fixture(scope="module")
def btc(tmp_path_factory):
    """(store, as_of, frame) for real BTC 1h imported through the CSV import."""
    if not (BTC_DIR / "BTCUSDT_1h.csv").exists():
        pytest.skip(f"real data not found at {BTC_DIR}")
    store = Store(tmp_path_factory.mktemp("btc") / "s.duckdb")
    [report] = import_csv(store, BTC_DIR / "BTCUSDT_1h.csv", WallClock().now())
    assert report.error is None and report.imported > 12_000
    cycle.backfill_pair(store, SETTINGS, "BTCUSDT", "1h")
    as_of = store.last_bar_ts("BTCUSDT", "1h") + pd.Timedelta(hours=1)
    yield store, as_of, training.training_frame(store, SETTINGS, "BTCUSDT", "1h", as_of)
    store.close()


@pytest.fixture(scope="module")
def synthetic_model(synthetic) -> models.TrainedModel:
    return models.fit(synthetic[2], TIMEFRAME, seed=0)


@pytest.fixture(scope="module")
def btc_model(btc) -> models.TrainedModel:
    return models.fit(btc[2], TIMEFRAME, seed=0)


# --- too little data ------------------------------------------------------------------------


@pytest.mark.parametrize("days_back", [0, 3, 200])
def test_a_training_frame_reads_only_its_window_and_equals_the_full_history_view(btc, days_back):
    """The bounded read (the window's rows and TAIL_BARS of bars before them) gives exactly
    the frame the whole history gives, at the newest bar and in the past (labels known
    later are left out either way)."""
    store, newest, _ = btc
    as_of = newest - pd.Timedelta(days=days_back)
    whole = training.labelled_history(store, SETTINGS, "BTCUSDT", "1h")
    assert len(whole) > 10 * TIMEFRAME.train_rows
    expected = snapshots.as_of_view(whole, as_of, TIMEFRAME.train_rows)
    frame = training.training_frame(store, SETTINGS, "BTCUSDT", "1h", as_of)
    assert len(frame) == TIMEFRAME.train_rows and frame["target_ts"].max() <= as_of
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)


def test_too_few_rows_is_insufficient_with_a_plain_message(synthetic):
    frame = synthetic[2]
    complete = frame.dropna(subset=list(FEATURE_NAMES)).iloc[:120]
    result = models.fit(complete, TIMEFRAME)
    assert result == models.Insufficient(have=120, need=150)
    assert result.message == "insufficient data: have 120, need 150"


def test_warm_up_rows_do_not_count_towards_the_minimum(synthetic):
    frame = synthetic[2].iloc[:200]  # starts with bars whose features are still warming up
    have = int(frame[list(FEATURE_NAMES)].notna().all(axis=1).sum())
    assert have < len(frame)
    result = models.fit(frame, TIMEFRAME)
    assert isinstance(result, models.Insufficient)
    assert result.message == f"insufficient data: have {have}, need 150"


def test_outcomes_of_one_kind_only_are_insufficient(synthetic):
    result = models.fit(synthetic[2].assign(label=1.0), TIMEFRAME)
    assert isinstance(result, models.Insufficient)
    assert result.message == "insufficient data: every labelled outcome is the same"


# --- the trained model and its record ---------------------------------------------------------


@pytest.mark.parametrize("which", ["synthetic", "btc"])
def test_meta_json_carries_every_metric_and_the_provenance(request, tmp_path, which):
    store, as_of, frame = request.getfixturevalue(which)
    trained = request.getfixturevalue(f"{which}_model")
    asset = "BTC" if which == "synthetic" else "BTCUSDT"
    registry = Registry(tmp_path / "models", store, ManualClock(TRAINED_AT))
    version = registry.register(asset, "1h", trained, as_of, trigger="test")
    folder = tmp_path / "models" / f"{asset}_1h"
    meta = json.loads((folder / "meta.json").read_text())

    assert set(meta) >= META
    assert (meta["version"], meta["trigger"], meta["scope"]) == (version, "test", "timeframe")
    assert pd.Timestamp(meta["trained_at"]) == TRAINED_AT
    assert pd.Timestamp(meta["as_of"]) == as_of
    usable = frame.dropna(subset=list(FEATURE_NAMES))
    assert meta["rows"] == len(usable) == trained.rows
    assert [pd.Timestamp(t) for t in meta["window"]] == [
        usable["ts"].iloc[0],
        usable["ts"].iloc[-1],
    ]
    assert tuple(meta["features"]) == FEATURE_NAMES
    assert set(meta["library_versions"]) >= {"python", "scikit-learn", "pandas", "joblib"}
    recorded = meta["hyper_parameters"]
    assert recorded["calibration"] == ("sigmoid" if trained.rows < 1000 else "isotonic")
    assert recorded["cv_purge"] == "target_ts" and recorded["seed"] == 0
    data = (folder / "model.joblib").read_bytes()
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()

    scores = meta["metrics"]
    assert set(scores) >= METRICS
    assert 0 <= scores["roc_auc"] <= 1 and 0 < scores["brier"] < 1
    assert scores["log_loss"] > 0 and 0 <= scores["ece"] <= 1
    assert scores["eval_rows"] == sum(b["count"] for b in scores["reliability"])
    assert scores["eval_rows"] == max(models.MIN_EVAL_ROWS, int(trained.rows * 0.2))
    assert scores["signal_trades"] > 0 and 0 <= scores["signal_win_rate"] <= 1
    assert scores["signal_profit_factor"] == "inf" or scores["signal_profit_factor"] >= 0
    importances = meta["feature_importances"]
    assert set(importances) == set(FEATURE_NAMES)
    assert list(importances.values()) == sorted(importances.values(), reverse=True)
    assert max(importances.values()) > 0


def test_small_frames_calibrate_with_sigmoid_on_purged_folds(synthetic_model):
    assert synthetic_model.rows < models.ISOTONIC_FROM_ROWS
    params = synthetic_model.params
    assert params["calibration"] == "sigmoid" == synthetic_model.estimator.method
    assert params["cv_purge"] == "target_ts"
    assert len(synthetic_model.estimator.cv) == params["cv_splits"]
    assert params["seed"] == 0 and params["early_stopping"] is False


def test_the_training_window_of_btc_calibrates_isotonic(btc_model):
    assert btc_model.rows == TIMEFRAME.train_rows >= models.ISOTONIC_FROM_ROWS
    assert btc_model.params["calibration"] == "isotonic" == btc_model.estimator.method


@pytest.mark.parametrize("which", ["synthetic", "btc"])  # sigmoid and isotonic calibration
def test_the_win_probability_is_sklearns_predict_proba_exactly(request, which):
    """The product's own prediction path skips sklearn's label checks, not its arithmetic: on
    real rows, on single rows and far outside the training range it gives the same floats."""
    model, (_, _, frame) = request.getfixturevalue(f"{which}_model"), request.getfixturevalue(which)
    rows = frame.dropna(subset=list(FEATURE_NAMES))[list(FEATURE_NAMES)].to_numpy("float64")
    extremes = np.vstack([rows.min(axis=0) - 1e6, rows.max(axis=0) + 1e6, np.zeros(rows.shape[1])])
    for values in (rows, rows[:1], rows[-1:], extremes):
        expected = model.estimator.predict_proba(values)[:, 1]
        got = models.predict_win_probability(model.estimator, values)
        np.testing.assert_array_equal(got, expected)
    assert np.unique(models.predict_win_probability(model.estimator, rows)).size > 10


def openmp_threads() -> set[int]:
    """OpenMP's thread count in the calling thread, as threadpoolctl reads it."""
    return {
        pool["num_threads"]
        for pool in threadpoolctl.threadpool_info()
        if pool["user_api"] == "openmp"
    }


def test_every_thread_fits_and_predicts_on_one_openmp_thread(synthetic, synthetic_model):
    """OpenMP's thread count is per thread: a fit or a prediction in the engine's or a page's
    thread must not start OpenMP threads that spin beside the app's own."""
    rows = synthetic[2].dropna(subset=list(FEATURE_NAMES))
    seen = []

    def in_a_new_thread(work) -> None:
        threadpoolctl.threadpool_limits(2, user_api="openmp")  # what a new thread may start with
        seen.append(openmp_threads())
        work()
        seen.append(openmp_threads())

    for work in (
        lambda: models.calibrated(rows, seed=0),
        lambda: models.predict_win_probability(
            synthetic_model.estimator, rows[list(FEATURE_NAMES)]
        ),
    ):
        thread = threading.Thread(target=in_a_new_thread, args=(work,))
        thread.start()
        thread.join()
    assert seen == [{2}, {1}, {2}, {1}]


def test_a_model_fitted_without_explaining_is_the_same_model_without_importances(
    synthetic, synthetic_model
):
    """The lab skips the importances; everything a decision reads must be what it would be."""
    plain = models.fit(synthetic[2], TIMEFRAME, seed=0, explain=False)
    assert plain.importances == {} and len(synthetic_model.importances) == len(FEATURE_NAMES)
    assert plain.metrics == synthetic_model.metrics
    pd.testing.assert_series_equal(plain.holdout, synthetic_model.holdout)
    rows = synthetic[2].dropna(subset=list(FEATURE_NAMES))
    np.testing.assert_array_equal(plain.predict_proba(rows), synthetic_model.predict_proba(rows))


def test_a_model_fitted_in_two_processes_is_the_model_fitted_in_one(btc, btc_model):
    """A lone lab walk fits each model's two halves side by side: the same model, bit for bit."""
    parallel = models.fit(btc[2], TIMEFRAME, seed=0, workers=2)
    assert parallel.metrics == btc_model.metrics
    assert parallel.importances == btc_model.importances
    pd.testing.assert_series_equal(parallel.holdout, btc_model.holdout)
    rows = btc[2].dropna(subset=list(FEATURE_NAMES))
    np.testing.assert_array_equal(parallel.predict_proba(rows), btc_model.predict_proba(rows))


def test_the_evaluation_slice_is_the_most_recent_and_purged(synthetic):
    rows = synthetic[2].dropna(subset=list(FEATURE_NAMES)).reset_index(drop=True)
    train, evaluation = models.split_for_evaluation(rows)
    pd.testing.assert_frame_equal(evaluation, rows.iloc[-len(evaluation) :].reset_index(drop=True))
    start = evaluation["ts"].iloc[0]
    assert (train["target_ts"] <= start).all()
    older = rows.iloc[: -len(evaluation)]
    purged = older[older["target_ts"] > start]
    assert len(purged) > 0  # labels resolving inside the evaluation slice were dropped
    assert len(train) + len(purged) == len(older)


@pytest.fixture(scope="module")
def pooled(tmp_path_factory) -> tuple[Settings, pd.DataFrame]:
    """(settings, rows) of an asset's fallback frame pooling 1h and 4h synthetic history:
    4h labels take up to 48 hours to resolve, 1h labels up to 12."""
    settings = dataclasses.replace(SETTINGS, intervals=("1h", "4h"))
    store = Store(tmp_path_factory.mktemp("pooled") / "s.duckdb")
    base = SyntheticMarket(seed=12, origin=SYNTHETIC_ORIGIN).base_bars("BTC", POOLED_DAYS)
    for interval in settings.intervals:
        store.upsert_bars("BTC", interval, resample(base, interval))
        cycle.backfill_pair(store, settings, "BTC", interval)
    as_of = SYNTHETIC_ORIGIN + pd.Timedelta(days=POOLED_DAYS)
    frame = training.pooled_training_frame(store, settings, "BTC", as_of)
    store.close()
    return settings, frame.dropna(subset=[*FEATURE_NAMES, "label"]).reset_index(drop=True)


def test_pooled_folds_purge_each_row_by_its_own_horizon(pooled):
    settings, rows = pooled
    # A 1h label is known at most 13 hours after its bar opened; only 4h labels take longer.
    four_hourly = rows["target_ts"] - rows["ts"] > pd.Timedelta(hours=13)
    gap = settings.timeframe("1h").horizon_bars
    purged_beyond_a_row_gap = 0
    folds = models.purged_folds(rows)
    assert len(folds) == models.CV_SPLITS
    for train, validation in folds:
        start = rows["ts"].iloc[validation[0]]
        assert (rows["target_ts"].iloc[train] <= start).all()
        assert train.max() < validation[0] and len(validation) == len(rows) // 4
        assert four_hourly.iloc[train].sum() > 0  # 4h rows do train, once their label is known
        # 4h rows that TimeSeriesSplit(gap=12 rows) would have trained on, label still open.
        older = rows.index[: validation[0] - gap]
        purged = older.difference(train)
        assert (rows.loc[purged, "target_ts"] > start).all()
        purged_beyond_a_row_gap += four_hourly.loc[purged].sum()
    assert purged_beyond_a_row_gap > 0
    assert isinstance(models.fit(rows, settings.fallback_timeframe()), models.TrainedModel)


def test_on_one_timeframe_the_purge_drops_at_most_a_row_gaps_rows(synthetic):
    """Equivalent to TimeSeriesSplit(gap=horizon_bars) for a single timeframe, except that it
    keeps the rows of the gap whose outcome was already known."""
    rows = synthetic[2].dropna(subset=list(FEATURE_NAMES)).reset_index(drop=True)
    gap = TIMEFRAME.horizon_bars
    splits = TimeSeriesSplit(n_splits=models.CV_SPLITS, gap=gap).split(rows)
    for (train, validation), (by_rows, same_validation) in zip(
        models.purged_folds(rows), splits, strict=True
    ):
        np.testing.assert_array_equal(validation, same_validation)
        assert set(by_rows) <= set(train)
        assert set(train) - set(by_rows) <= set(range(validation[0] - gap, validation[0]))


def test_probability_scores_by_hand():
    labels = np.array([0, 0, 1, 1, 1])
    probability = np.array([0.12, 0.18, 0.14, 0.62, 0.95])
    scores = models.probability_scores(labels, probability)
    assert scores["brier"] == pytest.approx(np.mean((probability - labels) ** 2))
    assert scores["roc_auc"] == pytest.approx(5 / 6)
    bins = scores["reliability"]
    assert [b["low"] for b in bins] == pytest.approx([0.1, 0.6, 0.9])
    assert [b["count"] for b in bins] == [3, 1, 1]
    assert bins[0]["mean_predicted"] == pytest.approx((0.12 + 0.18 + 0.14) / 3)
    assert bins[0]["observed"] == pytest.approx(1 / 3)
    expected_ece = (3 * abs(0.44 / 3 - 1 / 3) + abs(0.62 - 1) + abs(0.95 - 1)) / 5
    assert scores["ece"] == pytest.approx(expected_ece)
    assert models.probability_scores(np.ones(3, int), np.full(3, 0.7))["roc_auc"] is None


def test_signal_results_trade_both_directions_with_known_outcomes():
    rows = pd.DataFrame(
        {
            "pnl_long": [2.0, 9.0, 1.0, -3.0, 7.0],
            "pnl_short": [-5.0, 9.0, -1.0, 4.0, np.nan],
        }
    )
    # 0.6 and 0.55 go long; 0.45 (exactly the mirror) and 0.2 go short, and 0.2's short
    # outcome is not known yet.
    result = models.signal_results(np.array([0.6, 0.5, 0.55, 0.45, 0.2]), rows, TIMEFRAME)
    assert result["signal_trades"] == 3  # long +2, long +1, short +4
    assert result["signal_win_rate"] == 1.0
    assert math.isinf(result["signal_profit_factor"])
