"""Evidence for the training window: how many of the newest labelled rows a model should train
on, per timeframe, judged out of sample on the shared real data.

For each series (BTC/USDT 2024-26 at 5m, 15m, 1h, 4h and 1d, the newest 120 days at 5m; ETH/USDT
2017-20 at 1h and 1d) and each candidate window, a model is trained as the product trains one
(`models.calibrated` on `snapshots.as_of_view`: only labels known at the origin) at ORIGINS
origins spread evenly over the history, and scored on the block of bars that follows each origin
(the next BLOCK_BARS bars, at most BLOCK_DAYS of market time): ROC AUC, Brier score and the
entry rule's expectancy per trade. The same origins serve every window of a series, so the
windows are compared on the same bars. A window is tried when the series holds it and two
blocks more.

    python -m bench.bench_window [--quick]     # the table (the full run: about 10 min, 1 core)

The rule that chose `train_rows` in config.SEED_TIMEFRAMES: per timeframe (both markets' origins
together), the window with the largest median AUC; a window whose median AUC lies within one
standard error of that median counts as tied, and a tie goes to the shorter window (it follows
the current regime and trains faster).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from alpha12 import cycle, models, snapshots, training
from alpha12.config import Settings
from alpha12.features import FEATURE_NAMES
from alpha12.sources.csv_files import read_bar_file
from alpha12.store import Store
from bench.timing import row

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SERIES = (  # (asset, file pattern, intervals)
    ("BTC", DATA / "btcusdt" / "BTCUSDT_{}.csv", ("5m", "15m", "1h", "4h", "1d")),
    ("ETH", DATA / "ethusdt-2017-2020" / "ETHUSDT_{}.csv", ("1h", "1d")),
)
# Not 100: its calibration folds hold under 80 rows, too few for one split of the trees'
# 40-row leaves, so every model predicted a constant (AUC exactly 0.500 at every origin).
WINDOWS = (250, 500, 1000, 2000, 5000, 10000)
ORIGINS = 8
BLOCK_BARS = 500
BLOCK_DAYS = 90  # a 1d block is three months, not 500 days
RECENT_DAYS = {"5m": 120}  # 5m: only the newest days, to keep the run short
MEDIAN_SE = 1.2533  # the standard error of a median is about 1.2533 sd / sqrt(n)
QUICK = {"windows": (500, 1000, 5000), "origins": 3, "days": 30}


def run(quick: bool = False) -> list[dict]:
    """`make bench`'s rows: per timeframe, the chosen window and its median OOS AUC."""
    if not DATA.exists():
        return [row(f"window: skipped, {DATA} not found", float("nan"), "AUC", "")]
    scores = measure(quick)
    chosen = choose(summary(scores, ["interval", "window"]))
    return [
        row(
            f"window: {c.interval} trains on {c.window:,} rows (median OOS AUC over "
            f"{c.origins} origins, IQR {c.auc_q25:.3f}-{c.auc_q75:.3f})",
            c.auc,
            "AUC",
            "largest median AUC, within 1 se -> shorter",
        )
        for c in chosen.itertuples()
    ]


def measure(quick: bool = False) -> pd.DataFrame:
    """One row per series, window and origin: the block's AUC, Brier and expectancy."""
    windows = QUICK["windows"] if quick else WINDOWS
    origins = QUICK["origins"] if quick else ORIGINS
    scored = []
    for asset, pattern, intervals in SERIES:
        for interval in intervals:
            history = labelled_rows(pattern, asset, interval, quick)
            started = time.perf_counter()
            scored += score_series(history, asset, interval, windows, origins)
            print(
                f"  {asset} {interval}: {len(history):,} rows, "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
    return pd.DataFrame(scored)


def labelled_rows(pattern: Path, asset: str, interval: str, quick: bool) -> pd.DataFrame:
    """The series' labelled snapshots as the product computes and stores them (a scratch
    store, the backfill, `training.labelled_history`), warm-up rows dropped."""
    bars = read_bar_file(Path(str(pattern).format(interval)), interval).bars
    days = QUICK["days"] * (1 if interval in ("5m", "15m") else 12) if quick else None
    days = days or RECENT_DAYS.get(interval)
    if days:
        bars = bars[bars["ts"] >= bars["ts"].iloc[-1] - pd.Timedelta(days=days)]
    settings = Settings()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "window.duckdb")
        try:
            store.upsert_bars(asset, interval, bars.reset_index(drop=True))
            cycle.backfill_pair(store, settings, asset, interval)
            history = training.labelled_history(store, settings, asset, interval)
        finally:
            store.close()
    return history.dropna(subset=list(FEATURE_NAMES)).reset_index(drop=True)


def score_series(history, asset, interval, windows, origins) -> list[dict]:
    timeframe = Settings().timeframe(interval)
    block = block_bars(history)
    tried = [w for w in windows if w + 2 * block <= len(history)]
    if not tried:
        return []
    scored = []
    for as_of, ahead in blocks(history, max(tried), timeframe, origins):
        for window in tried:
            scores = out_of_sample(snapshots.as_of_view(history, as_of, window), ahead, timeframe)
            scored.append(
                {"series": f"{asset} {interval}", "interval": interval, "window": window, **scores}
            )
    return scored


def block_bars(history: pd.DataFrame) -> int:
    """The bars scored after each origin: BLOCK_BARS, at most BLOCK_DAYS of market time."""
    step = pd.Timedelta(days=BLOCK_DAYS) / (history["ts"].iloc[1] - history["ts"].iloc[0])
    return int(min(BLOCK_BARS, step))


def blocks(history: pd.DataFrame, window: int, timeframe, origins: int):
    """(origin time, the block of rows after it) at `origins` origins spread evenly over the
    history, the first late enough for a full `window` of labels known at it; none when the
    history is too short for that."""
    block = block_bars(history)
    first = window + timeframe.horizon_bars + 1
    if first > len(history) - block:
        return
    for at in np.linspace(first, len(history) - block, origins).astype(int):
        yield history["ts"].iloc[at], history.iloc[at : at + block]


def out_of_sample(
    view: pd.DataFrame, ahead: pd.DataFrame, timeframe, params: dict = models.MODEL_PARAMS
) -> dict:
    """A model (trees of `params`) trained on `view`, scored on `ahead`, with its fit's
    seconds; NaN scores when a calibration fold held outcomes of one kind only (models.fit
    calls that too little data, so it counts as a failed fit, not as a score)."""
    started = time.perf_counter()
    try:
        model = models.calibrated(view, seed=0, params=params)
    except (ValueError, IndexError):
        return {"auc": np.nan, "brier": np.nan, "expectancy_pct": np.nan, "trades": 0}
    fit_s = time.perf_counter() - started
    probability = models.predict_win_probability(model, ahead[list(FEATURE_NAMES)])
    scores = models.evaluate(probability, ahead, timeframe)
    return {
        "fit_s": fit_s,
        "auc": scores["roc_auc"],
        "brier": scores["brier"],
        "expectancy_pct": scores["signal_expectancy_pct"],
        "trades": scores["signal_trades"],
    }


def summary(scores: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Median and quartiles of the AUC, median Brier and expectancy, per `by`."""
    grouped = scores.groupby(by, sort=True)
    return grouped.agg(
        origins=("auc", "count"),  # origins whose fit succeeded
        auc=("auc", "median"),
        auc_q25=("auc", lambda a: a.quantile(0.25)),
        auc_q75=("auc", lambda a: a.quantile(0.75)),
        auc_se=("auc", lambda a: MEDIAN_SE * a.std() / np.sqrt(a.count())),
        brier=("brier", "median"),
        expectancy_pct=("expectancy_pct", "median"),
        trades=("trades", "median"),
    ).reset_index()


def choose(table: pd.DataFrame) -> pd.DataFrame:
    """Per interval: the shortest window whose median AUC is within one standard error of the
    best median AUC."""
    best = table.loc[table.groupby("interval")["auc"].idxmax()].set_index("interval")
    floor = (best["auc"] - best["auc_se"]).reindex(table["interval"]).to_numpy()
    tied = table[table["auc"] >= floor]
    return tied.sort_values("window").groupby("interval", sort=False).head(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 windows, 3 origins, less history")
    args = parser.parse_args()
    started = time.perf_counter()
    scores = measure(args.quick)
    per_timeframe = summary(scores, ["interval", "window"])
    _show("per series (median over origins; AUC quartiles)", summary(scores, ["series", "window"]))
    _show("per timeframe (both markets' origins together)", per_timeframe)
    _show(
        "chosen (largest median AUC; within its standard error counts as tied, tie -> shorter)",
        choose(per_timeframe)[["interval", "window", "auc"]],
    )
    print(f"\n{time.perf_counter() - started:.0f} s")


def _show(title: str, table: pd.DataFrame) -> None:
    print(f"\n{title}:\n{table.to_string(index=False, float_format='{:.3f}'.format)}")


if __name__ == "__main__":
    main()
