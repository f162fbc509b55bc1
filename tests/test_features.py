"""Tests for alpha12.features: the table, TA-Lib equality, causality, the incremental path, NaNs."""

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib

from alpha12.features import (
    FEATURE_NAMES,
    FEATURES,
    TAIL_BARS,
    TALIB_FEATURES,
    WARMUP_BARS,
    WINDOW_BARS,
    atr,
    compute_features,
    latest_features,
    latest_rows,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "btcusdt"

# Position of each feature's first defined row on clean data. TA-Lib's lookbacks for the first 16.
FIRST_DEFINED = {
    "rsi_14": 14,
    "atr_pct_14": 14,
    "macd_pct": 33,
    "macd_signal_pct": 33,
    "macd_hist_pct": 33,
    "adx_14": 27,
    "plus_di_14": 14,
    "minus_di_14": 14,
    "stoch_k_14_3": 17,
    "stoch_d_14_3": 17,
    "willr_14": 13,
    "cci_20": 19,
    "mfi_14": 14,
    "roc_10": 10,
    "bb_pctb_20": 19,
    "bb_width_20": 19,
    "logret_1": 1,
    "logret_3": 3,
    "logret_12": 12,
    "logret_48": 48,
    "rvol_12": 12,
    "rvol_48": 48,
    "rvol_ratio_12_48": 48,
    "ema_dist_20": 19,
    "ema_dist_50": 49,
    "ema_cross_20_50": 49,
    "volume_z_20": 19,
    "volume_z_100": 99,
    "body_frac": 0,
    "upper_wick_frac": 0,
    "lower_wick_frac": 0,
    "range_atr_14": 14,
    "autocorr_96": 97,
    "range_pos_50": 49,
    "range_pos_100": 99,
    "tod_sin": 0,
    "tod_cos": 0,
    "dow_sin": 0,
    "dow_cos": 0,
}


def random_walk_bars(n: int, seed: int = 0, freq: str = "1h") -> pd.DataFrame:
    """A geometric random walk with 2% bar volatility (so prices roam far) and lognormal volume."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
    open_ = np.r_[50.0, close][:-1]
    return pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.01, n))),
            "low": np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, n))),
            "close": close,
            "volume": rng.lognormal(3.0, 1.0, n),
        }
    )


@cache
def _btc(interval: str) -> pd.DataFrame:
    path = DATA / f"BTCUSDT_{interval}.csv"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    raw = pd.read_csv(path)
    bars = raw.drop(columns="timestamp").astype("float64")
    bars.insert(0, "ts", pd.to_datetime(raw["timestamp"], utc=True))
    return bars


def btc(interval: str) -> pd.DataFrame:
    return _btc(interval).copy()


def talib_reference(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    high, low, close, volume = (bars[c].to_numpy() for c in ("high", "low", "close", "volume"))
    macd, signal, hist = talib.MACD(close, 12, 26, 9)
    slow_k, slow_d = talib.STOCH(high, low, close, 14, 3, 0, 3, 0)
    upper, middle, lower = talib.BBANDS(close, 20, 2.0, 2.0, 0)
    return {
        "rsi_14": talib.RSI(close, 14),
        "atr_pct_14": talib.ATR(high, low, close, 14) / close,
        "macd_pct": macd / close,
        "macd_signal_pct": signal / close,
        "macd_hist_pct": hist / close,
        "adx_14": talib.ADX(high, low, close, 14),
        "plus_di_14": talib.PLUS_DI(high, low, close, 14),
        "minus_di_14": talib.MINUS_DI(high, low, close, 14),
        "stoch_k_14_3": slow_k,
        "stoch_d_14_3": slow_d,
        "willr_14": talib.WILLR(high, low, close, 14),
        "cci_20": talib.CCI(high, low, close, 20),
        "mfi_14": talib.MFI(high, low, close, volume, 14),
        "roc_10": talib.ROC(close, 10),
        "bb_pctb_20": (close - lower) / (upper - lower),
        "bb_width_20": (upper - lower) / middle,
    }


def test_table_has_39_unique_described_features():
    assert len(FEATURES) == 39
    assert tuple(FEATURES) == FEATURE_NAMES
    assert len(set(FEATURE_NAMES)) == 39
    assert all(isinstance(text, str) and text.strip() for text in FEATURES.values())
    assert set(FIRST_DEFINED) == set(FEATURE_NAMES)
    assert tuple(talib_reference(random_walk_bars(50))) == TALIB_FEATURES


def test_output_shape_columns_dtypes_and_index():
    bars = random_walk_bars(400).iloc[50:]  # index 50..399: the result must keep it
    features = compute_features(bars)
    assert list(features.columns) == list(FEATURE_NAMES)
    assert features.index.equals(bars.index)
    assert (features.dtypes == np.float64).all()


def test_warm_up_rows_are_nan_and_then_every_feature_is_defined():
    features = compute_features(random_walk_bars(600))
    for name, first in FIRST_DEFINED.items():
        column = features[name].to_numpy()
        assert np.isnan(column[:first]).all(), f"{name} is not NaN during warm-up"
        assert not np.isnan(column[first:]).any(), f"{name} has NaN after warm-up"
    assert max(FIRST_DEFINED.values()) == WARMUP_BARS
    assert features.iloc[WARMUP_BARS - 1].isna().any()
    assert features.iloc[WARMUP_BARS:].notna().all().all()


@pytest.mark.parametrize("n", [0, 1, 5, 30])
def test_short_histories_give_nan_rows_not_errors(n):
    bars = random_walk_bars(n)
    features = compute_features(bars)
    assert features.shape == (n, 39)
    if n:
        assert features["macd_pct"].isna().all()
        assert features["body_frac"].notna().all()
        np.testing.assert_array_equal(latest_features(bars), features.iloc[-1])


def test_latest_features_needs_a_bar():
    with pytest.raises(ValueError):
        latest_features(random_walk_bars(0))


@pytest.mark.parametrize("interval", ["1h", "5m", "15m", "4h", "1d"])
def test_talib_indicators_match_talib_on_btc(interval):
    bars = btc(interval)
    features = compute_features(bars)
    for name, expected in talib_reference(bars).items():
        # 1e-6 relative on every row, NaN positions included. The floor, a billionth of the
        # indicator's range, absorbs values that are 0 up to rounding: TA-Lib's running sums
        # leave residues like 1e-12 in %K where we compute 0.
        floor = 1e-9 * np.nanmax(np.abs(expected))
        np.testing.assert_allclose(
            features[name].to_numpy(), expected, rtol=1e-6, atol=floor, err_msg=name
        )
    # Past a 300-bar warm-up every row was compared as a number.
    assert features[list(TALIB_FEATURES)].iloc[300:].notna().all().all()


@pytest.mark.parametrize("period", [5, 14, 21])
def test_atr_matches_talib_and_takes_series(period):
    bars = btc("4h")
    expected = talib.ATR(bars["high"], bars["low"], bars["close"], period).to_numpy()
    result = atr(bars["high"], bars["low"], bars["close"], period)
    np.testing.assert_allclose(result, expected, rtol=1e-12)


def _perturbed_after(bars: pd.DataFrame, t: int, rng: np.random.Generator) -> pd.DataFrame:
    """`bars` with every bar after position t rescaled at random (OHLC kept consistent)."""
    later = len(bars) - t - 1
    out = bars.copy()
    open_ = bars["open"].to_numpy()[t + 1 :] * rng.uniform(0.5, 2.0, later)
    close = bars["close"].to_numpy()[t + 1 :] * rng.uniform(0.5, 2.0, later)
    out.iloc[t + 1 :, 1:] = np.column_stack(
        [
            open_,
            np.maximum(open_, close) * rng.uniform(1.0, 1.1, later),
            np.minimum(open_, close) * rng.uniform(0.9, 1.0, later),
            close,
            bars["volume"].to_numpy()[t + 1 :] * rng.uniform(0.0, 3.0, later),
        ]
    )
    return out


@pytest.mark.parametrize("source", ["random_walk", "btc_1h"])
def test_no_feature_looks_ahead(source):
    rng = np.random.default_rng(11)
    bars = random_walk_bars(1500) if source == "random_walk" else btc("1h").iloc[-1500:]
    assert list(bars.columns) == ["ts", "open", "high", "low", "close", "volume"]
    base = compute_features(bars).to_numpy()
    for t in [0, 20, 98, 99, *rng.integers(100, len(bars) - 1, 4)]:
        changed = compute_features(_perturbed_after(bars, t, rng)).to_numpy()
        # Bit for bit, NaN positions included.
        np.testing.assert_array_equal(changed[: t + 1], base[: t + 1], err_msg=f"t={t}")
        assert not np.array_equal(changed[t + 1], base[t + 1], equal_nan=True)


def _assert_latest_matches_full(bars: pd.DataFrame, cuts: list[int]) -> None:
    full = compute_features(bars)
    for cut in cuts:
        latest = latest_features(bars.iloc[:cut])
        expected = full.iloc[cut - 1]
        assert latest.name == expected.name
        assert list(latest.index) == list(FEATURE_NAMES)
        if cut <= TAIL_BARS:
            np.testing.assert_array_equal(latest, expected, err_msg=f"cut={cut}")
        else:
            np.testing.assert_allclose(
                latest, expected, rtol=1e-9, atol=1e-12, err_msg=f"cut={cut}"
            )


def test_latest_features_equals_full_history_on_btc_5m():
    bars = btc("5m")
    cuts = [WARMUP_BARS + 1, TAIL_BARS - 1, TAIL_BARS, TAIL_BARS + 1, 7_777, 60_000, len(bars)]
    _assert_latest_matches_full(bars, cuts)


def test_latest_features_equals_full_history_on_a_random_walk():
    bars = random_walk_bars(6000, seed=3)
    assert bars["close"].max() / bars["close"].min() > 5  # seeds far from the tail's prices
    _assert_latest_matches_full(bars, [TAIL_BARS, TAIL_BARS + 1, 2500, 4321, len(bars)])


def test_stacked_tails_give_each_tail_exactly_its_own_latest_features():
    """The cycle computes every pair's newest bar in one stacked call: tails of one length
    share arrays, the windowed features read only the last WINDOW_BARS bars; each row must be
    bit for bit what its tail gives alone over its whole tail (or longest allowed tail)."""
    lengths = [TAIL_BARS, TAIL_BARS, TAIL_BARS + 500, 400, 400, WINDOW_BARS, WINDOW_BARS - 1, 30]
    tails = [random_walk_bars(n, seed=seed) for seed, n in enumerate(lengths)]
    tails[1] = btc("5m").iloc[-TAIL_BARS:]  # real bars stacked with a random walk
    rows = latest_rows(tails)
    for tail, row in zip(tails, rows, strict=True):
        expected = compute_features(tail.iloc[-TAIL_BARS:]).iloc[-1]
        np.testing.assert_array_equal(row, expected, err_msg=f"a tail of {len(tail)} bars")
    assert not np.isnan(rows[:6]).any() and np.isnan(rows[6:]).any()  # the windows fill at 100
    with pytest.raises(ValueError, match="at least one bar"):
        latest_rows([tails[0], tails[0].iloc[:0]])


def test_half_the_tail_would_not_be_enough():
    # TAIL_BARS is a measured bound, not an arbitrary one: half of it misses 1e-9.
    bars = btc("5m").iloc[:20_000]
    full = compute_features(bars).iloc[-1].to_numpy()
    half = compute_features(bars.iloc[-TAIL_BARS // 2 :]).iloc[-1].to_numpy()
    assert not np.allclose(half, full, rtol=1e-9, atol=1e-12)


def test_features_are_scale_free():
    bars = btc("1h").iloc[-2000:]
    scaled = bars.copy()
    scaled[["open", "high", "low", "close"]] *= 1234.5
    scaled["volume"] *= 0.01
    np.testing.assert_allclose(
        compute_features(scaled), compute_features(bars), rtol=1e-6, atol=1e-9
    )


def test_calendar_encodings():
    bars = random_walk_bars(3)
    bars["ts"] = pd.to_datetime(
        ["2024-01-01T00:00Z", "2024-01-03T06:00Z", "2024-01-07T18:00Z"]  # Mon, Wed, Sun
    )
    features = compute_features(bars)
    np.testing.assert_allclose(features["tod_sin"], [0.0, 1.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(features["tod_cos"], [1.0, 0.0, 0.0], atol=1e-12)
    week = 2 * np.pi * np.array([0.0, 2.25, 6.75]) / 7
    np.testing.assert_allclose(features["dow_sin"], np.sin(week), atol=1e-12)
    np.testing.assert_allclose(features["dow_cos"], np.cos(week), atol=1e-12)
    # Another time zone names the same instants.
    bars["ts"] = bars["ts"].dt.tz_convert("America/New_York")
    np.testing.assert_array_equal(compute_features(bars), features)


def test_degenerate_bars_give_nan_never_inf():
    bars = random_walk_bars(1200, seed=5)
    flat, silent = slice(300, 450), slice(600, 750)
    price = bars.loc[299, "close"]
    bars.loc[flat, ["open", "high", "low", "close"]] = price  # 150 flat bars: high == low
    bars.loc[silent, "volume"] = 0.0  # 150 bars without volume
    bars.loc[900, "high"] = bars.loc[900, "low"] = bars.loc[900, "open"] = bars.loc[900, "close"]
    features = compute_features(bars)
    assert not np.isinf(features.to_numpy()).any()
    # Undefined ratios are NaN, not 0.
    late_flat, late_silent = 449, 749
    for name in ["body_frac", "stoch_k_14_3", "willr_14", "cci_20", "bb_pctb_20", "range_pos_100"]:
        assert np.isnan(features.loc[late_flat, name]), name
    assert features.loc[late_flat, "bb_width_20"] == 0.0
    for name in ["volume_z_20", "volume_z_100", "mfi_14"]:
        assert np.isnan(features.loc[late_silent, name]), name
    assert np.isnan(features.loc[900, "body_frac"])
    # Recursions survive the flat stretch: ADX and RSI are defined again once prices move.
    assert features.iloc[-1].notna().all()
    assert features.loc[460:, "adx_14"].notna().all()


def test_flat_windows_have_exactly_zero_spread_at_any_price_level():
    # E[x^2] - E[x]^2 of a constant is rounding noise at many levels, e.g. 1863.55 over 100 bars.
    rng = np.random.default_rng(2)
    for level in [1863.55180064289, *10 ** rng.uniform(-6, 6, 40)]:
        bars = random_walk_bars(120).assign(open=level, high=level, low=level, close=level)
        bars["volume"] = level / 7
        last = compute_features(bars).iloc[-1]
        assert last["bb_width_20"] == 0.0, level
        assert last[["bb_pctb_20", "cci_20", "volume_z_20", "volume_z_100"]].isna().all(), level


def test_series_starting_flat_keeps_adx_alive():
    bars = random_walk_bars(300, seed=8)
    bars.loc[:60, ["open", "high", "low", "close"]] = 50.0
    features = compute_features(bars)
    assert not np.isinf(features.to_numpy()).any()
    assert features.loc[27:60, "adx_14"].eq(0.0).all()  # no directional move yet
    assert features.loc[WARMUP_BARS + 61 :].notna().all().all()
