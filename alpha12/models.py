"""Training, calibration and out-of-sample evaluation of one pair's model.

Pure with respect to storage: `fit` takes a training frame (features, labels and the outcomes
of both trade directions, with the times they became known) and returns a fitted model with
its metrics, so the same code trains locally, in a joblib worker, or on a Dask cluster.

No look-ahead: the caller passes only rows whose label was known at `as_of`; the evaluation
slice is the most recent part, and the rows trained for it are purged of every label that
was not yet known when the slice began. The calibration folds follow the same rule
(`purged_folds`), so a frame that pools timeframes purges each row by its own horizon.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import joblib
import numpy as np
import pandas as pd
import threadpoolctl
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from alpha12 import metrics as trade_metrics
from alpha12.config import TimeframeSettings
from alpha12.features import FEATURE_NAMES

# These models are small and predict a few rows at a time next to the app's own threads, where
# OpenMP's per-call thread wake-ups cost far more than they save (measured: a warm-start walk
# took 122 s with OpenMP threads and 18 s without). Parallelism comes from training several
# models at once through joblib instead.
_OPENMP = threadpoolctl.ThreadpoolController().select(user_api="openmp")


def _one_openmp_thread() -> None:
    """OpenMP's thread count is a setting of each thread, so every fit and prediction sets it
    in the thread that runs it (36 us): set once at import, it held for the main thread only,
    and the engine's, the pages' and the lab's threads fitted on OpenMP threads that spin while
    they wait (a headless warm start with ALPHA12_N_JOBS=1 beside two busy cores took 92 s of
    CPU; now 17 s)."""
    _OPENMP.limit(limits=1)


ISOTONIC_FROM_ROWS = 1000  # isotonic calibration overfits below this; sigmoid is safer
EVAL_FRACTION = 0.2
MIN_EVAL_ROWS = 30
CV_SPLITS = 3
RELIABILITY_BINS = 10
# 40 steps of 0.16 on 63 bins: out of sample as good as the 80 steps of 0.08 on 255 bins used
# before (112 blocks of real BTC and ETH bars, paired: AUC +0.002 [-0.005, +0.008], Brier
# -0.0014 [-0.0024, -0.0004]) and fitted in half the time (bench/bench_model.py, README).
MODEL_PARAMS = {
    "learning_rate": 0.16,
    "max_iter": 40,
    "max_bins": 63,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "early_stopping": False,  # its random validation split would leak the future
}


@dataclass(frozen=True)
class Insufficient:
    """Not enough labelled rows (or outcomes of only one kind) to train."""

    have: int
    need: int
    detail: str = ""

    @property
    def message(self) -> str:
        return self.detail or f"insufficient data: have {self.have}, need {self.need}"


@dataclass
class TrainedModel:
    estimator: CalibratedClassifierCV
    features: tuple[str, ...]
    rows: int
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    metrics: dict
    importances: dict[str, float]
    params: dict = field(default_factory=dict)
    # The hold-out model's probabilities on the evaluation slice, by ts: what the monitor
    # compares with an incumbent on the rows neither trained on (a few KB beside the model).
    holdout: pd.Series | None = None

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probability that a long setup at each row wins."""
        return predict_win_probability(self.estimator, features[list(self.features)])


def predict_win_probability(
    estimator: CalibratedClassifierCV, features: pd.DataFrame | np.ndarray
) -> np.ndarray:
    """`estimator.predict_proba(features)[:, 1]`, computed the way sklearn computes it (each
    fold's calibrator on its trees' decision function, then the mean over the folds) without
    the label checks sklearn repeats on every call: they were more than half of a live
    prediction's time (one row of a 3-fold model: 2.6 ms, now 1.2). test_models checks that the
    two agree exactly."""
    _one_openmp_thread()
    values = np.asarray(features, dtype="float64")
    total = np.zeros(len(values))
    for fold in estimator.calibrated_classifiers_:
        # Binary labels (0, 1): sklearn calibrates the decision function of the second class.
        [calibrator] = fold.calibrators
        win = calibrator.predict(fold.estimator.decision_function(values))
        win[(win > 1.0) & (win <= 1.0 + 1e-5)] = 1.0  # as sklearn rounds a hair above 1
        total += win
    return total / len(estimator.calibrated_classifiers_)


def fit(
    frame: pd.DataFrame,
    timeframe: TimeframeSettings,
    seed: int = 0,
    explain: bool = True,
    workers: int = 1,
) -> TrainedModel | Insufficient:
    """Train and evaluate on `frame` (one row per bar, oldest first); with `explain`, also the
    permutation importances the model's page shows (a fifth of the fit's time, so the lab,
    whose models nobody looks at, skips them). With `workers` > 1 the hold-out and the final
    model are fitted side by side in two processes (for a caller with idle cores: the same
    models, in two thirds of the time; threads would be slower than one, as the trees' Python
    holds the GIL).

    `frame` columns: ts, target_ts, label (1 long wins / 0), pnl_long, pnl_short (percent,
    NaN if unknown) and the features. Rows with any missing feature (warm-up) are dropped.
    """
    rows = frame.dropna(subset=[*FEATURE_NAMES, "label"]).reset_index(drop=True)
    if len(rows) < timeframe.min_rows:
        return Insufficient(len(rows), timeframe.min_rows)
    if rows["label"].nunique() < 2:
        return Insufficient(
            len(rows), timeframe.min_rows, "insufficient data: every labelled outcome is the same"
        )
    train_part, eval_part = split_for_evaluation(rows)
    if len(train_part) < timeframe.min_rows // 2 or train_part["label"].nunique() < 2:
        return Insufficient(
            len(rows),
            timeframe.min_rows,
            "insufficient data: too few rows before the evaluation slice",
        )
    try:
        holdout_model, final = _calibrated_both(train_part, rows, seed, workers)
    except (ValueError, IndexError):  # a time-series fold saw outcomes of one kind only
        return Insufficient(
            len(rows),
            timeframe.min_rows,
            "insufficient data: a training "
            "fold holds only wins or only losses; more history is needed",
        )
    holdout = predict_win_probability(holdout_model, eval_part[list(FEATURE_NAMES)])
    metrics = evaluate(holdout, eval_part, timeframe)
    metrics.update(
        train_rows=len(train_part),
        eval_rows=len(eval_part),
        eval_start=eval_part["ts"].iloc[0].isoformat(),
    )
    importances = _importances(holdout_model, eval_part, seed) if explain else {}
    return TrainedModel(
        estimator=final,
        features=FEATURE_NAMES,
        rows=len(rows),
        window_start=rows["ts"].iloc[0],
        window_end=rows["ts"].iloc[-1],
        metrics=metrics,
        importances=importances,
        params={
            **MODEL_PARAMS,
            "calibration": _method(len(rows)),
            "cv_splits": CV_SPLITS,
            "cv_purge": "target_ts",
            "seed": seed,
        },
        holdout=pd.Series(holdout, index=pd.DatetimeIndex(eval_part["ts"]), name="probability"),
    )


def split_for_evaluation(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The most recent slice for evaluation, and the older rows whose labels were known
    before that slice began (the purge that keeps the evaluation out of sample)."""
    eval_rows = max(MIN_EVAL_ROWS, int(len(rows) * EVAL_FRACTION))
    eval_part = rows.iloc[-eval_rows:].reset_index(drop=True)
    eval_start = eval_part["ts"].iloc[0]
    older = rows.iloc[:-eval_rows]
    return older[older["target_ts"] <= eval_start].reset_index(drop=True), eval_part


def evaluate(probability: np.ndarray, rows: pd.DataFrame, timeframe: TimeframeSettings) -> dict:
    """Probability quality and the signal rule's trading result of predictions on `rows`."""
    labels = rows["label"].to_numpy()
    scores = probability_scores(labels, probability)
    scores.update(signal_results(probability, rows, timeframe))
    return scores


def probability_scores(labels: np.ndarray, probability: np.ndarray) -> dict:
    both_classes = len(np.unique(labels)) == 2
    clipped = np.clip(probability, 1e-6, 1 - 1e-6)
    return {
        "roc_auc": float(roc_auc_score(labels, probability)) if both_classes else None,
        "brier": float(brier_score_loss(labels, probability)),
        "log_loss": float(log_loss(labels, clipped, labels=[0, 1])),
        **calibration(labels, probability),
        "base_rate": float(labels.mean()),
        "eval_positives": int(labels.sum()),  # for the AUC's interval (metrics.edge_verdict)
        "eval_negatives": int(len(labels) - labels.sum()),
    }


def calibration(labels: np.ndarray, probability: np.ndarray) -> dict:
    """How well predicted probabilities match outcomes: the expected calibration error over the
    reliability bins, the bins, and how many predictions they hold. The same figures at
    training time (the hold-out slice) and live (the serving model's resolved predictions)."""
    labels, probability = np.asarray(labels, dtype=float), np.asarray(probability, dtype=float)
    bins = reliability_bins(labels, probability)
    return {
        "ece": expected_calibration_error(bins, len(labels)),
        "reliability": bins,
        "predictions": len(labels),
    }


def reliability_bins(labels: np.ndarray, probability: np.ndarray) -> list[dict]:
    """Equal-width probability bins: mean prediction, observed frequency, count."""
    edges = np.linspace(0, 1, RELIABILITY_BINS + 1)
    which = np.clip(np.digitize(probability, edges[1:-1]), 0, RELIABILITY_BINS - 1)
    bins = []
    for index in range(RELIABILITY_BINS):
        inside = which == index
        if inside.any():
            bins.append(
                {
                    "low": float(edges[index]),
                    "high": float(edges[index + 1]),
                    "mean_predicted": float(probability[inside].mean()),
                    "observed": float(labels[inside].mean()),
                    "count": int(inside.sum()),
                }
            )
    return bins


def expected_calibration_error(bins: list[dict], total: int) -> float:
    return float(
        sum(b["count"] * abs(b["mean_predicted"] - b["observed"]) for b in bins) / max(total, 1)
    )


def signal_results(
    probability: np.ndarray, rows: pd.DataFrame, timeframe: TimeframeSettings
) -> dict:
    """What the entry rule would have earned on these rows (every qualifying bar a trade)."""
    long = probability >= timeframe.entry_threshold
    short = 1 - probability >= timeframe.entry_threshold  # as signals.direction_for
    pnl = np.concatenate([rows["pnl_long"].to_numpy()[long], rows["pnl_short"].to_numpy()[short]])
    pnl = pnl[~np.isnan(pnl)]
    return {
        "signal_trades": len(pnl),
        "signal_win_rate": trade_metrics.win_rate(pnl),
        "signal_profit_factor": trade_metrics.profit_factor(pnl),
        "signal_expectancy_pct": trade_metrics.expectancy(pnl),
    }


def _method(rows: int) -> str:
    return "isotonic" if rows >= ISOTONIC_FROM_ROWS else "sigmoid"


def _calibrated_both(train_part: pd.DataFrame, rows: pd.DataFrame, seed: int, workers: int):
    if workers < 2:
        return calibrated(train_part, seed), calibrated(rows, seed)
    # loky named: inside a lab part's worker joblib would otherwise pick threads
    return tuple(
        joblib.Parallel(n_jobs=2, backend="loky")(
            joblib.delayed(calibrated)(x, seed) for x in (train_part, rows)
        )
    )


def calibrated(
    rows: pd.DataFrame, seed: int, params: dict = MODEL_PARAMS
) -> CalibratedClassifierCV:
    """The boosted trees (`params`: MODEL_PARAMS unless bench/bench_model.py tries others)
    calibrated on `purged_folds` of `rows` (oldest first)."""
    _one_openmp_thread()
    base = HistGradientBoostingClassifier(**params, random_state=seed)
    model = CalibratedClassifierCV(base, method=_method(len(rows)), cv=purged_folds(rows))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(
            rows[list(FEATURE_NAMES)].to_numpy(dtype="float64"),
            rows["label"].to_numpy(dtype="int64"),
        )
    return model


def purged_folds(
    rows: pd.DataFrame, splits: int = CV_SPLITS
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Time-series folds (train, validation positions) whose training rows all had their label
    known (`target_ts`) when the fold's validation began: the validation blocks are sklearn's
    TimeSeriesSplit's, the purge is by time, not by a count of rows. On one timeframe it drops
    at most the `horizon_bars` rows TimeSeriesSplit(gap=horizon_bars) drops (only those whose
    outcome was still open), and in a pooled frame a 1d row is purged by its 10 days while a 5m
    row beside it is purged by its hour."""
    size = len(rows) // (splits + 1)
    ts = rows["ts"].to_numpy(dtype="datetime64[ns]")
    known = rows["target_ts"].to_numpy(dtype="datetime64[ns]")
    folds = []
    for start in len(rows) - size * np.arange(splits, 0, -1):
        train = np.flatnonzero(known[:start] <= ts[start])
        folds.append((train, np.arange(start, start + size)))
    return folds


def _importances(estimator, rows: pd.DataFrame, seed: int, repeats: int = 3) -> dict[str, float]:
    """Permutation importance on the evaluation slice: how much the Brier score worsens when
    one feature's values are shuffled. All shuffled copies go through one predict call, which
    is many times faster than sklearn's per-feature loop for these small slices."""
    values, labels = rows[list(FEATURE_NAMES)].to_numpy(dtype="float64"), rows["label"].to_numpy()
    if len(np.unique(labels)) < 2:
        return {}
    rng = np.random.default_rng(seed)
    n, width = values.shape
    shuffled = np.repeat(values[None], width * repeats, axis=0)
    for copy in range(width * repeats):
        column = copy // repeats
        shuffled[copy, :, column] = values[rng.permutation(n), column]
    predicted = predict_win_probability(estimator, shuffled.reshape(-1, width)).reshape(-1, n)
    worse = ((predicted - labels) ** 2).mean(axis=1).reshape(width, repeats).mean(axis=1)
    baseline = np.mean((predict_win_probability(estimator, values) - labels) ** 2)
    ranked = sorted(zip(FEATURE_NAMES, worse - baseline, strict=True), key=lambda item: -item[1])
    return {name: float(value) for name, value in ranked}
