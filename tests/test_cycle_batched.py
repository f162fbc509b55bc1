"""The batched cycle does exactly the work of the same cycle run pair by pair: on two copies of
one store, hour after hour of bars through the engine's cycle (all pairs at once in one, one
pair at a time in the other) leave identical bars, snapshots (features, predictions, setup
flags, targets) and setups, real and shadow."""

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

from alpha12 import cycle, models, signals, snapshots, tracker, training
from alpha12.clock import ManualClock
from alpha12.config import Settings
from alpha12.features import latest_values
from alpha12.registry import FALLBACK_INTERVAL
from alpha12.services import Alpha12
from alpha12.sources.replay import SyntheticReplay
from alpha12.store import PendingTail
from alpha12.timeframes import interval_delta
from alpha12.vocabulary import ModelStatus

ASSETS, INTERVALS = ("BTC", "ETH", "SOL"), ("5m", "1h", "4h")
HISTORY_DAYS, STEPS = 12, 18  # 18 steps of 5 minutes: more than the 5m horizon (12 bars)


def open_app(settings: Settings, now: pd.Timestamp | None = None) -> Alpha12:
    source = SyntheticReplay(settings.seed, HISTORY_DAYS, future_days=2)
    clock = ManualClock(now or source.default_start)
    return Alpha12.open(settings=settings, clock=clock, source=source)


def trading(settings: Settings) -> Settings:
    """Entry rules that trade often, so a few hours open and close setups."""
    for interval in INTERVALS:
        settings = settings.with_timeframe(interval, entry_threshold=0.51)
    return settings


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A collected, backfilled store: BTC served by its fallback, ETH 1h by its own model with
    a challenger in shadow, SOL by no model (its rows get no probability)."""
    folder = tmp_path_factory.mktemp("built")
    settings = trading(
        dataclasses.replace(
            Settings(),
            assets=ASSETS,
            intervals=INTERVALS,
            history_days=HISTORY_DAYS,
            db_path=folder / "store.duckdb",
            models_dir=folder / "models",
        )
    )
    app = open_app(settings)
    app.collect_once()
    app.backfill()
    now = app.clock.now()
    model = models.fit(
        training.training_frame(app.store, settings, "ETH", "1h", now), settings.timeframe("1h")
    )
    app.registry.register("BTC", FALLBACK_INTERVAL, model, now, "test")
    app.registry.register("ETH", "1h", model, now, "test")
    app.registry.register("ETH", "1h", model, now, "test", ModelStatus.SHADOW)
    app.close()
    return settings


def closed_at(interval: str, now: pd.Timestamp) -> bool:
    """Whether a bar of `interval` closes at `now` (the pairs the engine finds due)."""
    return (now - pd.Timestamp(0, tz="UTC")) % interval_delta(interval) == pd.Timedelta(0)


def run_copy(built: Settings, folder, pair_by_pair: bool) -> dict[str, pd.DataFrame]:
    """STEPS cycles of 5 minutes on a copy of the built store; its tables, ids left out (the
    order of inserts differs) and rows sorted by their keys."""
    shutil.copytree(built.db_path.parent, folder)
    settings = dataclasses.replace(
        built, db_path=folder / built.db_path.name, models_dir=folder / built.models_dir.name
    )
    app = open_app(settings)
    for _ in range(STEPS):
        app.clock.advance(minutes=5)
        now = app.clock.now()
        pairs = [pair for pair in app.pairs() if closed_at(pair[1], now)]
        for batch in [[pair] for pair in pairs] if pair_by_pair else [pairs]:
            app.engine.cycle(batch, now)
    keys = "asset, interval, ts"
    tables = {
        "bars": app.store.query(f"SELECT * FROM bars ORDER BY {keys}"),
        "snapshots": app.store.query(f"SELECT * EXCLUDE (id) FROM snapshots ORDER BY {keys}"),
        "setups": app.store.query(f"SELECT * EXCLUDE (id) FROM setups ORDER BY {keys}, shadow"),
        "errors": app.store.query("SELECT * FROM events WHERE level = 'error'"),
    }
    app.close()
    return tables


@pytest.mark.slow
def test_the_batched_cycle_equals_the_cycle_pair_by_pair(built, tmp_path):
    batched = run_copy(built, tmp_path / "batched", pair_by_pair=False)
    single = run_copy(built, tmp_path / "single", pair_by_pair=True)
    assert batched["errors"].empty and single["errors"].empty, batched["errors"]["message"]
    for table in ("bars", "snapshots", "setups"):
        pd.testing.assert_frame_equal(batched[table], single[table], check_exact=True)
    live = batched["snapshots"][batched["snapshots"]["probability"].notna()]
    setups = batched["setups"]
    # The run covers what it compares: live predictions by every kind of model, shadow and
    # real setups opened and closed, targets filled after the live rows.
    assert set(live["model_scope"]) == {"fallback", "timeframe"}
    assert set(live["asset"]) == {"BTC", "ETH"}
    assert setups["shadow"].any() and (~setups["shadow"]).any()
    assert (setups["status"] == "closed").any()
    start = SyntheticReplay(built.seed, HISTORY_DAYS).default_start
    assert batched["snapshots"].dropna(subset=["target"])["ts"].max() > start


def test_a_tail_that_breaks_a_batch_fails_alone(built):
    """Features, targets and exits are computed for all pairs at once; a tail that makes that
    fail (here one without its highs) fails on its own, and every other pair gets its values."""
    settings = built
    app = open_app(settings)  # only read: the other test copies this store
    try:
        bars = {asset: app.store.read_bars(asset, "1h").iloc[-1000:] for asset in ASSETS}
    finally:
        app.close()
    bars["ETH"] = bars["ETH"].drop(columns="high")
    results = {(asset, "1h"): cycle.PairAnalysis(asset, "1h") for asset in ASSETS}
    tails = [PendingTail(asset, "1h", 1, None, bars[asset]) for asset in ASSETS]
    work = cycle._features(results, tails)
    assert [item.result.asset for item in work] == ["BTC", "SOL"]
    assert isinstance(results[("ETH", "1h")].error, KeyError)
    for item in work:
        np.testing.assert_array_equal(item.features[0], latest_values(bars[item.result.asset]))
    work.insert(1, cycle._PairWork(results[("ETH", "1h")], bars["ETH"], None, None))
    results[("ETH", "1h")].error = None
    matured = cycle._mature_all(work, settings)
    assert [item.result.asset for item in matured] == ["BTC", "SOL"]
    assert isinstance(results[("ETH", "1h")].error, KeyError)
    for item in matured:
        alone = snapshots.matured_targets(bars[item.result.asset], "1h", settings)
        for column, values in alone.items():
            np.testing.assert_array_equal(item.matured[column], values)
    results[("ETH", "1h")].error = None
    horizon = settings.timeframe("1h").horizon_bars
    for item in work:
        item.setups_open = setups_on_last_bars(item.result.asset, item.bars, settings)
        item.bars_since_entry = item.bars
    cycle._per_timeframe(
        work, "exits", lambda interval, group: cycle._exits(group, interval, settings)
    )
    resolved = cycle._each(work, cycle._resolve, settings)
    assert [item.result.asset for item in resolved] == ["BTC", "SOL"]
    assert isinstance(results[("ETH", "1h")].error, KeyError)
    for item in resolved:
        alone = tracker.resolve(
            item.setups_open, item.bars, "1h", horizon, settings.round_trip_cost_bps
        )
        pd.testing.assert_frame_equal(item.exits, alone)
        assert 0 < item.result.closed < 30  # the newest setups are still open


def setups_on_last_bars(asset: str, bars: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """A long setup on each of the last 30 bars, as earlier cycles would have opened them."""
    recent, timeframe = bars.iloc[-30:], settings.timeframe("1h")
    rows = [
        signals.make_setup(asset, "1h", ts, close, close / 50, 0.9, timeframe, 1, "x").as_row()
        for ts, close in zip(recent["ts"], recent["close"], strict=True)
    ]
    return pd.DataFrame(rows).assign(id=range(len(rows)))
