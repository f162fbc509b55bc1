"""Collection: idempotent passes, one failing pair never stops the others, backoff in clock time."""

import pandas as pd
import pytest

from alpha12.clock import ManualClock
from alpha12.collector import BACKOFF_BASE, REFETCH_TRIES, Backoff, collect_once, collect_pair
from alpha12.sources import SourceError, TemporarySourceError, fetch_each
from alpha12.sources.replay import SyntheticReplay
from alpha12.timeframes import INTERVALS, interval_delta

ASSETS = ("BTC", "ETH")
NOW = pd.Timestamp("2025-01-04 06:02", tz="UTC")


class Scripted:
    """Wraps a source; `failures[(asset, interval)]` lists errors to raise on the next calls."""

    def __init__(self, inner):
        self.inner, self.name, self.live = inner, "scripted", False
        self.failures: dict[tuple[str, str], list[Exception]] = {}
        self.calls: list[tuple[str, str, pd.Timestamp | None, pd.Timestamp]] = []

    def fetch(self, asset, interval, start, end):
        self.calls.append((asset, interval, start, end))
        pending = self.failures.get((asset, interval))
        if pending:
            raise pending.pop(0)
        return self.inner.fetch(asset, interval, start, end)


@pytest.fixture(scope="module")
def replay() -> SyntheticReplay:
    return SyntheticReplay(seed=8, history_days=3, future_days=2)


@pytest.fixture
def source(replay) -> Scripted:
    return Scripted(replay)


def bar_counts(store) -> dict[tuple[str, str], int]:
    table = store.query("SELECT asset, interval, count(*) AS n FROM bars GROUP BY ALL")
    return {(r.asset, r.interval): r.n for r in table.itertuples()}


def assert_contiguous(store, asset: str, interval: str) -> None:
    ts = store.read_bars(asset, interval)["ts"]
    assert ts.diff().dropna().eq(interval_delta(interval)).all(), (asset, interval)


def test_collect_fills_every_pair_and_again_adds_nothing(store, source, replay):
    first = collect_once(store, source, ASSETS, INTERVALS, NOW)
    assert all(r.error is None and r.new_bars > 0 for r in first)
    counts = bar_counts(store)
    for asset in ASSETS:
        for interval in INTERVALS:
            assert counts[(asset, interval)] == len(replay.fetch(asset, interval, None, NOW))
    again = collect_once(store, source, ASSETS, INTERVALS, NOW)
    assert [r.new_bars for r in again] == [0] * len(again)
    assert bar_counts(store) == counts
    # the second pass asks only for what comes after the last stored bar
    assert all(start is not None for _, _, start, _ in source.calls[len(first) :])


def test_later_passes_add_exactly_the_newly_closed_bars(store, source):
    collect_once(store, source, ASSETS, INTERVALS, NOW)
    before = bar_counts(store)
    later = NOW + pd.Timedelta(hours=4)  # 06:02 -> 10:02
    passed = collect_once(store, source, ASSETS, INTERVALS, later)
    results = {(r.asset, r.interval): r.new_bars for r in passed}
    expected = {"5m": 48, "15m": 16, "1h": 4, "4h": 1, "1d": 0}  # the 4h bar 04:00-08:00 closed
    after = bar_counts(store)
    for asset in ASSETS:
        for interval in INTERVALS:
            pair = (asset, interval)
            assert results[pair] == expected[interval]
            assert after[pair] == before[pair] + expected[interval]
            assert_contiguous(store, asset, interval)


def test_one_failing_pair_leaves_the_others_collected(store, source):
    source.failures[("ETH", "1h")] = [SourceError("exchange says no")]
    source.failures[("BTC", "15m")] = [KeyError("a bug in a source")]
    passed = collect_once(store, source, ASSETS, INTERVALS, NOW)
    results = {(r.asset, r.interval): r for r in passed}
    assert results[("ETH", "1h")].error == "exchange says no"
    assert "KeyError" in results[("BTC", "15m")].error
    counts = bar_counts(store)
    assert ("ETH", "1h") not in counts and ("BTC", "15m") not in counts
    assert len(counts) == len(ASSETS) * len(INTERVALS) - 2
    events = store.events().set_index(["asset", "interval"])
    assert events.loc[("ETH", "1h"), "level"] == "error"
    assert events.loc[("ETH", "1h"), "message"] == "exchange says no"
    assert "KeyError" in events.loc[("BTC", "15m"), "message"]
    assert len(events) == 2


def test_answers_validated_together_keep_each_pair_its_own_fate(store, replay):
    """A timeframe's answers pass the gate together (bars.validate_many): an answer without a
    volume, one that is no frame at all (a source's bug) and one with a bad row cost only their
    own pair, and only that row."""

    class Mixed:
        name, live = "mixed", False

        def fetch(self, asset, interval, start, end):
            bars = replay.fetch(asset, interval, start, end)
            if asset == "ETH":
                return bars.drop(columns="volume")
            if asset == "SOL":
                return None
            if asset == "XRP":
                return bars.assign(volume=bars["volume"].where(bars.index != 3, -1.0))
            return bars

    passed = collect_once(store, Mixed(), ["BTC", "ETH", "SOL", "XRP"], ["1h"], NOW)
    results = {r.asset: r for r in passed}
    assert results["ETH"].error.startswith("missing column(s): volume")
    assert results["SOL"].error.startswith("collection failed: AttributeError")
    assert results["XRP"].error is None and results["XRP"].rejected == 1
    full = {asset: len(replay.fetch(asset, "1h", None, NOW)) for asset in ("BTC", "XRP")}
    assert bar_counts(store) == {("BTC", "1h"): full["BTC"], ("XRP", "1h"): full["XRP"] - 1}


def test_a_source_that_answers_many_pairs_is_asked_once_a_pass(store, replay):
    """fetch_many: one request for every pair of a pass; a pair it fails costs only that pair."""

    class Batched(Scripted):
        def fetch_many(self, starts, end):
            self.batches.append(sorted(starts))
            return fetch_each(self, starts, end)

    source = Batched(replay)
    source.batches = []
    source.failures[("ETH", "1h")] = [SourceError("exchange says no")]
    passed = collect_once(store, source, ASSETS, INTERVALS, NOW)
    assert source.batches == [sorted((asset, i) for asset in ASSETS for i in INTERVALS)]
    errors = {(r.asset, r.interval): r.error for r in passed if r.error}
    assert errors == {("ETH", "1h"): "exchange says no"}
    assert len(bar_counts(store)) == len(ASSETS) * len(INTERVALS) - 1


def test_rejected_rows_are_counted_and_logged(store, replay):
    class Dirty:
        name, live = "dirty", False

        def fetch(self, asset, interval, start, end):
            bars = replay.fetch(asset, interval, start, end)
            return bars.assign(volume=bars["volume"].where(bars.index != 3, -1.0))

    [result] = collect_once(store, Dirty(), ["SOL"], ["1h"], NOW)
    assert result.rejected == 1
    assert len(store.read_bars("SOL", "1h")) == len(replay.fetch("SOL", "1h", None, NOW)) - 1
    assert store.bar_summary()["rejected"].tolist() == [1]
    assert "1 negative volume" in store.events()["message"].iloc[0]


def test_temporary_errors_back_off_in_clock_time_and_recover_without_a_gap(store, source):
    clock = ManualClock(NOW)
    backoff = Backoff()
    pair = ("BTC", "5m")
    collect_pair(store, source, *pair, clock.now(), backoff)
    source.failures[pair] = [TemporarySourceError("rate limited")] * 2
    source.calls.clear()

    clock.advance(minutes=10)  # two new 5m bars closed; the source fails
    failed = collect_pair(store, source, *pair, clock.now(), backoff)
    assert "rate limited" in failed.error and "retrying in" in failed.error
    assert store.events()["level"].tolist() == ["warning"]

    clock.advance(seconds=BACKOFF_BASE.total_seconds() - 1)
    assert collect_pair(store, source, *pair, clock.now(), backoff).skipped
    assert len(source.calls) == 1  # skipped without asking the source

    clock.advance(seconds=1)  # the first backoff has passed: retried, fails again, waits longer
    assert collect_pair(store, source, *pair, clock.now(), backoff).error
    clock.advance(seconds=2 * BACKOFF_BASE.total_seconds() - 1)
    assert collect_pair(store, source, *pair, clock.now(), backoff).skipped
    assert len(source.calls) == 2

    clock.advance(minutes=20)  # the source has healed
    healed = collect_pair(store, source, *pair, clock.now(), backoff)
    assert healed.error is None and healed.new_bars == 6  # 06:00 .. 06:25 (06:30 not closed)
    assert_contiguous(store, *pair)
    stored = store.read_bars(*pair)
    assert stored["ts"].iloc[-1] + interval_delta("5m") <= clock.now()
    assert stored["ts"].iloc[-1] + 2 * interval_delta("5m") > clock.now()
    assert backoff.failures == {} and backoff.retry_at == {}


def test_backoff_grows_exponentially_up_to_a_cap():
    backoff = Backoff()
    key, now = ("BTC", "5m"), NOW
    delays = [backoff.failed(key, now) for _ in range(10)]
    assert delays[:4] == [BACKOFF_BASE * k for k in (1, 2, 4, 8)]
    assert delays[-1] == pd.Timedelta(minutes=30)
    assert backoff.waiting(key, now + pd.Timedelta(minutes=29))
    assert not backoff.waiting(key, now + pd.Timedelta(minutes=30))
    assert not backoff.waiting(("ETH", "5m"), now)  # other pairs are not held back


class Garbling:
    """The replay, with the close of the bars at `garbled` times sent as NaN while `broken`."""

    name, live = "garbling", False

    def __init__(self, inner, garbled: set[pd.Timestamp]):
        self.inner, self.garbled, self.broken = inner, garbled, True

    def fetch(self, asset, interval, start, end):
        bars = self.inner.fetch(asset, interval, start, end)
        if self.broken:
            bars.loc[bars["ts"].isin(self.garbled), "close"] = float("nan")
        return bars


def test_bars_that_came_garbled_are_asked_for_again_once_the_source_heals(store, replay):
    pair, clock, backoff = ("BTC", "5m"), ManualClock(NOW), Backoff()
    collect_pair(store, replay, *pair, clock.now(), backoff)
    clock.advance(hours=1)
    inside = {NOW.floor("5min") + pd.Timedelta(minutes=m) for m in (10, 15)}
    source = Garbling(replay, inside)
    garbled = collect_pair(store, source, *pair, clock.now(), backoff)
    assert garbled.rejected == 2 and set(store.read_bars(*pair)["ts"]).isdisjoint(inside)
    source.broken = False  # healed: the next pass asks from the first garbled bar
    clock.advance(minutes=5)
    collect_pair(store, source, *pair, clock.now(), backoff)
    assert inside <= set(store.read_bars(*pair)["ts"])
    assert_contiguous(store, *pair)
    assert backoff.refetch == {}


def test_a_bar_that_never_comes_clean_is_given_up_after_a_few_passes(store, replay):
    pair, clock, backoff = ("BTC", "5m"), ManualClock(NOW), Backoff()
    collect_pair(store, replay, *pair, clock.now(), backoff)
    source = Garbling(replay, {NOW.floor("5min") + pd.Timedelta(minutes=10)})
    for _ in range(REFETCH_TRIES + 1):
        clock.advance(minutes=30)
        collect_pair(store, source, *pair, clock.now(), backoff)
    assert backoff.refetch == {}  # the gap is accepted, and collection goes on from the newest
    messages = store.events(min_level="warning")["message"]
    assert messages.str.contains("still came garbled after").sum() == 1
    last = store.read_bars(*pair)["ts"].iloc[-1]
    assert last + 2 * interval_delta("5m") > clock.now()
