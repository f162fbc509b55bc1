"""Collection: fetch new bars for every asset x timeframe, pass them through the gate, store them.

One pair failing never stops the others; every problem becomes an event. A pair whose source
failed temporarily is backed off exponentially (in clock time) and retried by itself.

A fetch runs on a worker thread and is waited for at most `source_timeout_s` seconds of real
time: a source that does not answer is treated like a rate limit (backed off), so it can never
stall the engine. A hung call cannot be killed in Python, so the pair is not asked again until
that call has returned: at most one worker thread per source and pair, however long it hangs.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass, field

import pandas as pd

from alpha12.bars import BarsError, Validated, validate, validate_many
from alpha12.config import Settings
from alpha12.sources import Source, SourceError, TemporarySourceError
from alpha12.store import Store
from alpha12.timeframes import interval_delta

BACKOFF_BASE = pd.Timedelta(seconds=30)
BACKOFF_CAP = pd.Timedelta(minutes=30)
DEFAULT_SOURCE_TIMEOUT_S = Settings.source_timeout_s  # used when a caller passes no timeout
FETCH_THREAD_PREFIX = "alpha12-fetch"
REFETCH_TRIES = 3  # passes that ask again for bars the source sent garbled

# (id(source), asset, interval) -> (source, started monotonic seconds) of the fetches running
# on a worker thread. The source is kept so its id cannot be reused while its call is running.
_in_flight: dict[tuple[int, str, str], tuple[Source, float]] = {}
_in_flight_lock = threading.Lock()


@dataclass
class PairCollection:
    asset: str
    interval: str
    new_bars: int = 0
    rejected: int = 0
    error: str | None = None
    skipped: bool = False  # backing off after an earlier temporary error


@dataclass
class Backoff:
    """The collector's per-pair memory between passes: exponential backoff after temporary
    source errors, and where to ask again after the source sent bars it had to reject."""

    failures: dict[tuple[str, str], int] = field(default_factory=dict)
    retry_at: dict[tuple[str, str], pd.Timestamp] = field(default_factory=dict)
    # pair -> (first rejected bar older than the newest stored one, passes that asked for it)
    refetch: dict[tuple[str, str], tuple[pd.Timestamp, int]] = field(default_factory=dict)
    # pair -> when its current run of temporary failures began (the source_down alert's clock)
    failing_since: dict[tuple[str, str], pd.Timestamp] = field(default_factory=dict)

    def waiting(self, key: tuple[str, str], now: pd.Timestamp) -> bool:
        return key in self.retry_at and now < self.retry_at[key]

    def down_for(self, now: pd.Timestamp, longer_than: pd.Timedelta) -> list[tuple[str, str]]:
        """The pairs whose source has failed without a success for longer than `longer_than`."""
        return [key for key, since in self.failing_since.items() if now - since > longer_than]

    def failed(self, key: tuple[str, str], now: pd.Timestamp) -> pd.Timedelta:
        self.failing_since.setdefault(key, now)
        self.failures[key] = self.failures.get(key, 0) + 1
        delay = min(BACKOFF_BASE * 2 ** (self.failures[key] - 1), BACKOFF_CAP)
        self.retry_at[key] = now + delay
        return delay

    def succeeded(self, key: tuple[str, str]) -> None:
        self.failing_since.pop(key, None)
        self.failures.pop(key, None)
        self.retry_at.pop(key, None)


def collect_pair(
    store: Store,
    source: Source,
    asset: str,
    interval: str,
    now: pd.Timestamp,
    backoff: Backoff | None = None,
    *,
    timeout_s: float | None = None,
    calendar_of=None,
) -> PairCollection:
    """Fetch `asset`/`interval` bars since the last stored one; never raises for source trouble
    (see collect_pairs)."""
    return collect_pairs(
        store,
        source,
        [(asset, interval)],
        now,
        backoff,
        timeout_s=timeout_s,
        calendar_of=calendar_of,
    )[0]


def collect_once(
    store: Store,
    source: Source,
    assets,
    intervals,
    now: pd.Timestamp,
    backoff: Backoff | None = None,
    *,
    timeout_s: float | None = None,
    calendar_of=None,
) -> list[PairCollection]:
    """One pass over assets x intervals (see collect_pairs)."""
    pairs = [(asset, interval) for asset in assets for interval in intervals]
    return collect_pairs(
        store, source, pairs, now, backoff, timeout_s=timeout_s, calendar_of=calendar_of
    )


def collect_pairs(
    store: Store,
    source: Source,
    pairs: list[tuple[str, str]],
    now: pd.Timestamp,
    backoff: Backoff | None = None,
    *,
    timeout_s: float | None = None,
    calendar_of=None,
) -> list[PairCollection]:
    """Fetch every pair's bars since its last stored one, all at once, each bounded by
    `timeout_s` seconds of real time (DEFAULT_SOURCE_TIMEOUT_S if None); validate each pair's
    answer on its asset's calendar (`calendar_of(asset)`, Settings.calendar; 24/7 when None)
    and store them all in one transaction. Source trouble and unexpected errors are the pair's
    result and event, never an exception."""
    results = {pair: PairCollection(*pair) for pair in pairs}
    starts = {}
    for pair in pairs:
        if backoff and backoff.waiting(pair, now):
            results[pair].skipped = True
            continue
        starts[pair] = _start(store, pair, backoff)
    asked = _ask_all(source, starts, now)
    deadline = time.monotonic() + (DEFAULT_SOURCE_TIMEOUT_S if timeout_s is None else timeout_s)
    frames = {}
    for pair, answer in asked.items():
        try:
            frames[pair] = _answer(source, pair, answer, deadline, timeout_s)
        except Exception as error:
            _pair_failed(store, backoff, results[pair], error, now)
    batches = {}
    for pair, checked in _validated(frames, now, calendar_of).items():
        try:
            if isinstance(checked, Exception):
                raise checked
            batches[pair] = _checked(store, source, results[pair], checked, now, backoff)
        except Exception as error:  # one pair's bug must not stop the others
            _pair_failed(store, backoff, results[pair], error, now)
    for pair, new_bars in store.upsert_many(batches).items():
        results[pair].new_bars = new_bars
    return [results[pair] for pair in pairs]


def _start(store: Store, pair: tuple[str, str], backoff: Backoff | None) -> pd.Timestamp | None:
    """The first bar to ask for: after the newest stored one, or earlier to ask again for
    bars that came garbled (so a healed source fills the gap)."""
    last = store.last_bar_ts(*pair)
    start = None if last is None else last + interval_delta(pair[1])
    if backoff and pair in backoff.refetch and start is not None:
        start = min(start, backoff.refetch[pair][0])
    return start


def _pair_failed(store, backoff: Backoff | None, result: PairCollection, error, now) -> None:
    """A pair's failure is its result and event: temporary source trouble is backed off."""
    pair = (result.asset, result.interval)
    if isinstance(error, TemporarySourceError):
        delay = backoff.failed(pair, now) if backoff else None
        retry = "" if delay is None else f"; retrying in {delay}"
        _failed(store, result, f"{error}{retry}", now, "warning")
    elif isinstance(error, (SourceError, BarsError)):
        _failed(store, result, str(error), now, "error")
    else:
        message = f"collection failed: {type(error).__name__}: {error}"
        _failed(store, result, message, now, "error")


def _validated(frames: dict[tuple[str, str], pd.DataFrame], now, calendar_of) -> dict:
    """Each pair's answer through the gate on its asset's calendar (its Validated, or the
    error that is its failure), the answers of one timeframe and one market validated
    together (bars.validate_many)."""
    groups: dict[tuple, list[tuple[str, str]]] = {}
    calendars = {}
    for asset, interval in frames:
        if asset not in calendars:
            calendars[asset] = calendar_of(asset) if calendar_of else None
        market = calendars[asset].name if calendars[asset] else None
        groups.setdefault((interval, market), []).append((asset, interval))
    checked = {}
    for (interval, _), pairs in groups.items():
        calendar = calendars[pairs[0][0]]
        answers = [frames[pair] for pair in pairs]
        try:
            together = validate_many(answers, interval, now, calendar)
        except Exception:  # a bug on one answer must cost only its pair: each alone
            together = [_validated_alone(a, interval, now, calendar) for a in answers]
        checked.update(zip(pairs, together, strict=True))
    return checked


def _validated_alone(frame: pd.DataFrame, interval: str, now, calendar) -> Validated | Exception:
    try:
        return validate(frame, interval, now, calendar)
    except Exception as error:
        return error


def _checked(store, source, result: PairCollection, checked: Validated, now, backoff):
    """The clean bars of one pair's validated answer; its rejected rows are counted and
    reported."""
    if backoff:
        backoff.succeeded((result.asset, result.interval))
        _remember_gap(store, backoff, result, checked, now)
    counts = checked.reason_counts()
    result.rejected = sum(counts.values())
    if counts:
        store.record_rejections(result.asset, result.interval, source.name, counts, now)
        summary = ", ".join(f"{n} {reason}" for reason, n in counts.items())
        store.log_event(
            now, "warning", "collector", f"rejected rows: {summary}", result.asset, result.interval
        )
    return checked.bars


def _remember_gap(store: Store, backoff: Backoff, result: PairCollection, checked, now) -> None:
    """Rejected bars older than the answer's newest clean bar would never be asked for again:
    remember the first, up to REFETCH_TRIES passes, then accept the gap and say so."""
    pair = (result.asset, result.interval)
    if checked.bars.empty:
        return
    missing = pd.DatetimeIndex([])
    if len(checked.rejected):  # the usual answer has none: no frames to build
        inside = checked.rejected["ts"] < checked.bars["ts"].iloc[-1]
        missing = pd.DatetimeIndex(checked.rejected.loc[inside, "ts"]).unique()
    if not missing.empty:  # a bar that also came clean, now or before, is no gap
        stored = store.read_bars(*pair, start=missing.min(), end=missing.max())["ts"]
        missing = missing.difference(pd.DatetimeIndex(checked.bars["ts"])).difference(
            pd.DatetimeIndex(stored)
        )
    if missing.empty:
        backoff.refetch.pop(pair, None)
        return
    tries = backoff.refetch.get(pair, (None, 0))[1] + 1
    if tries > REFETCH_TRIES:
        backoff.refetch.pop(pair, None)
        message = (
            f"{len(missing)} bar(s) from {missing[0]} still came garbled after {REFETCH_TRIES} "
            "tries; the gap is left (see rejected rows)"
        )
        store.log_event(now, "warning", "collector", message, *pair)
        return
    backoff.refetch[pair] = (missing[0], tries)


def _failed(store: Store, result: PairCollection, message: str, now, level: str) -> None:
    result.error = message
    store.log_event(now, level, "collector", message, result.asset, result.interval)


def _ask_all(source: Source, starts: dict[tuple[str, str], object], end) -> dict:
    """Start fetching every pair's bars from `starts` (pair -> first bar to ask for) on worker
    threads: one `fetch_many` call for them all when the source has it, else one `fetch` per
    pair. Each pair's Future holds its answer, or a TemporarySourceError at once while the
    pair's previous call is still hanging."""
    answers = {pair: Future() for pair in starts}
    claimed = {pair: start for pair, start in starts.items() if _claim(source, pair, answers[pair])}
    if hasattr(source, "fetch_many"):
        calls = [(_fetch_many_into, (answers, source, claimed, end), "batch")] if claimed else []
    else:
        calls = [
            (_fetch_into, (answers[pair], source, *pair, start, end), "-".join(pair))
            for pair, start in claimed.items()
        ]
    for target, args, name in calls:
        threading.Thread(
            target=target,
            args=args,
            name=f"{FETCH_THREAD_PREFIX}-{name}",
            daemon=True,  # a hung call must not keep the process alive at exit
        ).start()
    return answers


def _claim(source: Source, pair: tuple[str, str], answer: Future) -> bool:
    """Mark the pair's fetch as running; False (and the answer a TemporarySourceError) while
    its previous call has not returned."""
    key = (id(source), *pair)
    with _in_flight_lock:
        if key not in _in_flight:
            _in_flight[key] = (source, time.monotonic())
            return True
        waited = time.monotonic() - _in_flight[key][1]
    answer.set_exception(
        TemporarySourceError(
            f"{source.name} is still answering an earlier request for {' '.join(pair)} "
            f"({waited:.0f} s so far); not asking again until it returns"
        )
    )
    return False


def _answer(source, pair, answer: Future, deadline: float, timeout_s) -> pd.DataFrame:
    """The pair's frame, waited for until `deadline` (the same for every pair of a pass: they
    were all asked at once)."""
    # wait() rather than result(timeout): a TimeoutError raised by the source itself must not
    # be mistaken for the source not answering.
    if not wait([answer], max(0.0, deadline - time.monotonic())).done:
        seconds = DEFAULT_SOURCE_TIMEOUT_S if timeout_s is None else timeout_s
        raise TemporarySourceError(
            f"{source.name} did not answer within {seconds:g} s ({' '.join(pair)})"
        )
    return answer.result()


def _fetch_into(answer: Future, source: Source, asset, interval, start, end) -> None:
    try:
        frame, error = source.fetch(asset, interval, start, end), None
    except BaseException as caught:  # handed to the waiting caller, which decides
        frame, error = None, caught
    outcome = frame if error is None else error
    _hand_over(source, {(asset, interval): answer}, {(asset, interval): outcome})


def _fetch_many_into(answers: dict, source: Source, starts: dict, end) -> None:
    try:
        given = source.fetch_many(starts, end)
    except BaseException as caught:  # the whole request failed: so did every pair's
        given = dict.fromkeys(starts, caught)
    _hand_over(source, {pair: answers[pair] for pair in starts}, given)


def _hand_over(source: Source, answers: dict, given: dict) -> None:
    """Each pair's frame (or exception) into its Future, the pairs forgotten as running first:
    no false "still busy"."""
    with _in_flight_lock:
        for pair in answers:
            _in_flight.pop((id(source), *pair), None)
    for pair, answer in answers.items():
        outcome = given.get(pair, SourceError(f"{source.name} gave no answer for {' '.join(pair)}"))
        if isinstance(outcome, BaseException):
            answer.set_exception(outcome)
        else:
            answer.set_result(outcome)


def fetches_in_flight() -> int:
    """How many source calls are running on worker threads (hung ones included)."""
    with _in_flight_lock:
        return len(_in_flight)
