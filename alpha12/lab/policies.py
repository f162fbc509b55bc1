"""Retraining policies: when a pair's model is retrained during a walk, and whether the new
model must beat the old one to serve.

A policy only answers two questions at each monitor tick; everything else (features, targets,
entry rule, costs, the Assessment, cooldowns, the challenger gate) stays the product's own code
in `lab.walk.PairWalk` and `monitor.PerformanceMonitor`:

- `due(tick)`: does the monitor evaluate the pair now (an evaluation is recorded)?
- `decision(assessment, tick)`: the skip action, or None to retrain now.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

from alpha12.config import TimeframeSettings
from alpha12.lab import LabError
from alpha12.monitor import Assessment


@dataclass(frozen=True)
class Tick:
    """What a policy may know at a monitor tick of the walk."""

    time: pd.Timestamp
    new_trades: bool  # resolved trades changed since the last evaluation
    cooldown_over: bool  # the cooldown of the last attempt ended at or before this tick
    hours_since_attempt: float  # market hours since the last retrain attempt
    bars_since_attempt: int
    overdue: bool  # the monitor's rule acts on time alone: no own model yet, or a silent one


@dataclass(frozen=True, kw_only=True)
class Policy:
    """A retraining policy; every one trains on the same window kind: the newest `window_rows`
    labelled rows (default: the timeframe's `train_rows`, as the live monitor), and with
    `window_hours` only rows of that much market time."""

    window_rows: int | None = None
    window_hours: float | None = None
    kind: ClassVar[str] = ""
    always_promote: ClassVar[bool] = False  # register the challenger without the Brier gate

    def __post_init__(self) -> None:
        for key, reason in self.problems():
            raise LabError(f"policy {self.kind}: {key}: {reason}")

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.window_rows is not None and not (
            isinstance(self.window_rows, int) and self.window_rows >= 1
        ):
            found.append(("window_rows", f"must be a whole number >= 1, got {self.window_rows!r}"))
        if self.window_hours is not None and not _positive(self.window_hours):
            found.append(("window_hours", f"must be > 0, got {self.window_hours!r}"))
        return found

    @property
    def name(self) -> str:
        """The kind and the parameters that differ from their defaults, as parse_policies
        reads them back: "timer:hours=168"."""
        changed = [
            f"{f.name}={getattr(self, f.name)}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        ]
        return ":".join([self.kind, *changed])

    def params(self) -> dict:
        return dataclasses.asdict(self)

    def adjust(self, timeframe: TimeframeSettings) -> TimeframeSettings:
        """The settings this policy judges and trains with (the configured ones unless
        overridden)."""
        if self.window_rows is None:
            return timeframe
        return dataclasses.replace(timeframe, train_rows=self.window_rows)

    def due(self, tick: Tick) -> bool:
        raise NotImplementedError

    def decision(self, assessment: Assessment, tick: Tick) -> str | None:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Never(Policy):
    """The first model forever: the baseline every other policy is compared with."""

    kind: ClassVar[str] = "never"

    def due(self, tick: Tick) -> bool:
        return False


@dataclass(frozen=True, kw_only=True)
class Timer(Policy):
    """Retrain every `hours` of market time whatever happens, always promote (FreqAI's
    live_retrain_hours)."""

    hours: float = 168.0
    kind: ClassVar[str] = "timer"
    always_promote: ClassVar[bool] = True

    def problems(self) -> list[tuple[str, str]]:
        bad = [] if _positive(self.hours) else [("hours", f"must be > 0, got {self.hours!r}")]
        return super().problems() + bad

    def due(self, tick: Tick) -> bool:
        return tick.hours_since_attempt >= self.hours

    def decision(self, assessment: Assessment, tick: Tick) -> str | None:
        return assessment.decision(forced=True)  # only too little data stops it


@dataclass(frozen=True, kw_only=True)
class Rolling(Policy):
    """Retrain every `bars` bars on the latest window, always promote (Qlib's rolling
    retrain)."""

    bars: int = 500
    kind: ClassVar[str] = "rolling"
    always_promote: ClassVar[bool] = True

    def problems(self) -> list[tuple[str, str]]:
        ok = isinstance(self.bars, int) and self.bars >= 1
        bad = [] if ok else [("bars", f"must be a whole number >= 1, got {self.bars!r}")]
        return super().problems() + bad

    def due(self, tick: Tick) -> bool:
        return tick.bars_since_attempt >= self.bars

    def decision(self, assessment: Assessment, tick: Tick) -> str | None:
        return assessment.decision(forced=True)


@dataclass(frozen=True, kw_only=True)
class Seed(Policy):
    """What the engine does today: the monitor's Assessment.decision (the configured trigger
    and thresholds, min_trades, cooldown, min_rows, first models, silent models), evaluated
    whenever its inputs changed (a trade resolved, a cooldown ended, the rule became due on
    time alone), and the challenger gate."""

    kind: ClassVar[str] = "seed"

    def due(self, tick: Tick) -> bool:
        return tick.new_trades or tick.cooldown_over or tick.overdue

    def decision(self, assessment: Assessment, tick: Tick) -> str | None:
        return assessment.decision()


@dataclass(frozen=True, kw_only=True)
class Guarded(Seed):
    """The seed rule under the "guarded" trigger (monitor.performance_reasons): degraded only
    when the whole 95% interval lies below a threshold, so a short bad run of a sound model no
    longer triggers a retrain. The live monitor judges a timeframe so when its trigger is
    "guarded"."""

    kind: ClassVar[str] = "guarded"

    def adjust(self, timeframe: TimeframeSettings) -> TimeframeSettings:
        return dataclasses.replace(timeframe, trigger="guarded")


@dataclass(frozen=True, kw_only=True)
class PageHinkley(Seed):
    """The seed rule under the "page_hinkley" trigger: degraded when the Page-Hinkley test on
    the serving model's trade R detects a fall in its mean (Page 1954; Hinkley 1971), whatever
    the level of the win rate and profit factor."""

    kind: ClassVar[str] = "page_hinkley"

    def adjust(self, timeframe: TimeframeSettings) -> TimeframeSettings:
        return dataclasses.replace(timeframe, trigger="page_hinkley")


@dataclass(frozen=True, kw_only=True)
class Custom(Seed):
    """The seed rule with thresholds typed by the analyst (a what-if); None keeps the
    configured value."""

    win_rate: float | None = None
    profit_factor: float | None = None
    min_trades: int | None = None
    cooldown_hours: float | None = None
    kind: ClassVar[str] = "custom"

    def problems(self) -> list[tuple[str, str]]:
        checks = [
            ("win_rate", lambda v: 0 <= v <= 1, "must be within [0, 1]"),
            ("profit_factor", lambda v: v >= 0, "must be >= 0"),
            ("min_trades", lambda v: isinstance(v, int) and v >= 1, "must be a whole number >= 1"),
            ("cooldown_hours", lambda v: v >= 0, "must be >= 0"),
        ]
        values = {key: getattr(self, key) for key, _, _ in checks}
        found = [
            (key, f"{reason}, got {values[key]!r}")
            for key, ok, reason in checks
            if values[key] is not None and not (_number(values[key]) and ok(values[key]))
        ]
        return super().problems() + found

    def adjust(self, timeframe: TimeframeSettings) -> TimeframeSettings:
        keys = ("win_rate", "profit_factor", "min_trades", "cooldown_hours")
        changes = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        return dataclasses.replace(super().adjust(timeframe), **changes)


POLICIES: dict[str, type[Policy]] = {
    p.kind: p for p in (Never, Timer, Rolling, Seed, Guarded, PageHinkley, Custom)
}


def parse_policies(text: str) -> list[Policy]:
    """ "never,timer:hours=168,custom:win_rate=0.5:cooldown_hours=24" -> policies; an unknown
    name or key, a bad value or a repeated policy is refused with the key and the reason."""
    policies = [parse_policy(part.strip()) for part in text.split(",") if part.strip()]
    if not policies:
        raise LabError("policies: none given")
    names = [p.name for p in policies]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise LabError(f"policies: {', '.join(repeated)} given more than once")
    return policies


def policies_text(kinds: list[str], parameters: str) -> str:
    """The policies chosen by kind plus those typed with parameters ("timer:hours=72"), as one
    text for parse_policies; a kind typed with parameters replaces its bare kind."""
    typed = [part.strip() for part in parameters.split(",") if part.strip()]
    given = {part.split(":")[0] for part in typed}
    return ",".join([kind for kind in kinds if kind not in given] + typed)


def parse_policy(text: str) -> Policy:
    kind, *pairs = text.split(":")
    cls = POLICIES.get(kind)
    if cls is None:
        raise LabError(f"policy {kind!r}: unknown (known: {', '.join(POLICIES)})")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        if key not in fields:
            raise LabError(f"policy {kind}: {key}: unknown key (known: {', '.join(fields)})")
        values[key] = _value(kind, key, raw, fields[key].type)
    return cls(**values)


def _value(kind: str, key: str, raw: str, hint: str) -> int | float:
    """A parameter's number from text: a whole number where the field is an int."""
    try:
        value = float(raw)
    except ValueError:
        raise LabError(f"policy {kind}: {key}: expected a number, got {raw!r}") from None
    if hint.startswith("int"):
        if not value.is_integer():
            raise LabError(f"policy {kind}: {key}: expected a whole number, got {raw!r}")
        return int(value)
    return value


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value) -> bool:
    return _number(value) and value > 0
