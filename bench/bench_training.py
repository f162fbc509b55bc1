"""Benchmark: training one calibrated model on 10k labelled rows of the synthetic market."""

import pandas as pd

from alpha12 import analysis, features, models
from alpha12.config import Settings
from alpha12.sources.synthetic import SyntheticMarket
from bench.timing import best_seconds, row


def training_frame(rows: int) -> pd.DataFrame:
    """`rows` labelled 5m rows with both directions' outcomes, as models.fit expects."""
    settings = Settings()
    days = (rows + features.WARMUP_BARS) // 288 + 2
    bars = SyntheticMarket(12, pd.Timestamp("2025-01-01", tz="UTC")).base_bars("BTC", days)
    table = analysis.snapshot_rows(bars, "5m", settings)
    short = analysis.outcomes(
        bars, "5m", settings.timeframe("5m"), settings.round_trip_cost_bps, direction=-1
    )
    frame = table.rename(columns={"target": "label", "pnl_pct": "pnl_long"})
    frame["pnl_short"] = short["pnl_pct"].to_numpy()
    return frame.dropna(subset=["label", *features.FEATURE_NAMES]).iloc[-rows:]


def run(quick: bool = False) -> list[dict]:
    rows = 2_000 if quick else 10_000
    frame = training_frame(rows)
    timeframe = Settings().timeframe("5m")
    seconds = best_seconds(lambda: models.fit(frame, timeframe), 1 if quick else 2)
    return [
        row(
            f"training: one calibrated model on {rows:,} rows (fit + evaluation)",
            seconds,
            "s",
            "informative",
        )
    ]
