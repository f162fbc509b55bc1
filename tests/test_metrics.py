"""Tests for alpha12.metrics against numbers worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from alpha12 import metrics
from alpha12.metrics import (
    PAGE_HINKLEY_THRESHOLD,
    auc_interval,
    average_r,
    bootstrap_profit_factor_interval,
    expectancy,
    format_profit_factor,
    max_drawdown_r,
    page_hinkley,
    profit_factor,
    rolling_performance,
    summarize,
    wilson_interval,
    win_rate,
)

PNL = [2.0, -1.0, 1.5, -0.5, 3.0]
R = [1.0, -1.0, 0.75, -0.25, 1.5]


def test_fixed_trade_list():
    # wins 2 + 1.5 + 3 = 6.5, losses 1 + 0.5 = 1.5, total 5.0 over 5 trades
    assert win_rate(PNL) == pytest.approx(0.6)
    assert profit_factor(PNL) == pytest.approx(6.5 / 1.5)
    assert expectancy(PNL) == pytest.approx(1.0)
    assert average_r(R) == pytest.approx(0.4)
    # cumulative R: 0, 1, 0, 0.75, 0.5, 2.0 -> worst fall is 1 -> 0
    assert max_drawdown_r(R) == pytest.approx(1.0)
    assert format_profit_factor(profit_factor(PNL)) == "4.33"


def test_summarize_fixed_trade_list():
    summary = summarize(PNL, R, pending=2)
    expected = {
        "trades": 5,
        "pending": 2,
        "wins": 3,
        "losses": 2,
        "win_rate": 0.6,
        "profit_factor": 6.5 / 1.5,
        "expectancy_pct": 1.0,
        "average_r": 0.4,
        "max_drawdown_r": 1.0,
        "page_hinkley": page_hinkley(R),
        "gross_profit_pct": 6.5,
        "gross_loss_pct": 1.5,
    }
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value), key
    # Wilson 3/5: centre 0.5566, half-width 0.3258 (z = 1.96)
    assert summary["win_rate_low"] == pytest.approx(0.2307, abs=1e-4)
    assert summary["win_rate_high"] == pytest.approx(0.8824, abs=1e-4)
    assert summary["profit_factor_low"] < 6.5 / 1.5 < summary["profit_factor_high"]
    assert set(summary) == {
        *expected,
        "win_rate_low",
        "win_rate_high",
        "profit_factor_low",
        "profit_factor_high",
    }


def test_unresolved_nan_trades_are_ignored():
    assert summarize([*PNL, math.nan], [*R, math.nan]) == summarize(PNL, R)


def test_no_losses():
    pnl = [1.0, 2.0, 0.5]
    assert profit_factor(pnl) == math.inf
    assert format_profit_factor(profit_factor(pnl)) == "∞"
    assert win_rate(pnl) == 1.0
    assert max_drawdown_r([1.0, 2.0, 0.5]) == 0.0
    # every resample is lossless
    assert bootstrap_profit_factor_interval(pnl) == (math.inf, math.inf)


def test_no_trades():
    summary = summarize([], [])
    assert (summary["trades"], summary["wins"], summary["losses"]) == (0, 0, 0)
    for key in (
        "win_rate",
        "win_rate_low",
        "win_rate_high",
        "profit_factor",
        "profit_factor_low",
        "profit_factor_high",
        "expectancy_pct",
        "average_r",
    ):
        assert math.isnan(summary[key]), key
    assert summary["max_drawdown_r"] == 0.0
    assert summary["gross_profit_pct"] == summary["gross_loss_pct"] == 0.0
    assert format_profit_factor(summary["profit_factor"]) == "—"


def test_only_flat_trades_have_no_profit_factor():
    assert math.isnan(profit_factor([0.0, 0.0]))
    assert win_rate([0.0, 0.0]) == 0.0


def test_max_drawdown_on_a_hand_made_sequence():
    # cumulative: 0, 1, -1, -0.5, -1.5, 1.5, 1.0 -> peak 1 falls to -1.5
    assert max_drawdown_r([1, -2, 0.5, -1, 3, -0.5]) == pytest.approx(2.5)
    # the curve starts at 0, so opening losses are a drawdown
    assert max_drawdown_r([-1, -1, 0.5]) == pytest.approx(2.0)
    assert max_drawdown_r([]) == 0.0


@pytest.mark.parametrize(
    ("wins", "n", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (50, 100, 0.4038, 0.5962),
    ],
)
def test_wilson_interval_published_values(wins, n, low, high):
    assert wilson_interval(wins, n) == (pytest.approx(low, abs=1e-4), pytest.approx(high, abs=1e-4))


def test_wilson_interval_without_trades():
    low, high = wilson_interval(0, 0)
    assert math.isnan(low) and math.isnan(high)


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible():
    pnl = np.random.default_rng(7).normal(0.3, 1.0, 300)
    estimate = profit_factor(pnl)
    low, high = bootstrap_profit_factor_interval(pnl, seed=1)
    assert low < estimate < high
    assert low > 1.0 and high < 3.0  # a mean-0.3 sd-1 edge gives PF near 1.8
    assert bootstrap_profit_factor_interval(pnl, seed=1) == (low, high)
    assert bootstrap_profit_factor_interval(pnl, seed=2) != (low, high)
    narrow = bootstrap_profit_factor_interval(pnl, seed=1, confidence=0.5)
    assert low < narrow[0] < narrow[1] < high


def test_bootstrap_interval_upper_bound_can_be_infinite():
    # with one small loss in ten trades, about 35% of resamples draw no loss at all
    pnl = [1.0] * 9 + [-0.5]
    low, high = bootstrap_profit_factor_interval(pnl)
    assert high == math.inf
    assert math.isfinite(low) and low > 1.0


def test_bootstrap_interval_needs_two_trades():
    for pnl in ([], [1.0], [1.0, math.nan]):
        low, high = bootstrap_profit_factor_interval(pnl)
        assert math.isnan(low) and math.isnan(high)


def test_format_profit_factor():
    assert format_profit_factor(1.23456) == "1.23"
    assert format_profit_factor(0.0) == "0.00"
    assert format_profit_factor(math.inf) == "∞"
    assert format_profit_factor(math.nan) == "—"


def test_rolling_bands_hold_the_rolling_values_and_repeat_exactly():
    pnl = np.random.default_rng(3).normal(0.1, 1.0, 60)
    closed = pd.DataFrame({"pnl_pct": pnl, "r_multiple": pnl})
    perf = rolling_performance(closed, 20)
    shown = perf.dropna(subset=["win_rate"])
    assert len(shown) == 60 - 9  # from the 10th trade on
    assert (shown["win_rate_low"] <= shown["win_rate"]).all()
    assert (shown["win_rate"] <= shown["win_rate_high"]).all()
    assert (shown["profit_factor_low"] <= shown["profit_factor"]).all()
    assert (shown["profit_factor"] <= shown["profit_factor_high"]).all()
    last = pnl[-20:]  # the last row's window
    assert (perf["win_rate_low"].iloc[-1], perf["win_rate_high"].iloc[-1]) == wilson_interval(
        int((last > 0).sum()), 20
    )
    assert perf.equals(rolling_performance(closed, 20))  # seeded: the same bands every refresh


def test_auc_interval_is_hanley_mcneil():
    # A = 0.7, 50 positives and 50 negatives: Q1 = 0.53846, Q2 = 0.57647,
    # variance = (0.21 + 49 (Q1 - 0.49) + 49 (Q2 - 0.49)) / 2500 = 0.0027287, SE = 0.05224
    low, high = auc_interval(0.7, 50, 50)
    assert (low, high) == (
        pytest.approx(0.7 - 1.96 * 0.05224, abs=1e-4),
        pytest.approx(0.7 + 1.96 * 0.05224, abs=1e-4),
    )


def test_page_hinkley_by_hand():
    # running means 1, 1, 1/3, 0; deviations + 0.1: 0.1, 0.1, -1.2333, -0.9
    # running sums 0.1, 0.2, -1.0333, -1.9333: 2.1333 below the highest point
    assert page_hinkley([1.0, 1.0, -1.0, -1.0]) == pytest.approx(2.1333, abs=1e-4)
    assert page_hinkley([-1.0, -1.0, 1.0, 1.0]) == 0.0  # a rise is no alarm
    assert page_hinkley([]) == 0.0 and page_hinkley([math.nan, 1.0]) == 0.0


def test_page_hinkley_alarms_on_a_fall_and_rarely_on_a_steady_record():
    rng = np.random.default_rng(4)

    def trades(n, win_rate):
        return np.where(rng.random(n) < win_rate, 1.0, -1.0)

    steady = [page_hinkley(trades(100, 0.55)) for _ in range(500)]
    falling = [page_hinkley(np.r_[trades(50, 0.6), trades(50, 0.3)]) for _ in range(500)]
    assert np.mean(np.array(steady) > PAGE_HINKLEY_THRESHOLD) < 0.06
    assert np.mean(np.array(falling) > PAGE_HINKLEY_THRESHOLD) > 0.75


# --- edge_verdict ---------------------------------------------------------------------------

SKILLED = {
    "roc_auc": 0.62,
    "eval_positives": 100,
    "eval_negatives": 100,
    "signal_trades": 40,
    "signal_expectancy_pct": 0.05,
}


def test_hanley_mcneil_interval_worked_by_hand():
    # A = 0.75, 50 + 50 rows: Q1 = 0.6, Q2 = 0.642857; variance 5.9625 / 2500 -> se 0.04884
    low, high = metrics.auc_interval(0.75, 50, 50)
    assert (low, high) == pytest.approx((0.75 - 0.09572, 0.75 + 0.09572), abs=1e-4)
    assert all(math.isnan(x) for x in metrics.auc_interval(0.75, 0, 50))


def test_a_model_with_skill_and_positive_signal_expectancy_has_an_edge():
    no_edge, reason = metrics.edge_verdict(SKILLED)
    assert not no_edge
    assert "0.543–0.697" in reason and "+0.050%" in reason


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"roc_auc": 0.55}, "does not lie above 0.5"),  # interval 0.47-0.63 holds 0.5
        ({"roc_auc": 0.30}, "does not lie above 0.5"),  # worse than a coin is no edge either
        ({"roc_auc": None}, "no out-of-sample AUC"),  # the slice held one outcome only
        ({"signal_expectancy_pct": 0.0}, "earned +0.000%"),  # not above zero
        ({"signal_expectancy_pct": -0.1}, "earned -0.100%"),
        ({"signal_trades": 0, "signal_expectancy_pct": None}, "made no trade"),
    ],
)
def test_no_edge_when_the_auc_interval_holds_a_coin_or_the_signal_does_not_earn(changes, words):
    no_edge, reason = metrics.edge_verdict({**SKILLED, **changes})
    assert no_edge and words in reason


def test_older_models_are_judged_from_eval_rows_base_rate_and_profit_factor():
    older = {"roc_auc": 0.62, "eval_rows": 200, "base_rate": 0.5, "signal_trades": 40}
    assert metrics.edge_verdict({**older, "signal_profit_factor": 1.2})[0] is False
    assert metrics.edge_verdict({**older, "signal_profit_factor": "inf"})[0] is False
    assert metrics.edge_verdict({**older, "signal_profit_factor": 0.9})[0] is True
    assert metrics.edge_verdict({})[0] is True
