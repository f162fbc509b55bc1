"""Statistics of lab runs, pure functions of their closed trades.

A run's trades are a frame with ts (the entry bar's open time), exit_ts, r_multiple and
pnl_pct. Intervals are seeded percentile bootstraps (Efron 1979), so the same runs always give
the same table. The comparison with `never` is paired: both policies traded the same bars, so
the same resampled blocks of bars are drawn for both (a moving-block bootstrap, Künsch 1989,
which keeps the serial dependence of overlapping trades within a block).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alpha12 import metrics

N_BOOT = 2000
CONFIDENCE = 0.95
BASELINE = "never"
COLUMNS = [
    "asset",
    "interval",
    "policy",
    "params",
    "trades",
    "win_rate",
    "profit_factor",
    "expectancy_r",
    "total_r",
    "max_drawdown_r",
    "retrains",
    "promotions",
    "seconds",
    "expectancy_r_low",
    "expectancy_r_high",
    "win_rate_low",
    "win_rate_high",
    "profit_factor_low",
    "profit_factor_high",
    "diff_expectancy_r",
    "diff_low",
    "diff_high",
    "regret_r",
]


def run_metrics(trades: pd.DataFrame) -> dict:
    """Headline numbers of one run; its drawdown follows the trades in the order they closed."""
    ordered = trades.sort_values("exit_ts", kind="stable")
    r = ordered["r_multiple"].to_numpy(dtype=float)
    pnl = ordered["pnl_pct"].to_numpy(dtype=float)
    return {
        "trades": len(ordered),
        "win_rate": metrics.win_rate(pnl),
        "profit_factor": metrics.profit_factor(pnl),
        "expectancy_r": metrics.average_r(r),
        "total_r": float(r.sum()),
        "max_drawdown_r": metrics.max_drawdown_r(r),
    }


def trade_intervals(trades: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Percentile bootstrap intervals of win rate, profit factor and expectancy in R, trades
    resampled with replacement (NaN with fewer than 2 trades)."""
    pnl = trades["pnl_pct"].to_numpy(dtype=float)
    r = trades["r_multiple"].to_numpy(dtype=float)
    pf_low, pf_high = metrics.bootstrap_profit_factor_interval(pnl, n_boot, CONFIDENCE, seed)
    if len(r) < 2:
        win_rate, expectancy = (math.nan, math.nan), (math.nan, math.nan)
    else:
        draws = np.random.default_rng(seed).integers(0, len(r), size=(n_boot, len(r)))
        win_rate = _percentiles((pnl[draws] > 0).mean(axis=1))
        expectancy = _percentiles(r[draws].mean(axis=1))
    return {
        "expectancy_r_low": expectancy[0],
        "expectancy_r_high": expectancy[1],
        "win_rate_low": win_rate[0],
        "win_rate_high": win_rate[1],
        "profit_factor_low": pf_low,
        "profit_factor_high": pf_high,
    }


def per_bar(trades: pd.DataFrame, bar_ts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """R and count of trades by the walked bar they opened on."""
    at = np.searchsorted(bar_ts.to_numpy(), trades["ts"].to_numpy())
    r = np.bincount(at, weights=trades["r_multiple"].to_numpy(dtype=float), minlength=len(bar_ts))
    return r, np.bincount(at, minlength=len(bar_ts)).astype(float)


def paired_block_diff(
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    block: int,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Expectancy in R of run a minus run b (each a per_bar pair over the same bars), with a
    moving-block bootstrap interval: the same blocks of bars are drawn for both runs."""
    bars = len(a[0])
    block = max(1, min(block, bars))
    starts = np.random.default_rng(seed).integers(
        0, bars - block + 1, size=(n_boot, math.ceil(bars / block))
    )

    def expectancy(r: np.ndarray, n: np.ndarray) -> np.ndarray:
        sums = [np.concatenate([[0.0], np.cumsum(x)]) for x in (r, n)]
        r_sum, n_sum = ((s[starts + block] - s[starts]).sum(axis=1) for s in sums)
        with np.errstate(invalid="ignore", divide="ignore"):
            return r_sum / n_sum

    with np.errstate(invalid="ignore", divide="ignore"):
        point = a[0].sum() / a[1].sum() - b[0].sum() / b[1].sum()
    resampled = expectancy(*a) - expectancy(*b)
    low, high = _percentiles(resampled[~np.isnan(resampled)])
    return float(point), low, high


def equity(trades: pd.DataFrame) -> pd.DataFrame:
    """The run's equity curve in R: cumulative R at each trade's exit."""
    ordered = trades.sort_values("exit_ts", kind="stable")
    return pd.DataFrame(
        {"exit_ts": ordered["exit_ts"].to_numpy(), "cum_r": ordered["r_multiple"].cumsum()}
    ).reset_index(drop=True)


def pair_rows(
    asset: str,
    interval: str,
    runs: dict[str, dict],
    bar_ts: pd.Series,
    block: int,
    oracle_total_r: float | None,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> list[dict]:
    """One table row per policy run of a pair. `runs[name]` holds params, trades, retrains,
    promotions and seconds; `bar_ts` are the walked bars (the same for every run)."""
    bars = {name: per_bar(run["trades"], bar_ts) for name, run in runs.items()}
    rows = []
    for name, run in runs.items():
        row = {
            "asset": asset,
            "interval": interval,
            "policy": name,
            "params": run["params"],
            **run_metrics(run["trades"]),
            "retrains": run["retrains"],
            "promotions": run["promotions"],
            "seconds": run["seconds"],
            **trade_intervals(run["trades"], n_boot, seed),
        }
        diff = (math.nan,) * 3
        if BASELINE in bars:
            diff = paired_block_diff(bars[name], bars[BASELINE], block, n_boot, seed)
        row["diff_expectancy_r"], row["diff_low"], row["diff_high"] = diff
        row["regret_r"] = math.nan if oracle_total_r is None else oracle_total_r - row["total_r"]
        rows.append(row)
    return rows


def table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


def verdict(rows: pd.DataFrame) -> str:
    """One plain sentence on a pair's rows: which policy earned the most R, and whether its
    expectancy differs from `never`'s beyond the noise (its interval excludes 0)."""
    if rows.empty:
        return "no policy ran"
    best = rows.loc[rows["total_r"].idxmax()]
    lead = (
        f"{best['asset']} {best['interval']}: {best['policy']} did best, "
        f"{best['total_r']:+.1f} R over {best['trades']} trades"
    )
    if best["policy"] == BASELINE or math.isnan(best["diff_low"]):
        return lead + "."
    distinct = best["diff_low"] > 0 or best["diff_high"] < 0
    return (
        f"{lead}; its expectancy differs from never's by {best['diff_expectancy_r']:+.3f} R "
        f"per trade [{best['diff_low']:+.3f}, {best['diff_high']:+.3f}], "
        + ("distinguishable from zero." if distinct else "not distinguishable from zero.")
    )


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return math.nan, math.nan
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(values, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)
