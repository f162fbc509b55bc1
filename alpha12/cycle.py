"""The cycle: for the pairs whose bars have closed, snapshot the new bars, predict with each
pair's serving model, resolve open setups, maybe open new ones, and fill matured targets; and
the backfill, the same snapshots for a pair's whole stored history at once.

A pair's challenger in shadow predicts every new bar too, and its would-be setups are made by
the same signals and resolved by the same tracker as real ones, flagged `shadow`; so are the
serving model's when it has no edge on a timeframe that does not trade without one
(signals.trades_for_real). Setups open one at a time per book: one book for the pair's real
setups, one per model trading in shadow.

The work is set-based: whatever the number of pairs, a cycle reads and writes the store with a
handful of statements (the per-pair statements were most of a cycle's time), and each model
predicts once over all the pairs it serves. The maths runs across pairs where it allows (a pair's
maths cost less than the Python around it): the newest bar's features of every pair in one
stacked call, the targets and the open setups of a timeframe's pairs in one barrier walk. What
is left runs per pair, on bare arrays joined into one frame per write. One pair's failure in its
own maths is its result's error (a pair that breaks a batch is retried alone); the others go on.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alpha12 import features, signals, snapshots, tracker
from alpha12.config import Settings
from alpha12.features import FEATURE_NAMES
from alpha12.registry import Registry, ServedModel
from alpha12.store import PendingTail, Store
from alpha12.vocabulary import Pair


@dataclass
class PairAnalysis:
    asset: str
    interval: str
    snapshots: int = 0
    setup_id: int | None = None
    closed: int = 0
    model: str | None = None  # e.g. "timeframe v3", "fallback v1", or None
    newest_bar: pd.Timestamp | None = None
    error: Exception | None = None


@dataclass
class _PairWork:
    """One pair's state through a cycle: bare arrays, joined into one frame per write (a
    frame per pair cost more than the pair's maths)."""

    result: PairAnalysis
    bars: pd.DataFrame
    ts: np.ndarray  # the new bars' open times (snapshots.utc_micros)
    features: np.ndarray  # one row per new bar, FEATURE_NAMES order
    stored: np.ndarray | None = None  # the features rounded as stored (what models see)
    served: ServedModel | None = None
    real: bool = True  # whether the serving model's setups are real (trades_for_real)
    probability: np.ndarray | None = None  # the serving model's, per new bar
    shadow: ServedModel | None = None  # a challenger waiting in shadow
    shadow_probability: np.ndarray | None = None
    setups_open: pd.DataFrame | None = None  # its setups open before this cycle
    bars_since_entry: pd.DataFrame | None = None  # the bars that may resolve them
    exits: pd.DataFrame | None = None  # the open setups its new bars resolved
    open_books: set = field(default_factory=set)  # books (see _book) with a setup still open
    setups: list[signals.Setup] = field(default_factory=list)
    setup_generated: bool = False  # a real setup opened on the newest bar
    matured: dict | None = None  # targets its new bars settled (snapshots.matured_targets)


_ATR_PCT = FEATURE_NAMES.index("atr_pct_14")  # the setup's ATR, relative to the close


@contextmanager
def stage(timings: Counter | None, name: str):
    """Add the block's duration to timings[name] (seconds); free when timings is None."""
    if timings is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] += time.perf_counter() - started


def predict(served: ServedModel | None, rows: pd.DataFrame) -> np.ndarray:
    """Win probabilities for rows with complete features (NaN elsewhere or with no model)."""
    values = rows[list(FEATURE_NAMES)].to_numpy(dtype="float64")
    return _predict_stored(served, snapshots.stored_values(values))  # what training saw


def _predict_stored(served: ServedModel | None, stored: np.ndarray) -> np.ndarray:
    """predict, of features already rounded as stored (snapshots.stored_values)."""
    probability = np.full(len(stored), np.nan)
    if served is None or not len(stored):
        return probability
    complete = ~np.isnan(stored).any(axis=1)
    if complete.any():
        rows = pd.DataFrame(stored[complete], columns=FEATURE_NAMES)
        probability[complete] = served.model.predict_proba(rows)
    return probability


def backfill_pair(store: Store, settings: Settings, asset: str, interval: str) -> int:
    """Snapshots and targets for the pair's whole stored history; returns rows added."""
    bars = store.read_bars(asset, interval)
    if bars.empty:
        return 0
    rows = snapshots.for_pair(snapshots.snapshot_rows(bars, interval, settings), asset, interval)
    added = store.insert_snapshots(rows)
    store.update_targets(rows)
    return added


def analyze_pair(
    store: Store, registry: Registry, settings: Settings, asset: str, interval: str
) -> PairAnalysis:
    """One pair's cycle (see analyze_pairs); its error, if any, is raised."""
    result = analyze_pairs(store, registry, settings, [(asset, interval)])[0]
    if result.error is not None:
        raise result.error
    return result


def analyze_pairs(
    store: Store,
    registry: Registry,
    settings: Settings,
    pairs: list[Pair],
    timings: Counter | None = None,
) -> list[PairAnalysis]:
    """The new bars' snapshots, predictions, trade exits and entries of every pair, one result
    per pair (in `pairs` order); `timings` (optional) collects seconds per stage."""
    with stage(timings, "read"):
        tails = store.pending_tails(pairs)
    results = {
        (t.asset, t.interval): PairAnalysis(t.asset, t.interval, newest_bar=t.newest_bar)
        for t in tails
    }
    with stage(timings, "features"):
        work = _features(results, [tail for tail in tails if tail.pending])
    with stage(timings, "predict"):
        work = _predict_all(registry, settings, work)
    with stage(timings, "tracker"):
        work = _close_resolved(store, settings, work)
    with stage(timings, "signals"):
        work = _each(work, _choose_setup, settings)
        _insert_setups(store, work)
    with stage(timings, "snapshots"):
        _insert_snapshots(store, work)
    with stage(timings, "targets"):
        work = _mature_all(work, settings)
        store.update_targets(_joined(work, lambda item: item.matured))
    return [results[pair] for pair in pairs]


def _each(work: list[_PairWork], step, *args) -> list[_PairWork]:
    """`step(item, *args)` for every pair's work; the pairs it failed drop out with their
    error kept in their result."""
    return [item for item in work if _guard(item.result, step, item, *args)]


def _concat(frames: list[pd.DataFrame | None]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _guard(result: PairAnalysis, step, *args) -> list:
    """[step(*args)] for one pair, or [] with the error kept in the pair's result."""
    try:
        return [step(*args)]
    except Exception as error:
        result.error = error
        return []


def _joined(work: list[_PairWork], columns) -> pd.DataFrame:
    """One frame of every pair's `columns(item)` (a dict of equal-length arrays, times as
    snapshots.utc_micros), tagged with the pair."""
    parts = [(item, columns(item)) for item in work]
    if not parts:
        return pd.DataFrame()
    lengths = [len(next(iter(part.values()))) for _, part in parts]
    frame = pd.DataFrame(
        {
            "asset": np.repeat([item.result.asset for item, _ in parts], lengths),
            "interval": np.repeat([item.result.interval for item, _ in parts], lengths),
            **{key: np.concatenate([part[key] for _, part in parts]) for key in parts[0][1]},
        }
    )
    for column in frame.columns[frame.dtypes == "datetime64[us]"]:
        frame[column] = snapshots.as_utc(frame[column].to_numpy())
    return frame


def _features(results: dict[Pair, PairAnalysis], tails: list[PendingTail]) -> list[_PairWork]:
    """Each tail's new rows' features: the pairs with one new bar (every pair, most cycles)
    in one stacked call, the others (a catch-up) pair by pair."""
    newest_only = [tail for tail in tails if tail.pending == 1]
    try:
        latest = features.latest_rows([tail.bars for tail in newest_only])
        keys = [(tail.asset, tail.interval) for tail in newest_only]
        computed = dict(zip(keys, latest[:, np.newaxis, :], strict=True))
    except Exception:  # some tail's fault: pair by pair below, so it is that pair's error only
        computed = {}
    work = []
    for tail in tails:
        result = results[(tail.asset, tail.interval)]
        work += _guard(result, _pair_work, result, tail, computed.get((tail.asset, tail.interval)))
    return work


def _pair_work(result: PairAnalysis, tail: PendingTail, values: np.ndarray | None) -> _PairWork:
    if values is None:
        values = snapshots.tail_features(tail.bars, tail.pending)
    ts = snapshots.utc_micros(tail.bars["ts"].iloc[-tail.pending :])
    return _PairWork(result, tail.bars, ts, values)


def _predict_all(registry: Registry, settings: Settings, work: list[_PairWork]) -> list[_PairWork]:
    """Each pair's rows predicted by its serving model (pairs served by the same model, an
    asset's fallback, share one call) and by its shadow challenger, if any."""
    registry.prepare([_key(item) for item in work])
    if work:  # rounded as stored, what training saw: in one pass over every pair's rows
        stored = snapshots.stored_values(np.vstack([item.features for item in work]))
        for item, part in zip(work, _per_pair(stored, work), strict=True):
            item.stored = part
    served = []
    for item in work:
        served += _guard(item.result, _serve, registry, settings, item)
    groups: dict[int, list[_PairWork]] = {}
    for item in served:
        model = item.served.model if item.served else None
        groups.setdefault(id(model), []).append(item)
    predicted = []
    for group in groups.values():
        if _guard(group[0].result, _predict_group, group):
            predicted += group
        else:
            for item in group[1:]:
                item.result.error = group[0].result.error
    return _each(predicted, _predict_shadow)


def _predict_shadow(item: _PairWork) -> None:
    if item.shadow is not None:
        item.shadow_probability = _predict_stored(item.shadow, item.stored)


def _feature_frame(work: list[_PairWork]) -> pd.DataFrame:
    """The pairs' new rows' features, as a model takes them."""
    return pd.DataFrame(np.vstack([item.features for item in work]), columns=FEATURE_NAMES)


def _serve(registry: Registry, settings: Settings, item: _PairWork) -> _PairWork:
    asset, interval = _key(item)
    item.served = registry.load_timeframe_model(asset, interval)
    item.shadow = registry.load_shadow(asset, interval)
    if item.served is not None:
        item.real = signals.trades_for_real(settings.timeframe(interval), item.served.model.metrics)
    item.result.model = f"{item.served.scope} v{item.served.version}" if item.served else None
    return item


def _predict_group(group: list[_PairWork]) -> None:
    probability = _predict_stored(group[0].served, np.vstack([item.stored for item in group]))
    for item, part in zip(group, _per_pair(probability, group), strict=True):
        item.probability = part


def _per_pair(values: np.ndarray, work: list[_PairWork]) -> list[np.ndarray]:
    """Values of the pairs' new rows, stacked in `work`'s order, split back into each pair's."""
    ends = np.cumsum([len(item.features) for item in work])
    return np.split(values, ends[:-1])


def _key(item: _PairWork) -> Pair:
    return item.result.asset, item.result.interval


def _close_resolved(store: Store, settings: Settings, work: list[_PairWork]) -> list[_PairWork]:
    """Resolve the open setups of the pairs against their bars, in one read, one walk per
    timeframe (tracker.resolve_many) and one write."""
    open_setups = store.open_setups([_key(item) for item in work])
    if open_setups.empty:
        return work
    by_pair = dict(iter(open_setups.groupby(["asset", "interval"], sort=False)))
    for item in work:
        item.setups_open = by_pair.get(_key(item))
    work = _each(work, _bars_since_entry, store)
    holding = [item for item in work if item.setups_open is not None]
    _per_timeframe(holding, "exits", lambda interval, group: _exits(group, interval, settings))
    work = _each(work, _resolve, settings)
    store.close_setups(_concat([item.exits for item in work]))
    return work


def _bars_since_entry(item: _PairWork, store: Store) -> None:
    """The bars that may resolve the pair's open setups: its tail, or from the oldest setup on
    when that opened before the tail (after a long outage)."""
    if item.setups_open is None:
        return
    first = item.setups_open["ts"].min()
    item.bars_since_entry = item.bars
    if first < item.bars["ts"].iloc[0]:
        asset, interval = _key(item)
        item.bars_since_entry = store.read_bars(asset, interval, start=first)


def _resolve(item: _PairWork, settings: Settings) -> None:
    """The pair's exits (resolved with its timeframe's, or alone if that walk failed) and the
    books it still has a setup open in."""
    setups = item.setups_open
    if setups is None:
        return
    if item.exits is None:
        item.exits = _exits([item], item.result.interval, settings)[0]
    item.result.closed = len(item.exits)
    still_open = setups[~setups["id"].isin(item.exits["id"])]
    columns = (still_open[name].tolist() for name in ("shadow", "model_version", "model_scope"))
    item.open_books = set(map(_book, *columns))  # not itertuples: a namedtuple class per call


def _exits(group: list[_PairWork], interval: str, settings: Settings) -> list[pd.DataFrame]:
    """The exits of the pairs' open setups, in one walk (they share the timeframe)."""
    books = [(item.setups_open, item.bars_since_entry) for item in group]
    timeframe = settings.timeframe(interval)
    return tracker.resolve_many(
        books, interval, timeframe.horizon_bars, settings.round_trip_cost_bps
    )


def _per_timeframe(work: list[_PairWork], attribute: str, walk) -> None:
    """Each pair's `attribute`, its share of `walk(interval, group)`: one call for all the
    pairs of a timeframe. A group whose call fails is left unset, for the pair-by-pair step
    after it, so that the failure is one pair's error only."""
    groups: dict[str, list[_PairWork]] = {}
    for item in work:
        groups.setdefault(item.result.interval, []).append(item)
    for interval, group in groups.items():
        try:
            values = walk(interval, group)
        except Exception:
            continue
        for item, value in zip(group, values, strict=True):
            setattr(item, attribute, value)


def _book(shadow: bool, version, scope) -> tuple:
    """The book a setup belongs to: every real setup of the pair shares one (one position at
    a time), each model trading in shadow has its own."""
    return ("shadow", version, scope) if shadow else ("real",)


def _choose_setup(item: _PairWork, settings: Settings) -> None:
    """Each trading model's setup on the newest bar, when its book has none open."""
    traders = [(item.served, item.probability[-1], not item.real)]
    if item.shadow is not None:
        traders.append((item.shadow, item.shadow_probability[-1], True))
    for served, probability, shadow in traders:
        if served is None or _book(shadow, served.version, served.scope) in item.open_books:
            continue
        setup = _next_setup(settings, item, served, probability, shadow)
        if setup is not None:
            item.setups.append(setup)


def _next_setup(
    settings: Settings, item: _PairWork, served: ServedModel, probability: float, shadow: bool
) -> signals.Setup | None:
    """A setup on the newest bar only (older bars of a catch-up are past)."""
    if np.isnan(probability):
        return None
    asset, interval = _key(item)
    # Column by column: a row of mixed types costs a search for their common type.
    close = float(item.bars["close"].iloc[-1])
    return signals.make_setup(
        asset,
        interval,
        item.bars["ts"].iloc[-1],
        close,
        float(item.features[-1, _ATR_PCT] * close),
        float(probability),
        settings.timeframe(interval),
        served.version,
        served.scope,
        shadow=shadow,
    )


def _insert_setups(store: Store, work: list[_PairWork]) -> None:
    opening = [setup for item in work for setup in item.setups]
    if not opening:
        return
    ids = store.insert_setups(pd.DataFrame([setup.as_row() for setup in opening]))
    items = {_key(item): item for item in work}
    for row in ids[~ids["shadow"]].itertuples(index=False):  # at most one real setup a pair
        item = items[(row.asset, row.interval)]
        item.result.setup_id = row.id
        item.setup_generated = True


def _insert_snapshots(store: Store, work: list[_PairWork]) -> None:
    if not work:
        return
    rows = pd.concat([_joined(work, _snapshot_columns), _feature_frame(work)], axis=1)
    rows["model_version"] = rows["model_version"].astype("Int64")
    store.insert_snapshots(rows)
    for item in work:
        item.result.snapshots = len(item.features)


def _snapshot_columns(item: _PairWork) -> dict[str, np.ndarray]:
    """A pair's snapshot columns but its features; targets are not known yet."""
    n, served = len(item.features), item.served
    generated = np.zeros(n, dtype=bool)
    generated[-1] = item.setup_generated
    return {
        "ts": item.ts,
        "probability": item.probability,
        "model_version": np.full(n, served.version if served else None, dtype=object),
        "model_scope": np.full(n, served.scope if served else None, dtype=object),
        "setup_generated": generated,
        "target": np.full(n, np.nan),
        "target_ts": np.full(n, np.datetime64("NaT", "us")),
        "pnl_pct": np.full(n, np.nan),
    }


def _mature_all(work: list[_PairWork], settings: Settings) -> list[_PairWork]:
    """The targets that matured with the newest bars, from the tails already read: one
    barrier walk per timeframe for all its pairs."""

    def walk(interval: str, group: list[_PairWork]) -> list[dict]:
        return snapshots.matured_targets_of([item.bars for item in group], interval, settings)

    _per_timeframe(work, "matured", walk)
    return _each(work, _mature, settings)


def _mature(item: _PairWork, settings: Settings) -> None:
    if item.matured is None:  # its timeframe's walk failed
        item.matured = snapshots.matured_targets(item.bars, item.result.interval, settings)
