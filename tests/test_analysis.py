"""Snapshots, targets and training frames: no look-ahead through the stored path, from the
snapshot backfill to a trained model; the live per-bar update agrees with the backfill."""

import numpy as np
import pandas as pd
import pytest

from alpha12 import cycle, models, snapshots, training
from alpha12.bars import resample
from alpha12.clock import ManualClock
from alpha12.config import Settings
from alpha12.features import FEATURE_NAMES
from alpha12.registry import Registry
from alpha12.sources.replay import SYNTHETIC_ORIGIN
from alpha12.sources.synthetic import SyntheticMarket
from alpha12.store import Store

SETTINGS = Settings()
INTERVAL = "1h"
DAYS = 50
CUT_INDEX = 800  # t = the open time of this bar; every bar after it is rewritten
LIVE_BARS = 24  # bars that arrive through the live cycle: more than a horizon, so targets fill


def synthetic_bars(interval: str, days: int, asset: str = "BTC") -> pd.DataFrame:
    base = SyntheticMarket(seed=12, origin=SYNTHETIC_ORIGIN).base_bars(asset, days)
    return base if interval == "5m" else resample(base, interval)


def rewritten_after(bars: pd.DataFrame, cut: pd.Timestamp, seed: int = 1) -> pd.DataFrame:
    """The same bars up to `cut`, another (valid) market after it: each later bar scaled by
    its own random-walk factor, which also opens gaps between bars."""
    after = (bars["ts"] > cut).to_numpy()
    rng = np.random.default_rng(seed)
    factor = np.exp(np.cumsum(rng.normal(0.0, 0.02, after.sum())))
    out = bars.copy()
    for column in ("open", "high", "low", "close"):
        out.loc[after, column] = bars.loc[after, column].to_numpy() * factor
    out.loc[after, "volume"] = bars.loc[after, "volume"].to_numpy() * rng.uniform(
        0.3, 3, after.sum()
    )
    return out


def backfilled_store(path, bars: pd.DataFrame) -> Store:
    store = Store(path)
    store.upsert_bars("BTC", INTERVAL, bars)
    cycle.backfill_pair(store, SETTINGS, "BTC", INTERVAL)
    return store


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return synthetic_bars(INTERVAL, DAYS)


@pytest.fixture(scope="module")
def cut(bars) -> pd.Timestamp:
    return bars["ts"].iloc[CUT_INDEX]


@pytest.fixture(scope="module")
def rewritten(bars, cut) -> pd.DataFrame:
    return rewritten_after(bars, cut)


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory, bars, rewritten):
    """The same history up to t, different futures after it, each backfilled."""
    folder = tmp_path_factory.mktemp("look_ahead")
    original = backfilled_store(folder / "original.duckdb", bars)
    other = backfilled_store(folder / "rewritten.duckdb", rewritten)
    yield original, other
    original.close()
    other.close()


# --- look-ahead ---------------------------------------------------------------------------


def test_snapshot_rows_at_or_before_t_ignore_every_bar_after_t(bars, rewritten, cut):
    original = snapshots.snapshot_rows(bars, INTERVAL, SETTINGS)
    changed = snapshots.snapshot_rows(rewritten, INTERVAL, SETTINGS)
    past = (bars["ts"] <= cut).to_numpy()
    features = list(FEATURE_NAMES)
    pd.testing.assert_frame_equal(original.loc[past, features], changed.loc[past, features])
    # A target known by t is identical, and which targets are known by t is too.
    known = (original["target_ts"] <= cut).to_numpy()
    np.testing.assert_array_equal(known, (changed["target_ts"] <= cut).to_numpy())
    assert known.sum() > 600
    pd.testing.assert_frame_equal(original[known], changed[known])
    # The rewrite is real: later features change, and so do targets that resolve after t.
    assert not np.allclose(original.loc[~past, "logret_1"], changed.loc[~past, "logret_1"])
    pending = past & ~known
    assert pending.sum() >= 1
    assert not original.loc[pending, "pnl_pct"].equals(changed.loc[pending, "pnl_pct"])


def test_stored_snapshots_at_or_before_t_are_identical(two_stores, cut):
    original, other = (
        store.query("SELECT * EXCLUDE (id) FROM snapshots WHERE ts <= ? ORDER BY ts", [cut]).drop(
            columns=["target", "target_ts", "pnl_pct"]
        )
        for store in two_stores
    )
    assert len(original) == CUT_INDEX + 1
    pd.testing.assert_frame_equal(original, other)


def test_a_model_trained_as_of_t_is_the_same_whatever_happens_after_t(two_stores, cut):
    original = two_stores[0]
    frames = [training.training_frame(s, SETTINGS, "BTC", INTERVAL, cut) for s in two_stores]
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert (frames[0]["target_ts"] <= cut).all()
    timeframe = SETTINGS.timeframe(INTERVAL)
    first, second = (models.fit(frame, timeframe, seed=0) for frame in frames)
    assert isinstance(first, models.TrainedModel)
    # The same inputs, including bars long after t, get bit-identical probabilities.
    inputs = original.query(
        f"SELECT {', '.join(FEATURE_NAMES)} FROM snapshots ORDER BY ts"
    ).dropna()
    assert len(inputs) > 1000
    np.testing.assert_array_equal(first.predict_proba(inputs), second.predict_proba(inputs))
    assert first.metrics == second.metrics
    assert first.importances == second.importances
    assert (first.rows, first.window_start, first.window_end) == (
        second.rows,
        second.window_start,
        second.window_end,
    )


def test_training_later_than_t_does_see_the_rewritten_future(two_stores):
    """The control: the two stores differ once their futures are allowed in."""
    end = SYNTHETIC_ORIGIN + pd.Timedelta(days=DAYS)
    frames = [training.training_frame(s, SETTINGS, "BTC", INTERVAL, end) for s in two_stores]
    assert not frames[0]["logret_1"].equals(frames[1]["logret_1"])


def test_as_of_view_shows_only_outcomes_known_by_then(two_stores, cut):
    # Unequal barriers, so a short can resolve later than the long at the same bar.
    asymmetric = SETTINGS.with_timeframe(INTERVAL, tp_mult=3.0, sl_mult=1.0)
    history = training.labelled_history(two_stores[0], asymmetric, "BTC", INTERVAL)
    view = snapshots.as_of_view(history, cut, rows=len(history))
    assert (view["target_ts"] <= cut).all()
    assert len(view) == (history["target_ts"] <= cut).sum()
    # A short outcome resolving after t is hidden even when the long one resolved by t.
    known_rows = history[history["target_ts"] <= cut].reset_index(drop=True)
    hidden = ~(known_rows["short_target_ts"] <= cut)
    assert hidden.sum() > 0
    assert view.loc[hidden, "pnl_short"].isna().all()
    np.testing.assert_array_equal(
        view.loc[~hidden, "pnl_short"], known_rows.loc[~hidden, "pnl_short"]
    )
    assert "short_target_ts" not in view.columns


@pytest.mark.parametrize("train_rows", [300, 700])
def test_training_frames_keep_the_timeframes_train_rows_newest_rows(two_stores, train_rows):
    store = two_stores[0]
    end = SYNTHETIC_ORIGIN + pd.Timedelta(days=DAYS)
    settings = SETTINGS.with_timeframe(INTERVAL, train_rows=train_rows)
    frame = training.training_frame(store, settings, "BTC", INTERVAL, end)
    history = training.labelled_history(store, settings, "BTC", INTERVAL)
    assert len(frame) == train_rows < len(history)
    assert frame["ts"].iloc[-1] == history["ts"].iloc[-1]
    assert frame["ts"].is_monotonic_increasing


# --- backfill and the live update ----------------------------------------------------------


def test_backfill_is_idempotent_and_known_targets_are_never_rewritten(tmp_path, bars):
    store = backfilled_store(tmp_path / "s.duckdb", bars.iloc[:400])
    assert cycle.backfill_pair(store, SETTINGS, "BTC", INTERVAL) == 0
    assert store.scalar("SELECT count(*) FROM snapshots") == 400
    before = store.query("SELECT ts, target, target_ts, pnl_pct FROM snapshots ORDER BY ts")
    assert before["target"].notna().sum() > 350
    tampered = before.assign(target=1 - before["target"], pnl_pct=before["pnl_pct"] + 5)
    assert store.update_targets(snapshots.for_pair(tampered, "BTC", INTERVAL)) == 0
    after = store.query("SELECT ts, target, target_ts, pnl_pct FROM snapshots ORDER BY ts")
    pd.testing.assert_frame_equal(before, after)
    store.close()


@pytest.mark.parametrize("arriving", [1, LIVE_BARS])
def test_live_update_matches_a_full_backfill(tmp_path, bars, arriving):
    """Bars arriving one at a time (or as a catch-up batch) through cycle.analyze_pair
    store the same features and, once known, the same targets as a backfill of all bars."""
    n = 600
    live = backfilled_store(tmp_path / "live.duckdb", bars.iloc[: n - LIVE_BARS])
    registry = Registry(tmp_path / "models", live, ManualClock(bars["ts"].iloc[n]))
    for start in range(n - LIVE_BARS, n, arriving):
        live.upsert_bars("BTC", INTERVAL, bars.iloc[start : start + arriving])
        result = cycle.analyze_pair(live, registry, SETTINGS, "BTC", INTERVAL)
        assert result.snapshots == len(bars.iloc[start : start + arriving])
    full = backfilled_store(tmp_path / "full.duckdb", bars.iloc[:n])
    columns = f"ts, {', '.join(FEATURE_NAMES)}, target, target_ts, pnl_pct"
    live_rows, full_rows = (
        s.query(f"SELECT {columns} FROM snapshots ORDER BY ts") for s in (live, full)
    )
    assert len(live_rows) == n
    # Features and targets agree to the stored FLOAT precision.
    pd.testing.assert_frame_equal(live_rows, full_rows, check_exact=False, rtol=1e-6, atol=1e-6)
    assert live_rows["target"].notna().sum() == full_rows["target"].notna().sum() > 500
    live.close()
    full.close()


def test_the_targets_of_many_tails_at_once_are_each_tails_own(bars):
    """The cycle settles every pair's recent targets of a timeframe in one barrier walk over
    their tails laid end to end; each must get exactly what a walk over it alone gives, and
    no trade may run on into the next tail's bars."""
    timeframe = SETTINGS.timeframe(INTERVAL)
    recent = (timeframe.horizon_bars + 2) * 4
    tails = [bars.iloc[:700], rewritten_after(bars, bars["ts"].iloc[300]).iloc[:900]]
    tails += [bars.iloc[50:60], bars.iloc[:700]]  # shorter than `recent`; a tail again
    many = snapshots.matured_targets_of(tails, INTERVAL, SETTINGS)
    for tail, matured in zip(tails, many, strict=True):
        alone = snapshots.outcomes(
            tail, INTERVAL, timeframe, SETTINGS.round_trip_cost_bps, last=recent
        )
        np.testing.assert_array_equal(matured["ts"], snapshots.utc_micros(tail["ts"])[-recent:])
        np.testing.assert_array_equal(matured["target"], alone["label"].to_numpy())
        np.testing.assert_array_equal(matured["pnl_pct"], alone["pnl_pct"].to_numpy())
        np.testing.assert_array_equal(
            matured["target_ts"], snapshots.utc_micros(alone["target_ts"])
        )
        assert np.isnan(matured["target"][-1])  # the newest bar's trade has no path yet
    assert all(np.isfinite(m["target"][: -timeframe.horizon_bars]).all() for m in many[:2])
