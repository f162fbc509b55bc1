"""The words alpha12 stores and shows, each defined once.

They are `StrEnum`s: a member equals its text, so the values in the database, in JSON and in
tests stay plain strings, while the code names each idea in one place.
"""

from __future__ import annotations

from enum import StrEnum

Pair = tuple[str, str]  # (asset, interval)
FALLBACK_INTERVAL = "all"  # the interval under which an asset's pooled model is kept
MONITOR = "monitor"  # the trigger of a retrain the monitor's run decided
FIRST_MODEL = "first_model"  # ... when it is the pair's first model of its own


class PairStatus(StrEnum):
    """A pair's standing as the monitor sees it."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    COOLDOWN = "cooldown"
    INSUFFICIENT_TRADES = "insufficient_trades"
    NO_MODEL = "no_model"


class Action(StrEnum):
    """What one monitor decision did (a row of the recalibrations table)."""

    HEALTHY = "healthy"
    RECALIBRATED = "recalibrated"
    REJECTED_CHALLENGER = "rejected_challenger"
    FAILED = "failed"
    SKIPPED_COOLDOWN = "skipped_cooldown"
    SKIPPED_TRADES = "skipped_insufficient_trades"
    SKIPPED_DATA = "skipped_insufficient_data"
    SHADOWED = "shadowed_challenger"  # too few held-out rows to compare: it waits in shadow
    SHADOW_PROMOTED = "shadow_promoted"  # its shadow outcomes beat the incumbent's
    SHADOW_REJECTED = "shadow_rejected"


# A training attempt starts the pair's cooldown, whatever its result (deciding a shadow is no
# training attempt).
ATTEMPTS = (Action.RECALIBRATED, Action.REJECTED_CHALLENGER, Action.SHADOWED, Action.FAILED)
# Decisions that put a new model to serve.
PROMOTIONS = (Action.RECALIBRATED, Action.SHADOW_PROMOTED)
# Decided at every monitor run for most pairs: the log hides them unless asked.
ROUTINE_ACTIONS = (Action.HEALTHY, Action.SKIPPED_TRADES)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"  # a lab run stopped on request: its finished parts are kept


class JobKind(StrEnum):
    """What a queued job does: one pair's forced retrain, or a recalibration lab run."""

    RETRAIN = "retrain"
    LAB = "lab"


OPEN_JOBS = (JobStatus.QUEUED, JobStatus.RUNNING)


class EngineState(StrEnum):
    STOPPED = "stopped"
    RUNNING = "running"
    WARMING_UP = "warming up"
    RESTARTING = "restarting"
    STALLED = "stalled"  # running, but its heartbeat is older than a few ticks


class ModelStatus(StrEnum):
    """A model version's place in the registry."""

    ACTIVE = "active"
    RETIRED = "retired"
    REJECTED = "rejected"
    SHADOW = "shadow"  # a challenger that trades only in shadow until the monitor decides it


class Level(StrEnum):
    """An event's level."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
