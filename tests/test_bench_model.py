"""The model-settings study (bench/bench_model.py): its paired comparison and its rule, and the
out-of-sample scoring it shares with the training-window study."""

import numpy as np
import pandas as pd

from alpha12 import models, snapshots
from alpha12.config import Settings
from bench import bench_model
from bench.bench_training import training_frame
from bench.bench_window import blocks, out_of_sample


def scores_of(candidates: dict[str, tuple[float, float, float]], blocks_: int) -> pd.DataFrame:
    """A score table: each candidate's AUC and Brier shifted by a constant from a common
    per-block noise, at a constant fit time."""
    rng = np.random.default_rng(3)
    auc, brier = rng.normal(0.52, 0.03, blocks_), rng.normal(0.25, 0.01, blocks_)
    return pd.DataFrame(
        [
            {
                "series": f"S {b % 2}",
                "origin": b,
                "candidate": name,
                "auc": auc[b] + d_auc,
                "brier": brier[b] + d_brier,
                "expectancy_pct": 0.0,
                "fit_s": fit_s,
            }
            for name, (d_auc, d_brier, fit_s) in candidates.items()
            for b in range(blocks_)
        ]
    )


def test_the_comparison_is_paired_by_block_and_the_rule_takes_the_fastest_not_worse():
    candidates = {
        "current": (0.0, 0.0, 0.20),
        "cheap, as good": (0.001, -0.0005, 0.10),
        "cheaper, worse AUC": (-0.02, 0.0, 0.05),
        "cheapest, worse Brier": (0.0, 0.004, 0.02),
    }
    table = bench_model.compare(scores_of(candidates, 40))
    for name, (d_auc, d_brier, fit_s) in candidates.items():
        # A constant shift on common noise: the paired difference is exact, its interval nil.
        assert np.isclose(table.loc[name, "auc_diff"], d_auc)
        assert np.isclose(table.loc[name, "auc_low"], d_auc)
        assert np.isclose(table.loc[name, "brier_high"], d_brier)
        assert table.loc[name, "fit_s"] == fit_s
    assert bench_model.adopted(table) == "cheap, as good"


def test_a_noisy_difference_gets_an_interval_around_its_mean():
    scores = scores_of({"current": (0, 0, 1), "other": (0, 0, 1)}, 60)
    other = scores["candidate"] == "other"
    scores.loc[other, "auc"] += np.random.default_rng(5).normal(0, 0.01, other.sum())
    row = bench_model.compare(scores).loc["other"]
    assert row["auc_low"] < row["auc_diff"] < row["auc_high"]
    assert row["auc_high"] - row["auc_low"] < 0.01  # about 4 standard errors of 0.0013


def test_out_of_sample_scores_a_model_trained_as_of_an_origin_on_the_block_after_it():
    history = training_frame(3_000).reset_index(drop=True)
    history["short_target_ts"] = history["target_ts"]
    timeframe = Settings().timeframe("5m")
    origins = list(blocks(history, timeframe.train_rows, timeframe, 2))
    assert len(origins) == 2
    for as_of, ahead in origins:
        view = snapshots.as_of_view(history, as_of, timeframe.train_rows)
        assert (view["target_ts"] <= as_of).all() and (ahead["ts"] >= as_of).all()
        scores = out_of_sample(view, ahead, timeframe, models.MODEL_PARAMS)
        assert 0 < scores["auc"] < 1 and 0 < scores["brier"] < 1 and scores["fit_s"] > 0
