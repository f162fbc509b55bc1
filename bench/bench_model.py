"""Evidence for the model's settings: whether cheaper boosted trees predict as well out of
sample as models.MODEL_PARAMS on the shared real data, and how much faster they fit.

The series, origins and blocks are bench_window's, each timeframe trains on its own window
(config.SEED_TIMEFRAMES train_rows), and every candidate is trained as the product trains
(`models.calibrated` on `snapshots.as_of_view`) at the same origins and scored on the same
blocks. Per candidate, over every block of every series: the mean paired difference to the
current settings in ROC AUC, Brier score and the entry rule's expectancy per trade, each with a
bootstrap interval over the blocks, and the median fit time of a window.

The rule, fixed before the first run: a candidate replaces MODEL_PARAMS only when it is not
worse by a margin that matters, the lower end of its AUC difference's 95% interval above
-AUC_MARGIN and the upper end of its Brier difference's below BRIER_MARGIN; of those, the
fastest.

    python -m bench.bench_model [--quick]     # the table (the full run: about a minute, 1 core)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from alpha12 import models, snapshots
from alpha12.config import Settings
from bench.bench_window import SERIES, blocks, labelled_rows, out_of_sample
from bench.timing import row

CANDIDATES = {
    "current": models.MODEL_PARAMS,
    "63 bins, 80 steps of 0.08": {**models.MODEL_PARAMS, "max_iter": 80, "learning_rate": 0.08},
    "before: 255 bins, 80 steps of 0.08": {
        **models.MODEL_PARAMS,
        "max_bins": 255,
        "max_iter": 80,
        "learning_rate": 0.08,
    },
}
ORIGINS = 16
AUC_MARGIN = 0.005
BRIER_MARGIN = 0.001
N_BOOT = 2000


def run(quick: bool = False) -> list[dict]:
    """`make bench`'s rows: per candidate, its fit time against the current settings' (same
    run, same windows) and its paired AUC difference."""
    scores = measure(quick)
    table = compare(scores)
    current = table.loc["current", "fit_s"]
    return [
        row(
            f"model: {name} (AUC {c.auc_diff:+.4f} [{c.auc_low:+.4f}, {c.auc_high:+.4f}], "
            f"Brier {c.brier_diff:+.5f} vs current); reference current",
            c.fit_s,
            "s per fit",
            f"adopted only when AUC low > -{AUC_MARGIN} and Brier high < {BRIER_MARGIN}",
            reference=current,
        )
        for name, c in table.drop(index="current").iterrows()
    ]


def measure(quick: bool = False) -> pd.DataFrame:
    """One row per series, origin and candidate: the block's scores and the fit's seconds."""
    scored = []
    for asset, pattern, intervals in SERIES:
        for interval in intervals:
            started = time.perf_counter()
            history = labelled_rows(pattern, asset, interval, quick)
            scored += score_series(history, f"{asset} {interval}", interval, quick)
            print(f"  {asset} {interval}: {time.perf_counter() - started:.0f} s", flush=True)
    return pd.DataFrame(scored)


def score_series(history: pd.DataFrame, series: str, interval: str, quick: bool) -> list[dict]:
    timeframe = Settings().timeframe(interval)
    scored = []
    origins = blocks(history, timeframe.train_rows, timeframe, 3 if quick else ORIGINS)
    for origin, (as_of, ahead) in enumerate(origins):
        view = snapshots.as_of_view(history, as_of, timeframe.train_rows)
        for name, params in CANDIDATES.items():
            scores = out_of_sample(view, ahead, timeframe, params)
            scored.append({"series": series, "origin": origin, "candidate": name, **scores})
    return scored


def compare(scores: pd.DataFrame) -> pd.DataFrame:
    """Per candidate: the median fit seconds and the mean paired differences to `current` over
    the blocks every candidate scored, with 95% bootstrap intervals."""
    names = scores["candidate"].unique()
    wide = scores.pivot_table(index=["series", "origin"], columns="candidate")
    wide = wide.dropna(subset=[("auc", name) for name in names])
    rows = {}
    for name in names:
        rows[name] = {"fit_s": wide[("fit_s", name)].median(), "blocks": len(wide)}
        for metric in ("auc", "brier", "expectancy_pct"):
            diff = (wide[(metric, name)] - wide[(metric, "current")]).to_numpy()
            mean, low, high = _bootstrap_mean(diff[~np.isnan(diff)])
            rows[name] |= {f"{metric}_diff": mean, f"{metric}_low": low, f"{metric}_high": high}
    return pd.DataFrame.from_dict(rows, orient="index")


def _bootstrap_mean(values: np.ndarray) -> tuple[float, float, float]:
    """The mean and its 95% percentile-bootstrap interval (blocks are months apart, so drawn
    one by one)."""
    draws = np.random.default_rng(0).choice(values, size=(N_BOOT, len(values)))
    low, high = np.percentile(draws.mean(axis=1), [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def adopted(table: pd.DataFrame) -> str:
    """The rule of the docstring: the fastest candidate not worse by a margin that matters."""
    fit = table[(table["auc_low"] > -AUC_MARGIN) & (table["brier_high"] < BRIER_MARGIN)]
    return fit["fit_s"].idxmin()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 origins, less history")
    args = parser.parse_args()
    started = time.perf_counter()
    scores = measure(args.quick)
    per_series = scores.groupby(["series", "candidate"])[["auc", "brier", "fit_s"]].median()
    print(f"\nper series (median over origins):\n{per_series.to_string(float_format=_f)}")
    table = compare(scores)
    print("\nagainst current (mean paired difference, 95% bootstrap interval):")
    print(table.to_string(float_format=_f))
    print(f"\nadopted by the rule: {adopted(table)}")
    print(f"\n{time.perf_counter() - started:.0f} s")


def _f(value: float) -> str:
    return f"{value:.4f}"


if __name__ == "__main__":
    main()
