"""Source faults: a source that raises, crashes, hangs, rate-limits, or answers empty frames or
garbage never stops collection or the engine. Every fault is an event (shown on the System
page); temporary faults (rate limits, no answer within `source_timeout_s`) back the pair off;
and once the source heals, the stored bars equal exactly what the healthy source serves for
the whole range: no bar lost, no gap. A hung fetch never piles up threads."""

from __future__ import annotations

import dataclasses
import random
import threading
import time

import pandas as pd
import pytest

from alpha12 import collector
from alpha12.clock import ManualClock
from alpha12.collector import Backoff, collect_once, collect_pair, fetches_in_flight
from alpha12.engine import Engine
from alpha12.services import Alpha12
from alpha12.sources import SourceError, TemporarySourceError
from alpha12.sources.replay import SyntheticReplay
from alpha12.store import Store
from tests.app.helpers import open_page

TIMEOUT_S = 0.5  # a hung fetch costs this much real time: small, yet no healthy fetch exceeds it
pytestmark = pytest.mark.timeout(120)  # a regression that hangs must fail, not stall the suite
PRICES = ["open", "high", "low", "close"]


def refuse(answer):
    raise SourceError("exchange refused the request")


def rate_limit(answer):
    raise TemporarySourceError("rate limited: HTTP 429")


def crash(answer):
    raise KeyError("a bug inside the source")


def nan_prices(answer):
    return answer.assign(**{c: float("nan") for c in PRICES})


def negative_prices(answer):
    return answer.assign(**{c: -answer[c] for c in PRICES})


# fault -> what the source answers instead of the healthy frame ("hang" is FaultySource.hang)
ANSWERS = {
    "ok": lambda answer: answer,
    "empty": lambda answer: answer.iloc[0:0],
    "no_columns": lambda answer: pd.DataFrame(),
    "error": refuse,
    "rate_limit": rate_limit,
    "crash": crash,
    "nan": nan_prices,
    "negative": negative_prices,
}
FAULTS = [*ANSWERS, "hang"]
TEMPORARY = {"rate_limit", "hang"}  # backed off
PERMANENT = {"error", "no_columns", "crash"}  # an error event, retried at the next bar
GARBAGE = {"nan", "negative"}  # every row rejected and counted, nothing stored
# the text each fault leaves in the pair's event
MESSAGES = {
    "error": "exchange refused the request",
    "no_columns": "missing column(s)",
    "crash": "KeyError",
    "rate_limit": "rate limited: HTTP 429",
    "hang": f"did not answer within {TIMEOUT_S:g} s",
    "nan": "missing value",
    "negative": "non-positive price",
}


class FaultySource:
    """The synthetic replay behind a script of faults per pair: each fetch of a pair takes the
    next fault of its script ('ok' once the script is used up). A hang blocks until
    `release_hung()`."""

    live = False

    def __init__(self, healthy: SyntheticReplay):
        self.healthy = healthy
        self.name = "faulty replay"
        self.scripts: dict[tuple[str, str], list[str]] = {}
        self.calls: list[tuple[str, str, str, int]] = []  # asset, interval, fault, healthy rows
        self._release = threading.Event()

    def fetch(self, asset, interval, start, end):
        script = self.scripts.get((asset, interval))
        fault = script.pop(0) if script else "ok"
        answer = self.healthy.fetch(asset, interval, start, end)
        self.calls.append((asset, interval, fault, len(answer)))
        if fault == "hang":
            self._release.wait()
            return answer  # too late: the collector has stopped waiting
        return ANSWERS[fault](answer)

    def release_hung(self) -> None:
        """Let every hung call return, and wait until the collector has forgotten them."""
        self._release.set()
        deadline = time.monotonic() + 10
        while fetches_in_flight():
            assert time.monotonic() < deadline, "a released fetch did not return"
            time.sleep(0.005)
        self._release = threading.Event()


@pytest.fixture(scope="module")
def healthy() -> SyntheticReplay:
    replay = SyntheticReplay(seed=21, history_days=2, future_days=3)
    warm_up(replay, ["BTC", "ETH"])
    return replay


def warm_up(replay: SyntheticReplay, assets) -> None:
    """Generate the assets' bars now: a first fetch doing it could take longer than TIMEOUT_S
    on a loaded machine and pass for a hang."""
    for asset in assets:
        replay.fetch(asset, "5m", None, replay.default_start)


@pytest.fixture
def source(healthy):
    faulty = FaultySource(healthy)
    yield faulty
    faulty.release_hung()  # never leave a blocked thread behind


def fetch_threads() -> int:
    return sum(t.name.startswith(collector.FETCH_THREAD_PREFIX) for t in threading.enumerate())


def assert_nothing_lost(store: Store, healthy: SyntheticReplay, pairs, now) -> None:
    """The stored bars of each pair are exactly what the healthy source serves up to `now`."""
    for asset, interval in pairs:
        pd.testing.assert_frame_equal(
            store.read_bars(asset, interval),
            healthy.fetch(asset, interval, None, now),
            check_exact=True,
            obj=f"{asset} {interval}",
        )


def pair_events(store: Store, asset: str, interval: str, after_id: int) -> pd.DataFrame:
    return store.query(
        "SELECT level, message FROM events WHERE asset = ? AND interval = ? AND id > ? ORDER BY id",
        [asset, interval, after_id],
    )


def last_event_id(store: Store) -> int:
    return store.scalar("SELECT coalesce(max(id), 0) FROM events")


# --- the collector under random faults, at scale ------------------------------------------

PAIRS = [(a, i) for a in ("BTC", "ETH") for i in ("5m", "1h")]
STEPS = 60  # 5-minute steps: 5 hours of market time
# weights of the faults drawn per call; hangs are rare because each costs TIMEOUT_S of real time
WEIGHTS = {"ok": 40, "hang": 1, **{f: 6 for f in FAULTS if f not in ("ok", "hang")}}


def check_call(fault: str, rows: int, result, events: pd.DataFrame, backed_off: bool) -> None:
    """What one faulty call must have left: the result, the event, the backoff."""
    assert backed_off == (fault in TEMPORARY), (fault, result)
    if fault in ("ok", "empty") or (fault in GARBAGE and rows == 0):
        assert result.error is None and events.empty, (fault, result, events)
        assert result.new_bars == (rows if fault == "ok" else 0)
        return
    [event] = events.itertuples()  # exactly one event per fault
    assert MESSAGES[fault] in event.message, (fault, event.message)
    if fault in GARBAGE:
        assert event.level == "warning" and result.rejected == rows and result.new_bars == 0
        assert result.error is None
    else:
        assert MESSAGES[fault] in result.error
        assert event.level == ("warning" if fault in TEMPORARY else "error")


def test_random_faults_on_four_pairs_lose_no_bar(store, source, healthy):
    rng = random.Random(7)
    for pair in PAIRS:
        source.scripts[pair] = rng.choices(list(WEIGHTS), list(WEIGHTS.values()), k=STEPS)
    clock, backoff = ManualClock(healthy.default_start), Backoff()
    for _ in range(STEPS):
        seen, first_event = len(source.calls), last_event_id(store)
        results = []
        for asset, interval in PAIRS:
            waiting = backoff.waiting((asset, interval), clock.now())
            [result] = collect_once(
                store, source, [asset], [interval], clock.now(), backoff, timeout_s=TIMEOUT_S
            )
            results.append((asset, interval, waiting, result))
        source.release_hung()
        calls = iter(source.calls[seen:])
        for asset, interval, waiting, result in results:
            events = pair_events(store, asset, interval, first_event)
            if waiting:  # backed off: the source is not even asked
                assert result.skipped and events.empty
                continue
            _, _, fault, rows = next(calls)
            backed_off = backoff.waiting((asset, interval), clock.now())
            check_call(fault, rows, result, events, backed_off)
        assert next(calls, None) is None
        clock.advance(minutes=5)
    faults = [call[2] for call in source.calls if call[2] != "ok"]
    assert len(faults) > 90 and set(faults) == set(FAULTS) - {"ok"}
    clock.advance(minutes=31)  # past the longest backoff: every pair is asked again, healthy
    collect_once(store, source, ["BTC", "ETH"], ["5m", "1h"], clock.now(), backoff)
    assert backoff.retry_at == {}
    assert_nothing_lost(store, healthy, PAIRS, clock.now())
    rejected = sum(rows for _, _, fault, rows in source.calls if fault in GARBAGE)
    assert store.scalar("SELECT sum(count) FROM rejections") == rejected


# --- a hung source: bounded by the timeout, never piling up threads -----------------------


def test_a_hung_fetch_times_out_is_backed_off_and_never_piles_up_threads(store, source, healthy):
    hung, other = ("BTC", "5m"), ("ETH", "5m")
    source.scripts[hung] = ["hang"]
    clock, backoff = ManualClock(healthy.default_start), Backoff()
    started = time.monotonic()
    result = collect_pair(store, source, *hung, clock.now(), backoff, timeout_s=TIMEOUT_S)
    assert time.monotonic() - started < TIMEOUT_S + 2.0  # the caller is not stalled
    assert f"did not answer within {TIMEOUT_S:g} s" in result.error
    assert "retrying in 0 days 00:00:30" in result.error
    assert backoff.waiting(hung, clock.now())
    assert store.events()["level"].tolist() == ["warning"]
    retries = 20
    for _ in range(retries):  # each time past the backoff, while the first call still hangs
        clock.advance(minutes=31)
        results = collect_once(
            store, source, ["BTC", "ETH"], ["5m"], clock.now(), backoff, timeout_s=TIMEOUT_S
        )
        assert "is still answering an earlier request for BTC 5m" in results[0].error
        assert results[1].error is None and results[1].new_bars > 0  # the others go on
        assert fetches_in_flight() == 1 and fetch_threads() == 1
    assert [c[:3] for c in source.calls].count((*hung, "hang")) == 1  # asked only once
    assert len([c for c in source.calls if c[:2] == hung]) == 1
    source.release_hung()
    assert fetch_threads() == 0
    clock.advance(minutes=31)
    collect_once(store, source, ["BTC", "ETH"], ["5m"], clock.now(), backoff, timeout_s=TIMEOUT_S)
    assert backoff.retry_at == {}
    assert_nothing_lost(store, healthy, [hung, other], clock.now())
    warnings = pair_events(store, *hung, 0)
    assert len(warnings) == retries + 1 and set(warnings["level"]) == {"warning"}


def test_a_fetch_that_raises_timeouterror_itself_is_not_mistaken_for_a_hang(store, healthy):
    class Broken:
        name, live = "broken", False

        def fetch(self, asset, interval, start, end):
            raise TimeoutError("socket timed out")  # a bug/network error, answered at once

    [result] = collect_once(store, Broken(), ["BTC"], ["5m"], healthy.default_start, Backoff())
    assert result.error == "collection failed: TimeoutError: socket timed out"


def test_the_app_passes_settings_source_timeout_to_the_collector(settings, source, healthy):
    source.scripts[("BTC", "1h")] = ["hang"]
    app = Alpha12.open(
        settings=dataclasses.replace(
            settings, assets=("BTC",), intervals=("1h",), source_timeout_s=TIMEOUT_S
        ),
        clock=ManualClock(healthy.default_start),
        source=source,
    )
    try:
        started = time.monotonic()
        [result] = app.collect_once(Backoff())
        assert time.monotonic() - started < TIMEOUT_S + 2.0
        assert f"did not answer within {TIMEOUT_S:g} s" in result.error
    finally:
        app.close()


# --- the engine, tick by tick, through every fault ----------------------------------------


@pytest.fixture
def engine(settings, source, healthy):
    """An engine over the faulty source: BTC on 5m and 1h, a manual clock, not started."""
    # The engine passes settings.source_timeout_s: a hang costs TIMEOUT_S, not the default.
    app = Alpha12.open(
        settings=dataclasses.replace(
            settings, assets=("BTC",), intervals=("5m", "1h"), source_timeout_s=TIMEOUT_S
        ),
        clock=ManualClock(healthy.default_start),
        source=source,
    )
    engine = Engine(app.context, tick_seconds=0.01)
    yield engine
    engine.stop()  # waits for a monitor run still writing on the trainer thread
    app.close()


def test_the_engine_stays_up_through_every_fault_and_catches_up(engine, source, healthy):
    pairs = [("BTC", "5m"), ("BTC", "1h")]
    for pair in pairs:  # every fault twice, in a shuffled order, then healthy
        source.scripts[pair] = random.Random(pair[1]).sample(FAULTS * 2, len(FAULTS) * 2)
    store, clock = engine.store, engine.clock
    ticks = 0
    while any(source.scripts.values()):  # an hour a tick: both pairs are due every tick
        engine.tick()  # never raises, whatever the source does
        assert store.get_state("engine")["heartbeat_clock"] == clock.now().isoformat()
        source.release_hung()
        clock.advance(hours=1)
        ticks += 1
        assert ticks < 3 * len(FAULTS), "the scripts of faults were never used up"
    engine.tick()
    assert_nothing_lost(store, healthy, pairs, clock.now())
    for pair in pairs:  # and every stored bar was analysed: a snapshot each
        snapshots = store.scalar(
            "SELECT count(*) FROM snapshots WHERE asset = ? AND interval = ?", list(pair)
        )
        assert snapshots == len(store.read_bars(*pair))
    messages = " | ".join(store.events(1000)["message"])
    for fault in FAULTS:
        if fault not in ("ok", "empty"):
            assert MESSAGES[fault] in messages, fault
    faults = [c for c in source.calls if c[2] != "ok"]
    assert len(faults) == len(pairs) * (len(FAULTS) - 1) * 2


# --- the System page shows the faults -------------------------------------------------------


def test_the_system_page_lists_every_fault(app_env, source, healthy):
    faults = [f for f in FAULTS if f not in ("ok", "empty")]
    pairs = [(f"F{n}", "1h") for n in range(len(faults))]  # one pair per fault
    warm_up(healthy, [asset for asset, _ in pairs])
    for pair, fault in zip(pairs, faults, strict=True):
        source.scripts[pair] = [fault]
    store = Store(app_env / "storage.duckdb")
    try:
        collect_once(
            store,
            source,
            [a for a, _ in pairs],
            ["1h"],
            healthy.default_start,
            Backoff(),
            timeout_s=TIMEOUT_S,
        )
    finally:
        store.close()
    at = open_page("system")
    shown = next(d.value for d in at.dataframe if "message" in d.value.columns)
    for (asset, _), fault in zip(pairs, faults, strict=True):
        row = shown[shown["asset"] == asset]
        assert len(row) == 1 and MESSAGES[fault] in row["message"].iloc[0], (fault, shown)
