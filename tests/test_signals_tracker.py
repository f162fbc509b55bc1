"""Setups from predictions, and their resolution: the tracker and the targets agree trade for
trade on the same bars, in both directions, net of costs."""

import numpy as np
import pandas as pd
import pytest

from alpha12 import features, signals, targets, tracker
from alpha12.config import Settings

SETTINGS = Settings()
COST_BPS = SETTINGS.round_trip_cost_bps
TS = pd.Timestamp("2025-03-01 10:00", tz="UTC")


def gappy_bars(n: int, seed: int) -> pd.DataFrame:
    """Valid 1h bars whose opens gap away from the previous close, so fills at the open
    (a gap through a barrier) happen too."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    previous = np.r_[100.0, close[:-1]]
    gap = np.where(rng.random(n) < 0.15, rng.normal(0, 0.02, n), 0.0)
    open_ = previous * np.exp(gap)
    return pd.DataFrame(
        {
            "ts": pd.date_range("2025-01-01", periods=n, freq="1h", tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n))),
            "low": np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n))),
            "close": close,
            "volume": rng.uniform(1, 5, n),
        }
    )


# --- make_setup ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probability", "direction"),
    [(0.9, 1), (0.55, 1), (0.5499, 0), (0.5, 0), (0.4501, 0), (0.45, -1), (0.1, -1)],
)
def test_direction_follows_the_threshold_and_its_mirror(probability, direction):
    assert signals.direction_for(probability, 0.55) == direction


def test_a_long_setup_has_its_take_profit_above_and_its_stop_below():
    timeframe = SETTINGS.with_timeframe("1h", tp_mult=2.0, sl_mult=1.0).timeframe("1h")
    setup = signals.make_setup("BTC", "1h", TS, 100.0, 4.0, 0.7, timeframe, 3, "timeframe")
    assert (setup.direction, setup.entry, setup.take_profit, setup.stop) == (1, 100.0, 108.0, 96.0)
    assert setup.expires_ts == TS + pd.Timedelta(hours=timeframe.horizon_bars + 1)
    assert (setup.model_version, setup.model_scope, setup.origin) == (3, "timeframe", "live")
    assert setup.probability == 0.7 and setup.atr == 4.0


def test_a_short_setup_mirrors_the_barriers():
    timeframe = SETTINGS.with_timeframe("1h", tp_mult=2.0, sl_mult=1.0).timeframe("1h")
    setup = signals.make_setup(
        "BTC", "1h", TS, 100.0, 4.0, 0.3, timeframe, 1, "fallback", origin="warm_start"
    )
    assert (setup.direction, setup.take_profit, setup.stop) == (-1, 92.0, 104.0)
    assert (setup.model_scope, setup.origin) == ("fallback", "warm_start")


@pytest.mark.parametrize(("probability", "atr"), [(0.5, 4.0), (0.9, 0.0), (0.9, float("nan"))])
def test_no_setup_without_an_edge_or_a_usable_atr(probability, atr):
    timeframe = SETTINGS.timeframe("1h")
    assert signals.make_setup("BTC", "1h", TS, 100.0, atr, probability, timeframe, 1, "x") is None


# --- tracker == targets ---------------------------------------------------------------------


def setups_at_every_bar(bars: pd.DataFrame, interval: str, direction: int) -> pd.DataFrame:
    """A setup of `direction` at every bar with an ATR, made by signals.make_setup."""
    atr = features.atr(bars["high"], bars["low"], bars["close"])
    probability = 0.9 if direction == 1 else 0.1
    timeframe = SETTINGS.timeframe(interval)
    rows = [
        signals.make_setup(
            "BTC", interval, ts, close, a, probability, timeframe, 1, "timeframe"
        ).as_row()
        for ts, close, a in zip(bars["ts"], bars["close"], atr, strict=True)
        if a > 0
    ]
    return pd.DataFrame(rows).assign(id=lambda frame: frame.index.to_numpy() + 1)


@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize("seed", [0, 1])
def test_tracker_and_targets_agree_trade_for_trade(direction, seed):
    bars = gappy_bars(700, seed)
    timeframe = SETTINGS.timeframe("1h")
    setups = setups_at_every_bar(bars, "1h", direction)
    resolved = tracker.resolve(setups, bars, "1h", timeframe.horizon_bars, COST_BPS).set_index("id")
    labels = targets.triple_barrier(
        bars,
        features.atr(bars["high"], bars["low"], bars["close"]),
        interval="1h",
        tp_mult=timeframe.tp_mult,
        sl_mult=timeframe.sl_mult,
        horizon=timeframe.horizon_bars,
        direction=direction,
        round_trip_cost_bps=COST_BPS,
    ).set_index(bars["ts"])
    expected = labels.loc[setups["ts"]].set_axis(setups["id"])
    known = expected["target_ts"].notna()
    # The same trades resolve: all but some of the last horizon's worth.
    assert resolved.index.tolist() == expected.index[known].tolist()
    assert len(setups) - timeframe.horizon_bars <= len(resolved) < len(setups)
    expected = expected[known]
    np.testing.assert_array_equal(resolved["exit_ts"], expected["target_ts"])
    np.testing.assert_array_equal(resolved["exit_price"], expected["exit_price"])
    np.testing.assert_array_equal(resolved["pnl_pct"], expected["pnl_pct"])
    np.testing.assert_allclose(resolved["r_multiple"], expected["r_multiple"], rtol=1e-12)
    np.testing.assert_array_equal(resolved["exit_reason"], expected["exit_reason"].astype(object))
    np.testing.assert_array_equal(resolved["outcome"] == "win", expected["label"] == 1)
    # Every kind of exit occurred, and the round-trip cost was charged on each trade.
    assert set(resolved["exit_reason"]) == {"take_profit", "stop", "horizon"}
    entry = setups.set_index("id")["entry"].loc[resolved.index]
    gross_pct = direction * (resolved["exit_price"] - entry) / entry * 100
    np.testing.assert_allclose(resolved["pnl_pct"], gross_pct - COST_BPS / 100, atol=1e-12)


def test_the_tracker_resolves_only_what_the_bars_so_far_can_tell(seed=3):
    """Live, the tracker sees the bars up to now; a trade resolves exactly when its target
    becomes known, with the same outcome it has in hindsight."""
    bars = gappy_bars(400, seed)
    timeframe = SETTINGS.timeframe("1h")
    setups = setups_at_every_bar(bars, "1h", 1)
    hindsight = tracker.resolve(setups, bars, "1h", timeframe.horizon_bars, COST_BPS).set_index(
        "id"
    )
    for cut in (150, 151, 260, 399):
        seen = bars.iloc[:cut]
        now = seen["ts"].iloc[-1] + pd.Timedelta(hours=1)
        so_far = tracker.resolve(setups, seen, "1h", timeframe.horizon_bars, COST_BPS)
        known = hindsight[hindsight["exit_ts"] <= now]
        assert so_far["id"].tolist() == known.index.tolist()
        pd.testing.assert_frame_equal(so_far.set_index("id"), known)


def test_resolving_nothing_gives_the_columns():
    empty = tracker.resolve(pd.DataFrame(), gappy_bars(10, 0), "1h", 12, COST_BPS)
    assert empty.empty and "pnl_pct" in empty.columns and "exit_ts" in empty.columns


def test_many_books_resolve_at_once_as_each_does_alone():
    """The cycle resolves every pair's open setups of a timeframe in one walk over their bars
    laid end to end; each book must get exactly what it gets alone, and a trade whose bars
    so far end mid-path must not run on into the next pair's bars."""
    horizon = SETTINGS.timeframe("1h").horizon_bars
    bars = [gappy_bars(300, seed) for seed in range(4)]
    books = [
        (setups_at_every_bar(bars[0], "1h", 1), bars[0].iloc[:200]),  # ends mid-path
        (setups_at_every_bar(bars[1], "1h", -1).iloc[::7], bars[1]),
        (setups_at_every_bar(bars[2], "1h", 1).iloc[:0], bars[2]),  # nothing open
        (setups_at_every_bar(bars[3], "1h", 1).iloc[-5:], bars[3].iloc[:0]),  # no bars yet
        (setups_at_every_bar(bars[2], "1h", 1).iloc[150:190], bars[2].iloc[:170]),
    ]
    together = tracker.resolve_many(books, "1h", horizon, COST_BPS)
    for (setups, book_bars), exits in zip(books, together, strict=True):
        alone = tracker.resolve(setups, book_bars, "1h", horizon, COST_BPS)
        pd.testing.assert_frame_equal(exits, alone, check_dtype=False)
    assert [len(exits) > 0 for exits in together] == [True, True, False, False, True]
    unresolved = set(books[0][0]["id"]) - set(together[0]["id"])
    assert len(unresolved) > len(books[0][0]) - 200  # the bars after 200 are unseen
