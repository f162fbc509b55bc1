"""The synthetic market is reproducible, well-formed and has the regimes it promises."""

import time

import numpy as np
import pandas as pd
import pytest

from alpha12.sources.synthetic import (
    BARS_PER_DAY,
    MAX_REGIME_DAYS,
    MIN_REGIME_DAYS,
    REGIMES,
    SyntheticMarket,
    generate,
)

ORIGIN = pd.Timestamp("2024-01-01", tz="UTC")
MARKET = SyntheticMarket(seed=7, origin=ORIGIN)
DAYS = 120


def log_returns(bars: pd.DataFrame) -> np.ndarray:
    """One return per bar: open is the previous close, so this is the close-to-close return."""
    return np.log(bars["close"].to_numpy() / bars["open"].to_numpy())


def lag1_autocorr_within(returns: np.ndarray, labels: np.ndarray, regime: str) -> float:
    """Lag-1 autocorrelation using only pairs of consecutive returns that share `regime`."""
    pair_in_regime = (labels[1:] == regime) & (labels[:-1] == regime)
    later, earlier = returns[1:][pair_in_regime], returns[:-1][pair_in_regime]
    return float(np.corrcoef(earlier, later)[0, 1])


def regime_runs(regimes: pd.Series) -> pd.DataFrame:
    run_id = (regimes != regimes.shift()).cumsum()
    return regimes.groupby(run_id).agg(["first", "size"])


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return MARKET.base_bars("BTC", DAYS)


@pytest.fixture(scope="module")
def regimes() -> pd.Series:
    return MARKET.regimes("BTC", DAYS)


def test_same_seed_gives_identical_output_when_recomputed():
    first_bars, first_regimes = MARKET.base_bars("ETH", 10), MARKET.regimes("ETH", 10)
    generate.cache_clear()
    again = SyntheticMarket(seed=7, origin=ORIGIN)
    pd.testing.assert_frame_equal(again.base_bars("ETH", 10), first_bars)
    pd.testing.assert_series_equal(again.regimes("ETH", 10), first_regimes)


def test_different_seed_gives_a_different_path():
    other = SyntheticMarket(seed=8, origin=ORIGIN).base_bars("ETH", 10)
    same_seed = MARKET.base_bars("ETH", 10)
    assert not np.allclose(other["close"], same_seed["close"])


def test_longer_span_repeats_the_shorter_one_exactly():
    short_bars, short_regimes = MARKET.base_bars("SOL", 30), MARKET.regimes("SOL", 30)
    long_bars, long_regimes = MARKET.base_bars("SOL", 60), MARKET.regimes("SOL", 60)
    rows = 30 * BARS_PER_DAY
    pd.testing.assert_frame_equal(long_bars.iloc[:rows], short_bars)
    pd.testing.assert_series_equal(long_regimes.iloc[:rows], short_regimes)


def test_bars_frame_follows_the_convention(bars):
    assert list(bars.columns) == ["ts", "open", "high", "low", "close", "volume"]
    assert isinstance(bars["ts"].dtype, pd.DatetimeTZDtype) and str(bars["ts"].dt.tz) == "UTC"
    assert isinstance(bars.index, pd.RangeIndex)
    assert all(bars[c].dtype == np.float64 for c in ["open", "high", "low", "close", "volume"])


def test_every_five_minute_slot_from_origin_is_present(bars):
    assert len(bars) == DAYS * BARS_PER_DAY
    assert bars["ts"].iloc[0] == ORIGIN
    assert (bars["ts"].diff().iloc[1:] == pd.Timedelta(minutes=5)).all()


def test_each_open_is_the_previous_close(bars):
    np.testing.assert_array_equal(bars["open"].to_numpy()[1:], bars["close"].to_numpy()[:-1])


def test_ohlc_is_consistent_and_positive(bars):
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars[["open", "high", "low", "close", "volume"]] > 0).all().all()
    assert (bars["high"] > bars["low"]).mean() > 0.99  # bars have real wicks


def test_known_assets_start_at_familiar_prices_and_others_differ():
    assert MARKET.base_bars("BTC", 1)["open"].iloc[0] == 60_000.0
    assert MARKET.base_bars("ETHUSDT", 1)["open"].iloc[0] == 3_000.0
    start_prices = {MARKET.base_bars(asset, 1)["open"].iloc[0] for asset in ["AAA", "BBB", "CCC"]}
    assert len(start_prices) == 3


def test_assets_follow_independent_paths():
    btc, eth = log_returns(MARKET.base_bars("BTC", 30)), log_returns(MARKET.base_bars("ETH", 30))
    assert abs(np.corrcoef(btc, eth)[0, 1]) < 0.05


def test_five_minute_autocorrelation_has_each_regimes_sign(bars, regimes):
    labels, returns = regimes.to_numpy(), log_returns(bars)
    assert lag1_autocorr_within(returns, labels, "trending") > 0.1
    assert lag1_autocorr_within(returns, labels, "mean_reverting") < -0.1
    assert abs(lag1_autocorr_within(returns, labels, "noise")) < 0.05


def test_hourly_bars_feel_the_regime(bars, regimes):
    # Regimes switch at midnight, so each clock hour lies in one regime.
    hourly_returns = log_returns(bars).reshape(-1, 12).sum(axis=1)
    labels = regimes.to_numpy().reshape(-1, 12)[:, 0]
    assert lag1_autocorr_within(hourly_returns, labels, "trending") > 0.15
    assert lag1_autocorr_within(hourly_returns, labels, "mean_reverting") < -0.1
    assert abs(lag1_autocorr_within(hourly_returns, labels, "noise")) < 0.1


def test_regimes_last_whole_days_in_the_documented_range_and_all_occur(regimes):
    runs = regime_runs(regimes)
    complete = runs["size"].iloc[:-1]  # the last run is cut off by the end of the span
    assert (complete % BARS_PER_DAY == 0).all()
    days = complete // BARS_PER_DAY
    assert days.between(MIN_REGIME_DAYS, MAX_REGIME_DAYS).all()
    assert days.nunique() >= 4  # durations really are random
    assert set(runs["first"]) == set(REGIMES)
    assert list(regimes.cat.categories) == list(REGIMES)


def test_volume_rises_with_absolute_return(bars):
    abs_returns = pd.Series(np.abs(log_returns(bars)))
    assert abs_returns.corr(bars["volume"], method="spearman") > 0.2


def test_volume_is_u_shaped_over_the_utc_day(bars):
    by_hour = bars.groupby(bars["ts"].dt.hour)["volume"].mean()
    assert by_hour.idxmin() in range(10, 14)
    assert by_hour.idxmax() in (0, 1, 22, 23)
    assert by_hour.max() > 2.5 * by_hour.min()


def test_a_year_generates_quickly():
    generate.cache_clear()
    start = time.perf_counter()
    year = SyntheticMarket(seed=1, origin=ORIGIN).base_bars("BTC", 365)
    assert time.perf_counter() - start < 2.0
    assert len(year) == 365 * BARS_PER_DAY


def test_returned_frames_are_copies_callers_may_mutate():
    bars = MARKET.base_bars("BTC", 5)
    bars["close"] = 0.0
    assert (MARKET.base_bars("BTC", 5)["close"] > 0).all()


@pytest.mark.parametrize(
    "origin", [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-01 03:00", tz="UTC")]
)
def test_origin_must_be_a_utc_midnight(origin):
    with pytest.raises(ValueError, match="origin"):
        SyntheticMarket(seed=1, origin=origin)
