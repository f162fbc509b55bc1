"""Tests for alpha12.targets: hand-built cases, a slow reference, and look-ahead properties."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from alpha12.targets import resolve_paths, triple_barrier

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "btcusdt"
HOUR = pd.Timedelta(hours=1)
START = pd.Timestamp("2024-01-01", tz="UTC")


def make_bars(*rows: tuple[float, float, float, float]) -> pd.DataFrame:
    """Hourly bars from (open, high, low, close) rows."""
    opens, highs, lows, closes = (list(column) for column in zip(*rows, strict=True))
    return pd.DataFrame(
        {
            "ts": pd.date_range(START, periods=len(rows), freq="1h"),
            "open": opens,
            "high": highs,
            "low": lows,
            "close": closes,
            "volume": 1.0,
        }
    )


def first_target(*rows, direction=1, cost_bps=0.0, horizon=3) -> pd.Series:
    """The outcome of the first bar's entry with ATR 1, take-profit 2 ATR and stop 1 ATR."""
    bars = make_bars(*rows)
    out = triple_barrier(
        bars,
        np.ones(len(bars)),
        interval="1h",
        tp_mult=2.0,
        sl_mult=1.0,
        horizon=horizon,
        direction=direction,
        round_trip_cost_bps=cost_bps,
    )
    return out.iloc[0]


def random_walk_bars(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, n)))
    return pd.DataFrame(
        {
            "ts": pd.date_range(START, periods=n, freq="1h"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": 1.0,
        }
    )


def wilder_atr(bars: pd.DataFrame, period: int = 14) -> np.ndarray:
    return talib.ATR(
        bars["high"].to_numpy(), bars["low"].to_numpy(), bars["close"].to_numpy(), period
    )


def reference_triple_barrier(bars, atr, *, tp_mult, sl_mult, horizon, direction, cost_bps):
    """Obviously-correct row-by-row version of the rule, written independently of targets.py."""
    o, h, lo, c = (bars[col].tolist() for col in ("open", "high", "low", "close"))
    ts = bars["ts"].tolist()
    rows = []
    for t in range(len(bars)):
        nothing = {"label": math.nan, "pnl_pct": math.nan, "exit_price": math.nan}
        nothing |= {"exit_reason": None, "target_ts": pd.NaT}
        if not atr[t] > 0:
            rows.append(nothing)
            continue
        entry = c[t]
        if direction == 1:
            tp, sl = entry + tp_mult * atr[t], entry - sl_mult * atr[t]
        else:
            tp, sl = entry - tp_mult * atr[t], entry + sl_mult * atr[t]
        outcome = None
        for k in range(t + 1, min(t + horizon, len(bars) - 1) + 1):
            if direction == 1:
                stop_hit, tp_hit = lo[k] <= sl, h[k] >= tp
                stop_fill, tp_fill = min(sl, o[k]), max(tp, o[k])
            else:
                stop_hit, tp_hit = h[k] >= sl, lo[k] <= tp
                stop_fill, tp_fill = max(sl, o[k]), min(tp, o[k])
            if stop_hit:
                outcome = (k, stop_fill, "stop")
                break
            if tp_hit:
                outcome = (k, tp_fill, "take_profit")
                break
        if outcome is None and t + horizon < len(bars):
            outcome = (t + horizon, c[t + horizon], "horizon")
        if outcome is None:
            rows.append(nothing)
            continue
        k, price, reason = outcome
        pnl = direction * (price - entry) / entry * 100 - cost_bps / 100
        label = {"take_profit": 1.0, "stop": 0.0}.get(reason, 1.0 if pnl > 0 else 0.0)
        rows.append(
            {
                "label": label,
                "pnl_pct": pnl,
                "exit_price": price,
                "exit_reason": reason,
                "target_ts": ts[k] + HOUR,
            }
        )
    return pd.DataFrame(rows)


# --- hand-built cases: long entry at 100, ATR 1 -> take-profit 102, stop 99 -----------------


def test_take_profit_first():
    out = first_target(
        (100, 100, 100, 100), (100, 101, 99.5, 100.5), (100.5, 102.5, 100, 102), (102, 103, 98, 99)
    )
    assert out["label"] == 1.0
    assert out["exit_reason"] == "take_profit"
    assert out["exit_price"] == 102.0
    assert out["pnl_pct"] == pytest.approx(2.0)
    assert out["r_multiple"] == pytest.approx(2.0)
    assert out["target_ts"] == START + 3 * HOUR  # close of bar 2
    assert (out["take_profit"], out["stop"]) == (102.0, 99.0)


def test_stop_first():
    out = first_target(
        (100, 100, 100, 100), (100, 100.5, 98.8, 99.2), (99.2, 103, 99, 102.5), (102, 103, 98, 99)
    )
    assert out["label"] == 0.0
    assert out["exit_reason"] == "stop"
    assert out["exit_price"] == 99.0
    assert out["pnl_pct"] == pytest.approx(-1.0)
    assert out["r_multiple"] == pytest.approx(-1.0)
    assert out["target_ts"] == START + 2 * HOUR


def test_bar_touching_both_barriers_counts_as_stop():
    out = first_target((100, 100, 100, 100), (100, 102.5, 98.5, 101), (101, 101, 101, 101))
    assert out["label"] == 0.0
    assert out["exit_reason"] == "stop"
    assert out["exit_price"] == 99.0


def test_gap_through_stop_fills_at_the_open():
    out = first_target((100, 100, 100, 100), (100, 100.5, 99.5, 100), (98, 98.5, 97, 98))
    assert out["exit_reason"] == "stop"
    assert out["exit_price"] == 98.0
    assert out["pnl_pct"] == pytest.approx(-2.0)
    assert out["r_multiple"] == pytest.approx(-2.0)
    assert out["target_ts"] == START + 3 * HOUR


def test_gap_through_take_profit_fills_at_the_open():
    out = first_target((100, 100, 100, 100), (103, 104, 102.5, 103.5), (103, 103, 103, 103))
    assert out["exit_reason"] == "take_profit"
    assert out["exit_price"] == 103.0
    assert out["pnl_pct"] == pytest.approx(3.0)
    assert out["r_multiple"] == pytest.approx(3.0)


QUIET = ((100, 100, 100, 100), (100, 100.5, 99.5, 100), (100, 100.6, 99.6, 100.2))


def test_horizon_exit_positive_net_of_costs():
    out = first_target(*QUIET, (100.2, 100.8, 100, 100.5), (100.5, 110, 90, 100), cost_bps=10)
    assert out["exit_reason"] == "horizon"
    assert out["exit_price"] == 100.5
    assert out["pnl_pct"] == pytest.approx(0.5 - 0.1)
    assert out["r_multiple"] == pytest.approx(0.4)
    assert out["label"] == 1.0
    assert out["target_ts"] == START + 4 * HOUR  # close of bar t+3


def test_horizon_exit_gross_gain_is_a_loss_after_costs():
    out = first_target(*QUIET, (100.2, 100.8, 100, 100.05), cost_bps=10)
    assert out["exit_reason"] == "horizon"
    assert out["pnl_pct"] == pytest.approx(0.05 - 0.1)
    assert out["label"] == 0.0


def test_horizon_exit_negative():
    out = first_target(*QUIET, (100.2, 100.8, 99.3, 99.5))
    assert out["exit_reason"] == "horizon"
    assert out["pnl_pct"] == pytest.approx(-0.5)
    assert out["r_multiple"] == pytest.approx(-0.5)
    assert out["label"] == 0.0


def test_horizon_exit_at_exactly_zero_is_a_loss():
    out = first_target(*QUIET, (100.2, 100.8, 99.3, 100.0))
    assert out["exit_reason"] == "horizon"
    assert out["pnl_pct"] == 0.0
    assert out["label"] == 0.0


def test_untouched_trade_near_the_end_is_unresolved():
    out = first_target(*QUIET)  # only two of the three horizon bars exist
    assert math.isnan(out["label"])
    assert math.isnan(out["pnl_pct"])
    assert math.isnan(out["r_multiple"])
    assert math.isnan(out["exit_price"])
    assert pd.isna(out["exit_reason"])
    assert out["target_ts"] is pd.NaT


def test_touched_trade_near_the_end_is_resolved():
    out = first_target((100, 100, 100, 100), (100, 102.2, 99.5, 102))
    assert out["label"] == 1.0
    assert out["target_ts"] == START + 2 * HOUR


# --- shorts: entry at 100, ATR 1 -> take-profit 98, stop 101 -------------------------------


def test_short_take_profit():
    out = first_target((100, 100, 100, 100), (100, 100.5, 97.5, 98), direction=-1)
    assert (out["take_profit"], out["stop"]) == (98.0, 101.0)
    assert out["exit_reason"] == "take_profit"
    assert out["exit_price"] == 98.0
    assert out["pnl_pct"] == pytest.approx(2.0)
    assert out["r_multiple"] == pytest.approx(2.0)
    assert out["label"] == 1.0


def test_short_stop_and_both_touched():
    stopped = first_target((100, 100, 100, 100), (100, 101.5, 99.5, 101), direction=-1)
    both = first_target((100, 100, 100, 100), (100, 101.5, 97, 98), direction=-1)
    for out in (stopped, both):
        assert out["exit_reason"] == "stop"
        assert out["exit_price"] == 101.0
        assert out["pnl_pct"] == pytest.approx(-1.0)
        assert out["label"] == 0.0


def test_short_gaps_fill_at_the_open():
    stop_gap = first_target((100, 100, 100, 100), (102, 102.5, 101.5, 102), direction=-1)
    tp_gap = first_target((100, 100, 100, 100), (97, 97.5, 96, 97), direction=-1)
    assert (stop_gap["exit_price"], stop_gap["pnl_pct"]) == (102.0, pytest.approx(-2.0))
    assert (tp_gap["exit_price"], tp_gap["pnl_pct"]) == (97.0, pytest.approx(3.0))


def test_short_horizon_exit_uses_the_mirrored_sign():
    out = first_target(*QUIET, (100.2, 100.8, 99.3, 99.5), direction=-1, cost_bps=10)
    assert out["exit_reason"] == "horizon"
    assert out["pnl_pct"] == pytest.approx(0.5 - 0.1)
    assert out["label"] == 1.0


def test_mirrored_bars_give_mirrored_outcomes():
    bars = random_walk_bars(seed=3, n=300)
    mirror = bars.assign(
        open=200 - bars["open"],
        high=200 - bars["low"],
        low=200 - bars["high"],
        close=200 - bars["close"],
    )
    atr = wilder_atr(bars)
    kwargs = {"interval": "1h", "tp_mult": 1.5, "sl_mult": 1.0, "horizon": 12}
    long = triple_barrier(bars, atr, direction=1, **kwargs)
    short = triple_barrier(mirror, atr, direction=-1, **kwargs)
    pd.testing.assert_series_equal(long["label"], short["label"])
    pd.testing.assert_series_equal(long["exit_reason"], short["exit_reason"])
    pd.testing.assert_series_equal(long["target_ts"], short["target_ts"])
    np.testing.assert_allclose(200 - long["exit_price"], short["exit_price"])
    assert long["label"].notna().sum() > 250


def test_warm_up_bars_without_atr_have_no_label():
    bars = random_walk_bars(seed=1, n=60)
    out = triple_barrier(bars, wilder_atr(bars), interval="1h", tp_mult=2, sl_mult=1, horizon=5)
    assert out["label"].iloc[:14].isna().all()
    assert out["target_ts"].iloc[:14].isna().all()
    assert out["label"].iloc[14:50].notna().all()


def test_empty_bars():
    out = triple_barrier(
        make_bars((1, 1, 1, 1)).iloc[:0], [], interval="1h", tp_mult=2, sl_mult=1, horizon=3
    )
    assert out.empty
    assert list(out.columns) == [
        "label",
        "pnl_pct",
        "r_multiple",
        "exit_price",
        "exit_reason",
        "target_ts",
        "take_profit",
        "stop",
    ]


def test_invalid_arguments_are_rejected():
    bars = make_bars((1, 1, 1, 1), (1, 1, 1, 1))
    ok = {"interval": "1h", "tp_mult": 2.0, "sl_mult": 1.0, "horizon": 3}
    for bad in ({"horizon": 0}, {"direction": 0}, {"sl_mult": 0.0}):
        with pytest.raises(ValueError):
            triple_barrier(bars, np.ones(2), **(ok | bad))
    with pytest.raises(ValueError):
        triple_barrier(bars, np.ones(3), **ok)


# --- resolve_paths directly (the core the live tracker shares) -----------------------------


def test_resolve_paths_mixed_directions_and_unknown_bars():
    nan = np.nan
    paths = {
        "path_open": [[100, 101, nan], [100, 100, 100], [100, nan, 101], [100, 100, 100]],
        "path_high": [[100.5, 103, nan], [100.5, 100.5, 100.5], [100.5, nan, 103], [101, 101, 101]],
        "path_low": [[99.5, 100, nan], [99.5, 99.5, 99.5], [99.5, nan, 100], [99, 99, 99]],
        "path_close": [[100, 102, nan], [100, 100, 100.3], [100, nan, 102], [100, 100, 100]],
    }
    out = resolve_paths(
        entry=np.full(4, 100.0),
        take_profit=np.array([102.0, 102.0, 102.0, 98.0]),
        stop=np.array([99.0, 99.0, 99.0, 101.0]),
        direction=np.array([1, 1, 1, -1]),
        **{k: np.array(v, dtype=float) for k, v in paths.items()},
    )
    # row 0: take-profit at offset 1 although bar 2 is unknown
    # row 1: untouched, all bars known -> horizon exit at 100.3
    # row 2: a hole at offset 1 means the touch at offset 2 cannot count yet
    # row 3: short whose bar touches its stop (high 101) first
    np.testing.assert_array_equal(out["resolved"], [True, True, False, True])
    np.testing.assert_array_equal(out["exit_offset"], [1, 2, -1, 0])
    np.testing.assert_allclose(out["exit_price"], [102.0, 100.3, nan, 101.0])
    assert list(out["exit_reason"]) == ["take_profit", "horizon", None, "stop"]
    np.testing.assert_array_equal(out["label"], [1.0, 1.0, nan, 0.0])
    np.testing.assert_allclose(out["pnl_pct"], [2.0, 0.3, nan, -1.0])


# --- agreement with the slow reference --------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "direction", "tp_mult", "sl_mult", "horizon", "cost_bps"),
    [
        (0, 1, 2.0, 1.0, 24, 0.0),
        (1, -1, 1.5, 1.0, 12, 8.0),
        (2, 1, 1.0, 1.0, 2, 5.0),
        (3, -1, 3.0, 0.5, 8, 0.0),
    ],
)
def test_matches_reference_on_random_walks(seed, direction, tp_mult, sl_mult, horizon, cost_bps):
    bars = random_walk_bars(seed, n=800)
    assert_matches_reference(bars, wilder_atr(bars), tp_mult, sl_mult, horizon, direction, cost_bps)


@pytest.mark.parametrize("direction", [1, -1])
def test_matches_reference_on_real_btc_hours(direction):
    path = DATA / "BTCUSDT_1h.csv"
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    raw = pd.read_csv(path).iloc[:3000]
    bars = raw.rename(columns={"timestamp": "ts"}).assign(
        ts=lambda f: pd.to_datetime(f["ts"], utc=True)
    )
    assert_matches_reference(bars, wilder_atr(bars), 2.0, 1.0, 24, direction, 10.0)


def assert_matches_reference(bars, atr, tp_mult, sl_mult, horizon, direction, cost_bps):
    fast = triple_barrier(
        bars,
        atr,
        interval="1h",
        tp_mult=tp_mult,
        sl_mult=sl_mult,
        horizon=horizon,
        direction=direction,
        round_trip_cost_bps=cost_bps,
    )
    slow = reference_triple_barrier(
        bars,
        atr,
        tp_mult=tp_mult,
        sl_mult=sl_mult,
        horizon=horizon,
        direction=direction,
        cost_bps=cost_bps,
    )
    np.testing.assert_array_equal(fast["label"], slow["label"])
    np.testing.assert_allclose(fast["pnl_pct"], slow["pnl_pct"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast["exit_price"], slow["exit_price"], rtol=1e-12)
    assert fast["exit_reason"].isna().tolist() == slow["exit_reason"].isna().tolist()
    assert fast["exit_reason"].dropna().tolist() == slow["exit_reason"].dropna().tolist()
    assert fast["target_ts"].tolist() == slow["target_ts"].tolist()
    # every kind of exit shows up, so the comparison covers all branches
    assert set(fast["exit_reason"].dropna()) == {"take_profit", "stop", "horizon"}


# --- look-ahead ----------------------------------------------------------------------------


def outcomes(bars: pd.DataFrame, horizon: int = 8) -> pd.DataFrame:
    return triple_barrier(
        bars, wilder_atr(bars), interval="1h", tp_mult=1.5, sl_mult=1.0, horizon=horizon
    )


def assert_no_look_ahead(bars: pd.DataFrame, replacement: pd.DataFrame, cut: int) -> None:
    """Rewriting every bar after bar `cut` changes no outcome known by that bar's close."""
    known_by = bars["ts"].iloc[cut] + HOUR
    changed = bars.copy()
    later = changed.index > cut
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] = replacement.loc[later, column].to_numpy()
    before, after = outcomes(bars), outcomes(changed)
    for out in (before, after):
        known = out["target_ts"] <= known_by
        pd.testing.assert_frame_equal(before[known], after[known])
        assert known.equals(before["target_ts"] <= known_by)


def test_no_look_ahead_deterministic():
    bars, replacement = random_walk_bars(seed=10, n=200), random_walk_bars(seed=11, n=200)
    checked = 0
    for cut in range(20, 199, 7):
        assert_no_look_ahead(bars, replacement, cut)
        checked += 1
    assert checked == 26


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    other=st.integers(0, 2**32 - 1),
    n=st.integers(20, 120),
    cut_fraction=st.floats(0.0, 1.0),
)
def test_no_look_ahead_property(seed, other, n, cut_fraction):
    cut = int(cut_fraction * (n - 1))
    assert_no_look_ahead(random_walk_bars(seed, n), random_walk_bars(other, n), cut)


def test_outcomes_only_go_from_unknown_to_known_as_bars_arrive():
    bars = random_walk_bars(seed=5, n=120)
    full = outcomes(bars, horizon=10)
    for end in range(1, len(bars) + 1):
        partial = outcomes(bars.iloc[:end], horizon=10)
        seen_by = bars["ts"].iloc[end - 1] + HOUR
        known = full["target_ts"].iloc[:end] <= seen_by
        # everything knowable from the bars so far is exactly the final answer ...
        pd.testing.assert_frame_equal(partial[known], full.iloc[:end][known])
        # ... and nothing else is known yet
        assert partial.loc[~known, "label"].isna().all()
        assert partial.loc[~known, "target_ts"].isna().all()
