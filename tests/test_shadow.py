"""Shadow setups in the live cycle: a challenger in shadow (or a serving model without an edge
on a timeframe that does not trade without one) opens would-be setups made by the same signals
and resolved by the same tracker as real ones, kept out of every count of real trades, and
still judged by the monitor."""

import dataclasses
from dataclasses import dataclass

import pandas as pd
import pytest

from alpha12 import cycle, metrics, models, training
from alpha12.bars import resample
from alpha12.clock import ManualClock
from alpha12.config import Settings
from alpha12.monitor import PerformanceMonitor
from alpha12.registry import Registry
from alpha12.sources.replay import SYNTHETIC_ORIGIN
from alpha12.sources.synthetic import SyntheticMarket
from alpha12.store import Store
from alpha12.vocabulary import Action, ModelStatus, PairStatus

DAYS, LIVE_BARS = 40, 72
# What a shadow setup must share with the real setup of the same model on the same bar.
TRADE_COLUMNS = [
    "ts",
    "direction",
    "entry",
    "stop",
    "take_profit",
    "atr",
    "expires_ts",
    "probability",
    "model_scope",
    "status",
    "exit_reason",
    "exit_ts",
    "exit_price",
    "pnl_pct",
    "r_multiple",
    "origin",
]


@dataclass
class Live:
    """A store with BTC 1h history up to LIVE_BARS before its end, backfilled, and a model
    fitted as of then; `run` lets the remaining bars arrive one by one through the cycle."""

    store: Store
    registry: Registry
    clock: ManualClock
    model: models.TrainedModel
    arriving: pd.DataFrame

    def run(self, settings: Settings) -> None:
        for n in range(len(self.arriving)):
            self.store.upsert_bars("BTC", "1h", self.arriving.iloc[n : n + 1])
            self.clock.advance(hours=1)
            cycle.analyze_pair(self.store, self.registry, settings, "BTC", "1h")

    def setups(self, shadow: bool) -> pd.DataFrame:
        return self.store.query("SELECT * FROM setups WHERE shadow = ? ORDER BY ts", [shadow])


@pytest.fixture
def live(settings, store) -> Live:
    bars = resample(SyntheticMarket(seed=12, origin=SYNTHETIC_ORIGIN).base_bars("BTC", DAYS), "1h")
    store.upsert_bars("BTC", "1h", bars.iloc[:-LIVE_BARS])
    cycle.backfill_pair(store, settings, "BTC", "1h")
    clock = ManualClock(bars["ts"].iloc[-LIVE_BARS])  # the close of the last stored bar
    frame = training.training_frame(store, settings, "BTC", "1h", clock.now())
    model = models.fit(frame, settings.timeframe("1h"))
    assert isinstance(model, models.TrainedModel)
    registry = Registry(settings.models_dir, store, clock)
    return Live(store, registry, clock, model, bars.iloc[-LIVE_BARS:])


def trading(settings: Settings, **changes) -> Settings:
    """Settings whose 1h entry rule trades often, so a few days make several trades."""
    return settings.with_timeframe("1h", entry_threshold=0.51, **changes)


@pytest.mark.slow
def test_shadow_setups_resolve_exactly_like_real_ones(live, settings):
    """The same model serving (v1) and in shadow (v2): bar for bar the same setups, closed at
    the same exits with the same pnl, only the shadow flag and the version differ."""
    live.registry.register("BTC", "1h", live.model, live.clock.now(), "test")
    live.registry.register("BTC", "1h", live.model, live.clock.now(), "test", ModelStatus.SHADOW)
    live.run(trading(settings))
    real, shadow = live.setups(shadow=False), live.setups(shadow=True)
    assert len(real) >= 3 and (real["status"] == "closed").sum() >= 2
    assert set(real["model_version"]) == {1} and set(shadow["model_version"]) == {2}
    pd.testing.assert_frame_equal(real[TRADE_COLUMNS], shadow[TRADE_COLUMNS])
    # Only the real ones are the pair's trades.
    assert len(live.store.pair_setups("BTC", "1h", 1000)) == len(real)
    assert len(live.store.closed_trades("BTC", "1h")) == (real["status"] == "closed").sum()
    snapshots = live.store.query("SELECT ts FROM snapshots WHERE setup_generated ORDER BY ts")
    assert snapshots["ts"].tolist() == real["ts"].tolist()


def test_a_pair_without_an_edge_trades_only_in_shadow_and_is_still_judged(live, settings):
    """trade_without_edge = false and a serving model whose hold-out AUC is a coin's: its
    setups open in shadow only; the monitor counts them as the model's trades, finds it
    degraded and retrains it."""
    coin = {**live.model.metrics, "roc_auc": 0.5}
    assert metrics.edge_verdict(coin)[0]
    no_edge = dataclasses.replace(live.model, metrics=coin)
    live.registry.register("BTC", "1h", no_edge, live.clock.now(), "test")
    strict = trading(settings, trade_without_edge=False, min_trades=3, win_rate=1.0)
    live.run(strict)
    shadow = live.setups(shadow=True)
    assert live.setups(shadow=False).empty and (shadow["status"] == "closed").sum() >= 3
    assert set(shadow["model_version"]) == {1}
    assert live.store.closed_trades("BTC", "1h").empty
    monitor = PerformanceMonitor(live.store, live.registry, lambda: strict, live.clock)
    assessment = monitor.assess("BTC", "1h")
    assert assessment.summary["trades"] == (shadow["status"] == "closed").sum()
    assert assessment.summary["pending"] == 0  # open shadow setups are no open position
    assert assessment.status == PairStatus.DEGRADED
    report = monitor.monitor_all_timeframes(["BTC"], ["1h"])["BTC_1h"]
    assert report["action"] in (Action.RECALIBRATED, Action.REJECTED_CHALLENGER, Action.SHADOWED)
