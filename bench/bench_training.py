"""Benchmark: training one calibrated model on 10k labelled rows of the synthetic market, and a
burst of 100 retrains (the product's 1000-row windows) fanned out over the local cores, against
the same 100 trained one after another."""

import dataclasses

import pandas as pd

from alpha12 import features, models, snapshots, training
from alpha12.config import Settings
from alpha12.sources.synthetic import SyntheticMarket
from bench.timing import best_seconds, row


def training_frame(rows: int) -> pd.DataFrame:
    """`rows` labelled 5m rows with both directions' outcomes, as models.fit expects."""
    settings = Settings()
    days = (rows + features.WARMUP_BARS) // 288 + 2
    bars = SyntheticMarket(12, pd.Timestamp("2025-01-01", tz="UTC")).base_bars("BTC", days)
    table = snapshots.snapshot_rows(bars, "5m", settings)
    short = snapshots.outcomes(
        bars, "5m", settings.timeframe("5m"), settings.round_trip_cost_bps, direction=-1
    )
    frame = table.rename(columns={"target": "label", "pnl_pct": "pnl_long"})
    frame["pnl_short"] = short["pnl_pct"].to_numpy()
    return frame.dropna(subset=["label", *features.FEATURE_NAMES]).iloc[-rows:]


def run(quick: bool = False) -> list[dict]:
    rows, burst = (2_000, 20) if quick else (10_000, 100)
    frame = training_frame(rows)
    timeframe = Settings().timeframe("5m")
    one = best_seconds(lambda: models.fit(frame, timeframe), 1 if quick else 2)
    return [
        row(
            f"training: one calibrated model on {rows:,} rows (fit + evaluation)",
            one,
            "s",
            "informative",
        ),
        *retrain_burst(frame, timeframe, burst),
    ]


def retrain_burst(frame: pd.DataFrame, timeframe, burst: int) -> list[dict]:
    """`burst` retrains of 1000-row windows: through training.fit_many (n_jobs = the cores), and
    the reference, the same fits one after another in this process."""
    windows = [
        (frame.iloc[i * 50 : i * 50 + snapshots.MAX_TRAIN_ROWS], timeframe) for i in range(burst)
    ]
    settings = dataclasses.replace(Settings(), n_jobs=2)
    parallel = best_seconds(lambda: training.fit_many(windows, settings), 1)
    sequential = best_seconds(lambda: [models.fit(f, t) for f, t in windows], 1)
    return [
        row(
            f"training: burst of {burst} retrains on the 2 local cores (fit_many)",
            parallel,
            "s",
            "ratio ~0.5 (2 cores)",
            reference=sequential,
        )
    ]
