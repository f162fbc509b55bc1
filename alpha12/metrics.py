"""Performance metrics of a list of closed trades: pure functions of their pnl and R multiples,
and the per-timeframe and rolling views of them the pages chart.

Inputs are array-likes of per-trade values; NaN entries (trades not resolved yet) are ignored,
so a label frame's pnl column can be passed as it is.
"""

import math
from functools import lru_cache

import numpy as np
import pandas as pd

from alpha12.vocabulary import PairStatus

WILSON_Z_95 = 1.959963984540054
# Resamples per point of the rolling profit-factor band: one interval per closed trade, so
# fewer than the headline interval's 2000 (its bounds move by about a hundredth).
ROLLING_BOOTSTRAP = 400
# Page-Hinkley on trade R (Page 1954; Hinkley 1971): the fall in mean R it tolerates, and the
# alarm level, in R. Simulated over 100-trade windows of +-1 R trades: a steady record (win
# rate 55%) passes 12 in 3% of windows; a fall from 55% to 35% wins over the last 40 trades in
# 47%, from 60% to 30% over the last 50 in 84%.
PAGE_HINKLEY_DELTA = 0.1
PAGE_HINKLEY_THRESHOLD = 12.0
# Bounds how many resampled pnl values the bootstrap holds in memory at once.
_BOOTSTRAP_CHUNK_VALUES = 2_000_000


def win_rate(pnl_pct: np.ndarray) -> float:
    """Fraction of trades with a positive pnl; NaN with no trades."""
    pnl = _closed(pnl_pct)
    return float(np.mean(pnl > 0)) if pnl.size else math.nan


def profit_factor(pnl_pct: np.ndarray) -> float:
    """Gross profit over gross loss; inf with profit and no loss, NaN if both are zero."""
    pnl = _closed(pnl_pct)
    return float(profit_factors(pnl[pnl > 0].sum(), -pnl[pnl < 0].sum()))


def profit_factors(gross_profit, gross_loss) -> np.ndarray:
    """The profit factor rule, element by element: gross profit over gross loss, inf with a
    profit and no loss, NaN with neither."""
    profit, loss = np.asarray(gross_profit, dtype=float), np.asarray(gross_loss, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(loss > 0, profit / loss, np.where(profit > 0, np.inf, np.nan))


def expectancy(pnl_pct: np.ndarray) -> float:
    """Mean pnl per trade, in percent; NaN with no trades."""
    return _mean(_closed(pnl_pct))


def average_r(r_multiples: np.ndarray) -> float:
    """Mean R multiple per trade; NaN with no trades."""
    return _mean(_closed(r_multiples))


def max_drawdown_r(r_multiples: np.ndarray) -> float:
    """Largest peak-to-trough fall of the cumulative R curve starting at 0, as a positive number."""
    equity = np.concatenate([[0.0], np.cumsum(_closed(r_multiples))])
    return float(np.max(np.maximum.accumulate(equity) - equity))


def page_hinkley(r_multiples: np.ndarray, delta: float = PAGE_HINKLEY_DELTA) -> float:
    """The Page-Hinkley statistic of a fall in mean R at the last trade: how far the running
    sum of each trade's deviation from the mean so far (plus `delta`) lies below its highest
    point (the start counts as 0). It grows while trades keep doing worse than before by more
    than `delta`; 0 with no trades."""
    r = _closed(r_multiples)
    if r.size == 0:
        return 0.0
    running_mean = np.cumsum(r) / np.arange(1, r.size + 1)
    cumulative = np.cumsum(r - running_mean + delta)
    return float(max(cumulative.max(), 0.0) - cumulative[-1])


def wilson_interval(wins: int, n: int, z: float = WILSON_Z_95) -> tuple[float, float]:
    """Wilson score interval for a win rate of wins/n; (NaN, NaN) for n == 0."""
    if n == 0:
        return math.nan, math.nan
    p = wins / n
    denominator = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denominator
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def bootstrap_profit_factor_interval(
    pnl_pct: np.ndarray, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the profit factor; (NaN, NaN) with fewer than 2 trades.

    A resample that draws no losing trade has an infinite profit factor: it ranks above every
    finite value, and quantiles are read without interpolation (inverted CDF), so each bound is
    an actual resampled value and an upper bound of inf says the sample cannot rule out a
    lossless record. Resamples drawing only zero-pnl trades have no profit factor and are
    dropped.
    """
    pnl = _closed(pnl_pct)
    if pnl.size < 2:
        return math.nan, math.nan
    return _bootstrap_interval(pnl.tobytes(), n_boot, confidence, seed)


# The overview asks for every pair's interval every few seconds while its trades change at most
# once a bar; the answer is a pure function of the (seeded) inputs, so it is remembered.
@lru_cache(maxsize=4096)
def _bootstrap_interval(
    pnl_bytes: bytes, n_boot: int, confidence: float, seed: int
) -> tuple[float, float]:
    pnl = np.frombuffer(pnl_bytes, dtype=float)
    gross_profit, gross_loss = _resampled_gross(pnl, n_boot, np.random.default_rng(seed))
    factors = profit_factors(gross_profit, gross_loss)
    factors = factors[~np.isnan(factors)]
    if factors.size == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low, high = np.quantile(factors, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def summarize(pnl_pct: np.ndarray, r_multiples: np.ndarray, pending: int = 0) -> dict:
    """Every headline metric of a trade list, with 95% intervals for win rate and profit factor."""
    pnl = _closed(pnl_pct)
    wins = int(np.sum(pnl > 0))
    win_rate_low, win_rate_high = wilson_interval(wins, pnl.size)
    profit_factor_low, profit_factor_high = bootstrap_profit_factor_interval(pnl)
    return {
        "trades": int(pnl.size),
        "pending": int(pending),
        "wins": wins,
        "losses": int(pnl.size - wins),
        "win_rate": win_rate(pnl),
        "win_rate_low": win_rate_low,
        "win_rate_high": win_rate_high,
        "profit_factor": profit_factor(pnl),
        "profit_factor_low": profit_factor_low,
        "profit_factor_high": profit_factor_high,
        "expectancy_pct": expectancy(pnl),
        "average_r": average_r(r_multiples),
        "max_drawdown_r": max_drawdown_r(r_multiples),
        "page_hinkley": page_hinkley(r_multiples),
        "gross_profit_pct": float(pnl[pnl > 0].sum()),
        "gross_loss_pct": float(-pnl[pnl < 0].sum()),
    }


def rolling_performance(closed: pd.DataFrame, window: int) -> pd.DataFrame:
    """Closed trades (oldest first; pnl_pct, r_multiple) with the rolling win rate and profit
    factor over the last `window` trades (shown from min(window, 10) trades on), their 95%
    intervals (Wilson; seeded bootstrap) and the cumulative R."""
    pnl = closed["pnl_pct"].astype(float)
    rolling = {"window": window, "min_periods": min(window, 10)}
    gross_profit = pnl.clip(lower=0).rolling(**rolling).sum()
    gross_loss = (-pnl).clip(lower=0).rolling(**rolling).sum()
    factor = profit_factors(gross_profit, gross_loss)
    win_rate = (pnl > 0).astype(float).rolling(**rolling).mean()
    values, shown = pnl.to_numpy(), win_rate.notna().to_numpy()
    windows = [values[max(0, end - window + 1) : end + 1] for end in range(len(values))]
    unknown = (math.nan, math.nan)
    bands = {
        "win_rate": [
            wilson_interval(int((w > 0).sum()), w.size) if ok else unknown
            for w, ok in zip(windows, shown, strict=True)
        ],
        "profit_factor": [
            bootstrap_profit_factor_interval(w, ROLLING_BOOTSTRAP) if ok else unknown
            for w, ok in zip(windows, shown, strict=True)
        ],
    }
    return closed.assign(
        win_rate=win_rate,
        profit_factor=np.where(gross_profit.isna(), np.nan, factor),
        equity_r=closed["r_multiple"].astype(float).cumsum(),
        **{
            f"{name}_{end}": [interval[i] for interval in intervals]
            for name, intervals in bands.items()
            for i, end in enumerate(("low", "high"))
        },
    )


def timeframe_summary(grid: pd.DataFrame) -> pd.DataFrame:
    """One row per timeframe of an overview grid: pairs per status, trades and the pooled win
    rate of its pairs."""
    counts = pd.crosstab(grid["interval"], grid["status"]).reindex(
        columns=list(PairStatus), fill_value=0
    )
    wins = (grid["win_rate"].fillna(0) * grid["trades"]).groupby(grid["interval"]).sum()
    summary = grid.groupby("interval", sort=False).agg(
        pairs=("asset", "size"),
        trades=("trades", "sum"),
        pending=("pending", "sum"),
        win_rate_threshold=("win_rate_threshold", "first"),
    )
    summary["win_rate"] = (wins / summary["trades"]).where(summary["trades"] > 0)
    return summary.join(counts).reset_index()


def auc_interval(auc: float, positives: int, negatives: int, z: float = WILSON_Z_95):
    """Hanley & McNeil (1982) normal interval of a ROC AUC measured on `positives` and
    `negatives` rows; (NaN, NaN) without both kinds."""
    if positives < 1 or negatives < 1:
        return math.nan, math.nan
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    half_width = z * math.sqrt(max(variance, 0.0))
    return max(0.0, auc - half_width), min(1.0, auc + half_width)


def edge_verdict(model_metrics: dict) -> tuple[bool, str]:
    """(has_no_edge, why in plain words) from a model's hold-out metrics (models.fit's).

    No edge when the 95% interval of its hold-out ROC AUC does not lie wholly above 0.5 (it
    cannot tell wins from losses better than a coin), or when the entry rule's trades on the
    hold-out slice did not earn more than zero per trade after costs. Models trained before
    the positive and negative counts were kept have them recovered from eval_rows and
    base_rate; models from before the signal expectancy was kept are judged by their signal
    profit factor (above 1 exactly when the mean pnl is above 0)."""
    auc = _number(model_metrics.get("roc_auc"))
    positives, negatives = _eval_classes(model_metrics)
    if math.isnan(auc) or positives is None:
        return True, "no out-of-sample AUC to judge the model by"
    low, high = auc_interval(auc, positives, negatives)
    auc_text = f"hold-out AUC {auc:.3f} (95% {low:.3f}–{high:.3f})"
    if not low > 0.5:
        return True, f"{auc_text} does not lie above 0.5: no better than a coin"
    trades = int(_number(model_metrics.get("signal_trades")) or 0)
    if trades == 0:
        return True, f"{auc_text}, but the entry rule made no trade on the hold-out slice"
    earned, words = _signal_earned(model_metrics)
    if not earned > 0:
        return True, f"{auc_text}, but the entry rule's {trades} hold-out trades {words}"
    return False, f"{auc_text} above 0.5 and the entry rule's {trades} hold-out trades {words}"


def _signal_earned(model_metrics: dict) -> tuple[float, str]:
    """Above zero when the hold-out signal trades earned after costs, and how it reads: their
    mean pnl, or for older models their profit factor (above 1 exactly when the mean pnl is
    above 0) less 1."""
    mean = _number(model_metrics.get("signal_expectancy_pct"))
    if not math.isnan(mean):
        return mean, f"earned {mean:+.3f}% a trade after costs"
    factor = _number(model_metrics.get("signal_profit_factor"))
    return factor - 1, f"had a profit factor of {format_profit_factor(factor)} after costs"


def _eval_classes(model_metrics: dict) -> tuple[int | None, int | None]:
    """Wins and losses of the hold-out slice (None when the metrics cannot tell)."""
    if "eval_positives" in model_metrics:
        return int(model_metrics["eval_positives"]), int(model_metrics["eval_negatives"])
    rows, rate = _number(model_metrics.get("eval_rows")), _number(model_metrics.get("base_rate"))
    if math.isnan(rows) or math.isnan(rate):
        return None, None
    positives = round(rows * rate)
    return positives, int(rows) - positives


def _number(value) -> float:
    """A metrics JSON value as a float: "inf" strings back to inf, None to NaN."""
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def format_profit_factor(value: float) -> str:
    """A profit factor for display: "∞" for inf, "—" for NaN, else two decimals."""
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞"
    return f"{value:.2f}"


def _closed(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    return values[~np.isnan(values)]


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else math.nan


def _resampled_gross(
    pnl: np.ndarray, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Gross profit and gross loss of n_boot resamples with replacement, drawn in chunks."""
    profits, losses = np.maximum(pnl, 0.0), np.maximum(-pnl, 0.0)
    rows_per_chunk = max(1, _BOOTSTRAP_CHUNK_VALUES // pnl.size)
    gross_profit, gross_loss = [], []
    for start in range(0, n_boot, rows_per_chunk):
        draws = rng.integers(0, pnl.size, size=(min(rows_per_chunk, n_boot - start), pnl.size))
        gross_profit.append(profits[draws].sum(axis=1))
        gross_loss.append(losses[draws].sum(axis=1))
    return np.concatenate(gross_profit), np.concatenate(gross_loss)
