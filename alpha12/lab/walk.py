"""One pair's walk forward through its stored history under a retraining policy, trading out
of sample under the monitor's own rules: the warm start walks the recent history under the
seed policy (what the live monitor does); the lab walks the whole history under any policy.

No model ever predicts inside its own training window: a model trained as of time T only
predicts bars that close after T, and its training rows' labels were all known by T.

Challengers are judged as the live monitor judges them (monitor.promote_or_reject): on the
held-out rows neither they nor the incumbent trained on, or, with too few of those, in shadow
until monitor.decide_shadow can decide them on the rows resolved since. The walk opens no
would-be setups for a shadow challenger: its decision rests on the resolved rows, not on
trades. A serving model without an edge on a timeframe that does not trade without one trades
in shadow, as live (`shadow` trades, judged by the walk's monitor, left out of the lab's
results).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alpha12 import cycle, features, metrics, models, signals, snapshots, training
from alpha12.features import FEATURE_NAMES, WARMUP_BARS
from alpha12.lab.policies import Policy, Seed, Tick
from alpha12.monitor import (
    Assessment,
    Outcome,
    PerformanceMonitor,
    calibration_since,
    cooldown_left,
    decision_row,
    silence_limit,
    silent_since,
)
from alpha12.timeframes import interval_delta
from alpha12.vocabulary import ATTEMPTS

MONITOR_STEP = pd.Timedelta(hours=1)  # the walk's monitor checks, as the engine's
NAT = np.iinfo(np.int64).min  # NaT as ns
# A model predicts the bars ahead of the walk in batches that double while it keeps serving:
# one call per batch, not per bar, and a model replaced early has predicted few bars it never
# traded (predicting all the rest at every change made a year of 5m bars quadratic).
FIRST_BATCH = 256


def _ns(times: pd.Series) -> np.ndarray:
    """UTC times as int64 ns (NaT as NAT), for comparisons at numpy speed."""
    return times.to_numpy(dtype="datetime64[ns]").view("int64")


@dataclass
class Ledger:
    """The walk's closed trades in exit order, overall and per model (version, scope): what a
    monitor check asks of them ("how many had closed by t", "the newest N of this model that
    had") in log time, where a pass over every trade at every check made a year of 5m bars
    quadratic. Exits only move forward (one open setup at a time); insort keeps the order
    whatever happens."""

    exits: list[int] = field(default_factory=list)  # every closed trade's exit, ns
    by_model: dict[tuple, tuple[list[int], list[tuple[float, float]]]] = field(
        default_factory=lambda: defaultdict(lambda: ([], []))  # exits ns; (pnl %, R) beside
    )

    def add(self, trade: dict) -> None:
        exit_ns = pd.Timestamp(trade["exit_ts"]).value
        bisect.insort(self.exits, exit_ns)
        exits, results = self.by_model[(trade["model_version"], trade["model_scope"])]
        at = bisect.bisect_right(exits, exit_ns)
        exits.insert(at, exit_ns)
        results.insert(at, (trade["pnl_pct"], trade["r_multiple"]))

    def closed_by(self, tick: pd.Timestamp) -> int:
        return bisect.bisect_right(self.exits, tick.value)

    def newest(self, version, scope, tick: pd.Timestamp, count: int) -> tuple[np.ndarray, ...]:
        """pnl % and R of the model's newest `count` trades closed by `tick`, oldest first."""
        exits, results = self.by_model.get((version, scope), ([], []))
        end = bisect.bisect_right(exits, tick.value)
        chosen = np.array(results[max(0, end - count) : end], dtype=float).reshape(-1, 2)
        return chosen[:, 0], chosen[:, 1]


@dataclass
class PairWalk:
    """One pair's walk forward through its stored history under a retraining `policy` (the
    seed policy: what the live monitor does). With `recent_bars` (the warm start) it walks
    that many of the newest bars; without (the lab) it starts where a first model can be
    trained. `origin` tags its setups and decisions; `explain` computes each model's feature
    importances (the warm start's models serve, the lab's are thrown away); `workers` > 1 fits
    each model's two halves side by side (models.fit), for a walk with idle cores beside it.
    `need_fallback` is called when the pair has no model to serve, before the registry is asked
    again: the warm start trains the assets' fallback models there, the first time one is
    needed, rather than before every walk."""

    monitor: PerformanceMonitor
    asset: str
    interval: str
    policy: Policy = field(default_factory=Seed)
    recent_bars: int | None = None
    origin: str = "lab"
    explain: bool = False
    workers: int = 1
    need_fallback: Callable[[], object] | None = None
    trades: list[dict] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)  # every monitor decision, in order
    unrecorded: list[dict] = field(default_factory=list)  # decision rows not yet in the store
    saved: int = 0  # how many of `trades` are in the store
    last_setup: pd.Timestamp | None = None  # when the walk last opened a setup
    # When the pair's last training attempt was decided: what the monitor's cooldown reads
    # from the store (store.last_attempt), kept here from the walk's own decisions, which
    # reach the store only when the walk ends.
    last_attempt: pd.Timestamp | None = None
    ledger: Ledger = field(default_factory=Ledger)  # the closed ones of `trades`, indexed

    def __post_init__(self) -> None:
        store, settings = self.monitor.store, self.monitor.settings()
        self.timeframe = self.policy.adjust(settings.timeframe(self.interval))
        self.calendar = settings.calendar(self.asset)
        self.bars = store.read_bars(self.asset, self.interval)
        self.closes = (self.bars["ts"] + interval_delta(self.interval)).reset_index(drop=True)
        self.atr = features.atr(self.bars["high"], self.bars["low"], self.bars["close"])
        self.history = training.labelled_history(store, settings, self.asset, self.interval)
        self.label_times = np.sort(self.history["target_ts"].to_numpy(dtype="datetime64[ns]"))
        self.outcome = {
            direction: snapshots.outcomes(
                self.bars, self.interval, self.timeframe, settings.round_trip_cost_bps, direction
            )
            for direction in (signals.LONG, signals.SHORT)
        }
        self.start = self._start_index()
        self.last_attempt = store.last_attempt(self.asset, self.interval)

    @property
    def start_time(self) -> pd.Timestamp | None:
        return None if self.start is None else self.closes[self.start - 1]

    def _start_index(self) -> int | None:
        """The first walked bar: `recent_bars` before the end (or the first bar, walking
        the whole history), but late enough that the rows a model can learn from (labelled,
        all features known) meet the timeframe's minimum. The whole-history walk has no
        fallback model: too little history walks nothing."""
        n = len(self.bars)
        if n < 2:
            return None
        rows = self.history.dropna(subset=list(FEATURE_NAMES))
        known = np.sort(rows["target_ts"].to_numpy(dtype="datetime64[ns]"))
        labelled_by = np.searchsorted(known, self.closes.to_numpy(dtype="datetime64[ns]"), "right")
        enough = np.flatnonzero(labelled_by >= self.timeframe.min_rows)
        earliest = enough[0] + 1 if len(enough) else n
        if self.recent_bars is None:
            return earliest if earliest < n else None
        start = max(n - self.recent_bars, earliest, 1)
        return start if start < n else self._fallback_start(n)

    def _fallback_start(self, n: int) -> int:
        """Too little history for an own model: walk with the asset's fallback instead."""
        return max(n - self.recent_bars, min(n - 1, WARMUP_BARS))

    def run(self) -> str:
        for _ in self.steps():
            pass
        return self.summary

    def steps(self) -> Iterator[None]:
        """The walk one monitor check at a time: a generator, so that a caller may interleave
        pairs and save the setups opened so far (`save_setups`) before the walk ends. The
        last step saves the rest and marks the walked snapshots."""
        if self.start is None:
            return
        as_of = self.start_time
        first = self._assessment(as_of, None, pd.Timedelta(0))
        self._attempt(as_of, first, first.decision(forced=True))
        served = self._serving()
        frame = self.walked_features()
        marks = yield from self._walk(frame, served)
        self.save_setups()
        self.record_decisions()
        rows = pd.concat([frame[["ts"]], marks], axis=1)
        rows["model_version"] = pd.to_numeric(rows["model_version"], errors="coerce")
        self.monitor.store.mark_walked(self.asset, self.interval, rows)

    @property
    def summary(self) -> str:
        if self.start is None:
            return "no bars"
        closed = [t for t in self.trades if t["status"] == "closed"]
        return (
            f"{len(self.trades)} setups ({len(closed)} resolved) over "
            f"{len(self.bars) - self.start} bars"
        )

    def save_setups(self) -> int:
        """Insert the setups opened since the last save (each is final when opened: its
        outcome is read from history); how many are saved in all."""
        new = self.trades[self.saved :]
        if new:
            self.monitor.store.insert_setups(pd.DataFrame(new))
            self.saved = len(self.trades)
        return self.saved

    def record_decisions(self) -> None:
        """Write the decision rows not yet in the store, in one statement."""
        self.monitor.store.record_recalibrations(self.unrecorded)
        self.unrecorded = []

    def walked_features(self) -> pd.DataFrame:
        """The stored snapshot features of every walked bar, one row per bar (ts first)."""
        walked = self.bars["ts"].iloc[self.start :]
        return (  # one row per walked bar
            self.monitor.store.snapshot_features(self.asset, self.interval, start=walked.iloc[0])
            .set_index("ts")
            .reindex(walked)
            .reset_index()
        )

    def _walk(self, frame: pd.DataFrame, served) -> Iterator[None]:
        """Predict, trade and monitor bar by bar, yielding after each monitor check; returns
        per walked bar the probability, the model that gave it and whether a setup opened."""
        n = len(frame)
        probability, version = np.full(n, np.nan), np.full(n, np.nan)
        scope, generated = np.full(n, None, dtype=object), np.zeros(n, dtype=bool)
        busy_until = None
        tick = self.closes[self.start].ceil("1h")
        k = self.start
        state = self.monitor_state(self.marks(frame, probability, version, scope))
        predicted, batch = 0, FIRST_BATCH  # `served` has predicted the walked bars before this
        while k < len(self.bars):
            j = max(int(self.closes.searchsorted(tick, side="right")), k)
            while predicted < j - self.start:  # the bars about to be walked, and a batch ahead
                stop = min(n, max(predicted + batch, j - self.start))
                ahead = slice(predicted, stop)
                probability[ahead] = cycle.predict(served, frame.iloc[ahead])
                version[ahead] = served.version if served else np.nan
                scope[ahead] = served.scope if served else None
                predicted, batch = ahead.stop, batch * 2
            for m in range(k, j):
                if busy_until is not None and busy_until <= self.closes[m]:
                    busy_until = None
                p = probability[m - self.start]
                if busy_until is None and served is not None and not np.isnan(p):
                    busy_until = self._trade(m, p, served)
                    generated[m - self.start] = busy_until is not None
            k = j
            changed = self._monitor(tick, k, served, state)
            if changed is not None and (
                served is None or changed.version != served.version or changed.scope != served.scope
            ):
                served, predicted, batch = changed, k - self.start, FIRST_BATCH
            tick += MONITOR_STEP
            yield
        return pd.DataFrame(
            {
                "probability": probability,
                "model_version": version,
                "model_scope": scope,
                "setup_generated": generated,
            }
        )

    def _trade(self, m: int, probability: float, served) -> pd.Timestamp | None:
        """Open a setup at bar m when the rule says so; returns when its slot frees."""
        bar = self.bars.iloc[m]
        setup = signals.make_setup(
            self.asset,
            self.interval,
            bar["ts"],
            float(bar["close"]),
            float(self.atr[m]),
            probability,
            self.timeframe,
            served.version,
            served.scope,
            origin=self.origin,
            shadow=not signals.trades_for_real(self.timeframe, served.model.metrics),
        )
        if setup is None:
            return None
        self.last_setup = bar["ts"]
        result = self.outcome[setup.direction].iloc[m]
        trade = setup.as_row()
        if pd.isna(result["target_ts"]):
            trade["status"] = "open"
            self.trades.append(trade)
            return pd.Timestamp.max.tz_localize("UTC")
        trade.update(
            status="closed",
            exit_ts=result["target_ts"],
            exit_price=result["exit_price"],
            exit_reason=result["exit_reason"],
            pnl_pct=result["pnl_pct"],
            r_multiple=result["r_multiple"],
        )
        self.trades.append(trade)
        self.ledger.add(trade)
        return result["target_ts"]

    def monitor_state(self, marks: tuple) -> dict:
        """What `_monitor` remembers from one check to the next, before the first."""
        return {
            "evaluated_trades": -1,
            "cooling": False,  # a cooldown started by the last attempt has not yet ended
            "attempt": (self.start_time, self.start),  # the last retrain attempt: time, bar
            "marks": marks,
        }

    def _monitor(self, tick: pd.Timestamp, k: int, served, state: dict):
        """The policy's rule at `tick` (k: bars walked so far), evaluated when it is due (the
        seed policy: whenever the rule's inputs changed). A shadow challenger is decided at
        every tick, as at every live monitor run."""
        decided = self._decide_shadow(tick, served)
        if decided:  # judged from here on as the model that now serves, as live
            served = self._serving()
        resolved = self.ledger.closed_by(tick)
        attempted_at, attempted_bar = state["attempt"]
        left = cooldown_left(attempted_at, self.timeframe, tick, self.calendar, self.interval)
        cooldown_over = state["cooling"] and left == pd.Timedelta(0)
        quiet = silent_since(tick, self.calendar, self.interval, self.last_setup, attempted_at)
        now = Tick(
            tick,
            new_trades=resolved != state["evaluated_trades"],
            cooldown_over=cooldown_over,
            hours_since_attempt=(tick - attempted_at) / pd.Timedelta(hours=1),
            bars_since_attempt=k - attempted_bar,
            overdue=self._overdue(tick, served, quiet, state),
        )
        if not self.policy.due(now):
            return served if decided else None
        state["evaluated_trades"] = resolved
        state["evaluated_rows"] = self._labelled(tick)
        if cooldown_over:
            state["cooling"] = False
        assessment = self._assessment(tick, served, quiet, state["marks"])
        outcome = self._attempt(tick, assessment, self.policy.decision(assessment, now))
        if outcome.action in ATTEMPTS:
            state["cooling"] = True
            state["attempt"] = (tick, k)
        return self._serving()

    def _serving(self):
        served = self.monitor.registry.load_timeframe_model(self.asset, self.interval)
        if served is None and self.need_fallback is not None:
            self.need_fallback()
            served = self.monitor.registry.load_timeframe_model(self.asset, self.interval)
        return served

    def _decide_shadow(self, tick: pd.Timestamp, served) -> bool:
        """Whether the monitor decided a shadow challenger at `tick` (remembered if so)."""
        outcome = self.monitor.decide_shadow(self.asset, self.interval, tick)
        if outcome is not None:
            quiet = silent_since(tick, self.calendar, self.interval, self.last_setup)
            self._remember(tick, self._assessment(tick, served, quiet), outcome)
        return outcome is not None

    def _overdue(self, tick: pd.Timestamp, served, quiet: pd.Timedelta, state: dict) -> bool:
        """Whether the monitor's rule acts without a new trade: a model of its own silent past
        the limit, or no model of its own while the pair has min_rows labelled rows and more
        of them than at the last evaluation (fewer than that changes nothing)."""
        if served is not None and served.scope == "timeframe":
            return quiet >= silence_limit(self.timeframe, self.interval)
        labelled = self._labelled(tick)
        return labelled >= self.timeframe.min_rows and labelled != state.get("evaluated_rows")

    def _labelled(self, tick: pd.Timestamp) -> int:
        return int(np.searchsorted(self.label_times, tick.to_datetime64(), side="right"))

    def _assessment(
        self, tick: pd.Timestamp, served, quiet: pd.Timedelta, marks=None
    ) -> Assessment:
        version = served.version if served else None
        scope = served.scope if served else None
        window = self.monitor.settings().trade_window
        pnl, r = self.ledger.newest(version, scope, tick, window)
        pending = len(self.trades) - self.ledger.closed_by(tick)  # open, or closing later
        summary = metrics.summarize(pnl, r, pending=pending)
        remaining = self._cooldown(tick)
        return Assessment(
            self.asset,
            self.interval,
            summary,
            self.timeframe,
            remaining,
            self._labelled(tick),
            version,
            scope,
            calibration=self._live_calibration(tick, served, marks),
            model_metrics=served.model.metrics if served else None,
            silent_for=quiet,
        )

    def marks(self, frame: pd.DataFrame, probability, version, scope) -> tuple:
        """The walk's predictions (arrays it fills as it walks) with each walked bar's time and
        outcome (times as ns): what its calibration check reads."""
        outcomes = self.history.set_index("ts")[["target_ts", "label"]].reindex(frame["ts"])
        return (
            _ns(frame["ts"]),
            probability,
            version,
            scope,
            _ns(outcomes["target_ts"]),
            outcomes["label"].to_numpy(),
        )

    def _live_calibration(self, tick: pd.Timestamp, served, marks) -> dict | None:
        """What the live monitor's calibration reads from the store (store.live_predictions),
        from the walk's own marks: the served model's predictions on the bars after
        monitor.calibration_since whose targets were known at `tick` (only the bars after
        that time are looked at, so a check costs the same late in a long walk)."""
        if served is None or marks is None:
            return None
        ts, probability, version, scope, known_at, labels = marks
        since = calibration_since(served, self.interval, tick, self.calendar)
        after = slice(int(np.searchsorted(ts, since.value, side="right")), None)
        mine = (
            (version[after] == served.version)
            & (scope[after] == served.scope)
            & ~np.isnan(probability[after])
            & (known_at[after] <= tick.value)
            & (known_at[after] != NAT)  # NaT, never known, is the smallest int64
        )
        if not mine.any():
            return None
        return models.calibration(labels[after][mine], probability[after][mine])

    def _cooldown(self, tick: pd.Timestamp) -> pd.Timedelta:
        """The cooldown left at `tick`, by the monitor's rule, from the last attempt."""
        last = self._last_attempt()
        return cooldown_left(last, self.timeframe, tick, self.calendar, self.interval)

    def _last_attempt(self) -> pd.Timestamp | None:
        return self.last_attempt  # the walk's own: its decisions reach the store at its end

    def _attempt(self, tick: pd.Timestamp, assessment: Assessment, decision: str | None) -> Outcome:
        """Retrain now (decision None) or record the skip; either way remembered in
        `decisions`."""
        if decision is None:
            frame = snapshots.as_of_view(
                self.history, tick, self.timeframe.train_rows, self.policy.window_hours
            )
            result = self.fit(frame)
            outcome = self.monitor.promote_or_reject(
                assessment, frame, result, tick, self.origin, self.policy.always_promote
            )
        else:
            outcome = Outcome(decision)
        self._remember(tick, assessment, outcome)
        return outcome

    def fit(self, frame: pd.DataFrame) -> models.TrainedModel | models.Insufficient:
        """A model of the walk's timeframe on `frame`, as the walk fits them."""
        seed = self.monitor.settings().seed
        return models.fit(frame, self.timeframe, seed, self.explain, self.workers)

    def _remember(self, tick: pd.Timestamp, assessment: Assessment, outcome: Outcome) -> None:
        """A decision in `decisions`, and in the rows the walk's last step records as the live
        monitor records them (one write, not one per check: nothing reads them before)."""
        self.unrecorded.append(decision_row(assessment, outcome, tick, self.origin))
        if outcome.action in ATTEMPTS:
            self.last_attempt = tick
        self.decisions.append(
            {
                "ts": tick,
                "action": outcome.action,
                "trigger": "; ".join(assessment.reasons) or self.policy.name,
                "challenger_score": outcome.challenger_score,
                "incumbent_score": outcome.incumbent_score,
                "new_version": outcome.new_version,
                "evidence": outcome.evidence,
            }
        )
