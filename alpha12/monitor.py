"""The performance monitor: judges each pair's recent trades against its timeframe's thresholds
and its serving model's live calibration, and decides, and records, whether to recalibrate.

`Assessment` is the pure rule; `PerformanceMonitor` gathers its inputs from the store, runs the
recalibrations and writes every decision to `recalibrations`.

A challenger is promoted only if it scores (Brier) at least as well as the incumbent on rows
neither model trained on: the held-out rows of its evaluation slice after the incumbent's
training window. With too few of those it waits in shadow (trading would-be setups only) and
a later monitor run decides it on the rows that resolved after both training windows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alpha12 import formatting, metrics, models, training
from alpha12.calendars import Calendar
from alpha12.clock import Clock
from alpha12.config import Settings, TimeframeSettings
from alpha12.features import FEATURE_NAMES
from alpha12.registry import FALLBACK_INTERVAL, Registry, RegistryError
from alpha12.store import Store, to_json
from alpha12.timeframes import interval_delta
from alpha12.vocabulary import FIRST_MODEL, MONITOR, Action, ModelStatus, Pair, PairStatus

# Resolved live predictions needed before live calibration is judged. A perfectly calibrated
# model's 10-bin ECE is sampling noise of about 0.8 / sqrt(n) (probabilities near the base
# rate): simulated, it exceeds the default gap of 0.10 in 22% of checks at 100 predictions,
# 4% at 200 and 0.3% at 300; the monitor checks every hour, so 300 keeps false alarms rare.
MIN_CALIBRATION_PREDICTIONS = 300
# Live calibration is judged on the serving model's predictions of at most this many newest
# bars: as the trades are judged on the newest trade_window, so that a drift of this week is
# not diluted by months of good history, and so that the overview's refresh reads a bounded
# number of rows whatever the age of the model (reading every prediction of a year-old 5m
# model took 1.4 s of a 1.6 s refresh at 1M snapshots).
CALIBRATION_WINDOW_BARS = 1000

# Evidence a challenger is judged on (see held_out_comparison and shadow_comparison).
HELD_OUT, SHADOW = "held-out rows", "shadow outcomes"
# Fewer rows than the smallest evaluation slice models.fit scores a model on would decide by
# noise (a Brier difference of a few thousandths is within a few rows' chance): below it, a
# challenger waits in shadow for more.
MIN_FAIR_ROWS = models.MIN_EVAL_ROWS


@dataclass
class Assessment:
    """One pair's standing at one moment, and what the rule says to do about it."""

    asset: str
    interval: str
    summary: dict  # metrics.summarize over the window of recent trades
    thresholds: TimeframeSettings
    cooldown_remaining: pd.Timedelta
    labelled_rows: int
    model_version: int | None = None
    model_scope: str | None = None
    calibration: dict | None = None  # models.calibration of the serving model's live predictions
    model_metrics: dict | None = None  # the serving model's hold-out metrics (models.evaluate)
    # since the serving model last opened a setup (see silent_since)
    silent_for: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(0))
    reasons: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.has_own_model and self.silent_for >= self.silence_limit:
            quiet = formatting.duration(self.silent_for.total_seconds())
            self.reasons.append(f"no setups in {quiet}")
        if self.enough_trades:
            self.reasons += performance_reasons(self.summary, self.thresholds)
        if self.calibration_judged:
            ece, gap = self.calibration["ece"], self.thresholds.max_calibration_gap
            if ece > gap:
                self.reasons.append(
                    f"live ECE {ece:.3f} above {gap:.2f} "
                    f"on {self.calibration['predictions']} predictions"
                )

    @property
    def has_model(self) -> bool:
        return self.model_version is not None

    @property
    def has_own_model(self) -> bool:
        """Served by a model of its own, not by the asset's fallback (or by nothing)."""
        return self.has_model and self.model_scope == "timeframe"

    @property
    def silence_limit(self) -> pd.Timedelta:
        return silence_limit(self.thresholds, self.interval)

    def trigger(self, asked: str) -> str:
        """What a decision asked for as `asked` is recorded as: a monitor run that trains a
        pair with no model of its own trains its first one."""
        first = asked == MONITOR and not self.has_own_model and self.decision() is None
        return FIRST_MODEL if first else asked

    @property
    def enough_trades(self) -> bool:
        return self.summary["trades"] >= self.thresholds.min_trades

    @property
    def calibration_judged(self) -> bool:
        """Enough resolved live predictions for their calibration to be judged."""
        predictions = self.calibration["predictions"] if self.calibration else 0
        return predictions >= MIN_CALIBRATION_PREDICTIONS

    @property
    def edge(self) -> tuple[bool, str]:
        """(no edge, why) of the serving model (metrics.edge_verdict); a badge, not a
        degradation reason: retraining cannot give skill to a market that offers none."""
        if self.model_metrics is None:
            return False, ""
        return metrics.edge_verdict(self.model_metrics)

    @property
    def degraded(self) -> bool:
        return bool(self.reasons)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_remaining > pd.Timedelta(0)

    @property
    def enough_data(self) -> bool:
        return self.labelled_rows >= self.thresholds.min_rows

    @property
    def status(self) -> PairStatus:
        """A calibration gap degrades a pair whatever its trades; without one, a pair with too
        few trades is not judged."""
        if not self.has_model:
            return PairStatus.NO_MODEL
        if self.degraded:
            return PairStatus.COOLDOWN if self.in_cooldown else PairStatus.DEGRADED
        if not self.enough_trades:
            return PairStatus.INSUFFICIENT_TRADES
        return PairStatus.HEALTHY

    def decision(self, forced: bool = False) -> Action | None:
        """The skip action, or None when the pair should be (re)trained now: forced, degraded,
        or served by no model of its own (the fallback serves until the pair has min_rows
        labelled rows of its own, whatever its trades) — unless in cooldown or short of data."""
        if forced:
            return None if self.enough_data else Action.SKIPPED_DATA
        if self.has_own_model and not self.degraded:
            return Action.HEALTHY if self.enough_trades else Action.SKIPPED_TRADES
        if self.in_cooldown:
            return Action.SKIPPED_COOLDOWN
        return None if self.enough_data else Action.SKIPPED_DATA

    def live_figures(self) -> dict:
        """The live calibration the rule judged: its ECE (None without predictions) and how
        many resolved predictions it rests on."""
        calibration = self.calibration or {}
        return {
            "live_ece": calibration.get("ece"),
            "live_predictions": calibration.get("predictions", 0),
        }

    def as_dict(self) -> dict:
        no_edge, no_edge_reason = self.edge
        return {
            "asset": self.asset,
            "interval": self.interval,
            **{
                k: self.summary[k]
                for k in (
                    "trades",
                    "pending",
                    "win_rate",
                    "profit_factor",
                    "win_rate_low",
                    "win_rate_high",
                    "profit_factor_low",
                    "profit_factor_high",
                    "expectancy_pct",
                )
            },
            "win_rate_threshold": self.thresholds.win_rate,
            "profit_factor_threshold": self.thresholds.profit_factor,
            "min_trades": self.thresholds.min_trades,
            "trigger": self.thresholds.trigger,
            **self.live_figures(),
            "max_calibration_gap": self.thresholds.max_calibration_gap,
            "no_edge": no_edge,
            "no_edge_reason": no_edge_reason,
            "degraded": self.degraded,
            "reasons": list(self.reasons),
            "in_cooldown": self.in_cooldown,
            "cooldown_remaining_s": self.cooldown_remaining.total_seconds(),
            "labelled_rows": self.labelled_rows,
            "min_rows": self.thresholds.min_rows,
            "status": self.status,
            "model_version": self.model_version,
            "model_scope": self.model_scope,
        }


@dataclass
class Outcome:
    """What one recalibration attempt (or skip) did."""

    action: str
    message: str = ""
    challenger_score: float | None = None
    incumbent_score: float | None = None
    new_version: int | None = None
    metrics_after: dict | None = None
    evidence: str | None = None  # what decided a challenger: "held-out rows (N)", ...

    def as_row(self, asset: str, interval: str, reasons: str = "") -> dict:
        """The outcome as a row of the CLI's and the pages' tables."""
        return {
            "asset": asset,
            "interval": interval,
            "action": self.action,
            "message": self.message or reasons,
            "challenger_brier": self.challenger_score,
            "incumbent_brier": self.incumbent_score,
            "new_version": self.new_version,
            "evidence": self.evidence,
        }


class PerformanceMonitor:
    def __init__(
        self, store: Store, registry: Registry, settings: Callable[[], Settings], clock: Clock
    ):
        self.store = store
        self.registry = registry
        self.settings = settings  # read at every run, so edited thresholds apply next run
        self.clock = clock

    # -- judging -------------------------------------------------------------------------

    def assess(self, asset: str, interval: str, now: pd.Timestamp | None = None) -> Assessment:
        return self.assess_all([(asset, interval)], now)[0]

    def assess_all(
        self, pairs: list[tuple[str, str]], now: pd.Timestamp | None = None
    ) -> list[Assessment]:
        """Every pair's assessment from three set-based queries (the overview asks for all
        of them every few seconds): recent trades of the serving model, and the counts."""
        now = now or self.clock.now()
        settings = self.settings()
        served = [self.registry.load_timeframe_model(a, i) for a, i in pairs]
        keys = pd.DataFrame(
            [
                (a, i, s.version if s else None, s.scope if s else None)
                for (a, i), s in zip(pairs, served, strict=True)
            ],
            columns=["asset", "interval", "version", "scope"],
        ).astype({"version": "Int64", "scope": "object"})
        trades = self.store.serving_trades(keys, now, settings.trade_window)
        counts = self.store.pair_counts(keys, now)
        counts = {(c.asset, c.interval): c for c in counts.itertuples(index=False)}
        by_pair = {key: group for key, group in trades.groupby(["asset", "interval"], sort=False)}
        calibrations = self.live_calibrations(keys, served, now)
        assessments = []
        for (asset, interval), serving in zip(pairs, served, strict=True):
            thresholds, calendar = settings.timeframe(interval), settings.calendar(asset)
            mine = by_pair.get((asset, interval), trades.iloc[:0])
            count = counts[(asset, interval)]
            last_attempt = None if pd.isna(count.last_attempt) else count.last_attempt
            summary = metrics.summarize(
                mine["pnl_pct"].to_numpy(),
                mine["r_multiple"].to_numpy(),
                pending=int(count.pending),
            )
            assessments.append(
                Assessment(
                    asset,
                    interval,
                    summary,
                    thresholds,
                    cooldown_remaining=cooldown_left(
                        last_attempt, thresholds, now, calendar, interval
                    ),
                    labelled_rows=int(count.labelled),
                    model_version=serving.version if serving else None,
                    model_scope=serving.scope if serving else None,
                    calibration=calibrations.get((asset, interval)),
                    model_metrics=serving.model.metrics if serving else None,
                    silent_for=silent_since(
                        now,
                        calendar,
                        interval,
                        count.last_setup,
                        last_attempt,
                        serving.model.window_end if serving else None,
                    ),
                )
            )
        return assessments

    def live_calibrations(
        self, keys: pd.DataFrame, served: list, now: pd.Timestamp
    ) -> dict[Pair, dict]:
        """models.calibration of each serving model's resolved live predictions, by pair."""
        calendar = self.settings().calendar
        since = [
            calibration_since(s, interval, now, calendar(asset)) if s else None
            for s, asset, interval in zip(served, keys["asset"], keys["interval"], strict=True)
        ]
        keys = keys.assign(since=pd.Series(since, dtype="datetime64[us, UTC]"))
        predictions = self.store.live_predictions(keys, now, CALIBRATION_WINDOW_BARS)
        return {
            pair: models.calibration(rows["target"].to_numpy(), rows["probability"].to_numpy())
            for pair, rows in predictions.groupby(["asset", "interval"], sort=False)
        }

    # -- acting --------------------------------------------------------------------------

    def monitor_all_timeframes(self, assets, intervals, progress=None) -> dict[str, dict]:
        """Judge every pair, recalibrate the degraded ones the rules allow; per ASSET_INTERVAL,
        the assessment and the action taken."""
        now = self.clock.now()
        pairs = [(a, i) for a in assets for i in intervals]
        shadows = self.decide_shadows(pairs, now, "monitor")
        assessments = self.assess_all(pairs, now)
        due = [x for x in assessments if x.decision() is None]
        trained = self.recalibrate_many(due, now, MONITOR, progress)
        outcomes = {(x.asset, x.interval): o for x, o in zip(due, trained, strict=True)}
        report, rows = {}, []
        for assessment in assessments:
            pair = (assessment.asset, assessment.interval)
            outcome = outcomes.get(pair) or Outcome(assessment.decision())
            rows.append(decision_row(assessment, outcome, now, assessment.trigger(MONITOR)))
            report[f"{assessment.asset}_{assessment.interval}"] = {
                **assessment.as_dict(),
                "action": outcome.action,
                "message": outcome.message,
                "recalibrated": outcome.action == Action.RECALIBRATED,
                **_shadow_decision(shadows.get(pair)),
            }
        self.store.record_recalibrations(rows)  # every pair's decision in one statement
        return report

    def retrain(
        self,
        asset: str,
        interval: str,
        force: bool = False,
        trigger: str = "forced",
        progress=None,
    ) -> tuple[Assessment, Outcome]:
        """Recalibrate one pair now if the rules allow it (or whatever its trades, with
        force), and record the decision. A training that raises is recorded as failed."""
        now = self.clock.now()
        assessment = self.assess(asset, interval, now)
        skip = assessment.decision(forced=force)
        if skip is not None:
            outcome = Outcome(skip)
        else:
            try:
                outcome = self.recalibrate_many([assessment], now, trigger, progress)[0]
            except Exception as error:
                outcome = Outcome(Action.FAILED, f"{type(error).__name__}: {error}")
        self.record(assessment, outcome, now, trigger)
        return assessment, outcome

    def train_pairs(self, pairs: list[Pair], fallbacks: bool, progress=None) -> list[dict]:
        """A forced retrain of every pair (cooldowns ignored), then, with `fallbacks`, each
        asset's pooled fallback model; one row per model."""
        rows = []
        for n, (asset, interval) in enumerate(pairs):
            if progress:
                progress(n / len(pairs), f"{asset} {interval}")
            assessment, outcome = self.retrain(asset, interval, True, "cli")
            rows.append(outcome.as_row(asset, interval, "; ".join(assessment.reasons)))
        if fallbacks:
            now = self.clock.now()
            trained = self.train_fallbacks({asset: now for asset, _ in pairs}, "cli")
            rows += [
                {"asset": a, "interval": FALLBACK_INTERVAL, "action": "fallback", "message": m}
                for a, m in trained.items()
            ]
        return rows

    def recalibrate_many(
        self, due: list[Assessment], as_of: pd.Timestamp, trigger: str, progress=None
    ) -> list[Outcome]:
        """Train challengers for `due` (in parallel) and promote or reject each."""
        if not due:
            return []
        settings = self.settings()
        frames = [
            training.training_frame(self.store, settings, x.asset, x.interval, as_of) for x in due
        ]
        if progress:
            progress(0.2, f"training {len(due)} challenger(s)")
        try:
            results = training.fit_many(
                [(f, x.thresholds) for f, x in zip(frames, due, strict=True)], settings
            )
        except Exception as error:  # a broken worker pool must not lose the decisions
            return [
                Outcome(Action.FAILED, f"training failed: {type(error).__name__}: {error}")
                for _ in due
            ]
        if progress:
            progress(0.8, "comparing challengers with incumbents")
        return [
            self._promote_or_fail(x, frame, result, as_of, x.trigger(trigger))
            for x, frame, result in zip(due, frames, results, strict=True)
        ]

    def _promote_or_fail(self, assessment, frame, result, as_of, trigger) -> Outcome:
        """promote_or_reject, where anything unexpected is this pair's failed outcome (with
        its reason), so every other pair's decision is still made and recorded."""
        try:
            return self.promote_or_reject(assessment, frame, result, as_of, trigger)
        except Exception as error:
            return Outcome(Action.FAILED, f"promotion failed: {type(error).__name__}: {error}")

    def promote_or_reject(
        self,
        assessment: Assessment,
        frame: pd.DataFrame,
        result,
        as_of: pd.Timestamp,
        trigger: str,
        always_promote: bool = False,
    ) -> Outcome:
        """Register the challenger: active with no incumbent (or `always_promote`: a policy
        that retrains blindly); else judged against the incumbent on the held-out rows neither
        trained on (held_out_comparison): active if it scores at least as well there,
        rejected if worse, and in shadow while there are too few such rows to tell."""
        asset, interval = assessment.asset, assessment.interval
        if isinstance(result, models.Insufficient):
            return Outcome(Action.SKIPPED_DATA, result.message)
        if isinstance(result, training.ComputeError):
            return Outcome(Action.FAILED, str(result))
        incumbent = self.registry.load_active(asset, interval)
        comparison = None
        if incumbent is not None and not always_promote:
            comparison = held_out_comparison(frame, result, incumbent.model)
        status = _verdict(comparison)
        replaced = self.registry.load_shadow(asset, interval)
        try:
            version = self.registry.register(asset, interval, result, as_of, trigger, status)
        except RegistryError as error:
            return Outcome(Action.FAILED, str(error))
        outcome = _challenger_outcome(status, version, incumbent, comparison, result)
        if replaced is not None:
            outcome.message += f"; shadow v{replaced.version} ends undecided"
        return outcome

    def decide_shadows(
        self, pairs: list[Pair], now: pd.Timestamp, trigger: str
    ) -> dict[Pair, Outcome]:
        """Decide (and record) every pair's shadow challenger that has enough outcomes."""
        waiting = set(self.store.shadow_pairs())
        decided = {}
        for asset, interval in pairs:
            if (asset, interval) in waiting:
                outcome = self.decide_shadow(asset, interval, now)
                if outcome is not None:
                    self.record(self.assess(asset, interval, now), outcome, now, trigger)
                    decided[(asset, interval)] = outcome
        return decided

    def decide_shadow(self, asset: str, interval: str, now: pd.Timestamp) -> Outcome | None:
        """The pair's shadow challenger against the incumbent on the rows after both training
        windows whose outcomes were known by `now` (shadow_comparison): it serves if it scores
        at least as well, else it is rejected. None while too few outcomes are known (or
        without a shadow)."""
        shadow = self.registry.load_shadow(asset, interval)
        incumbent = self.registry.load_active(asset, interval)
        if shadow is None or incumbent is None:
            return None
        after = max(shadow.model.window_end, incumbent.model.window_end)
        rows = self.store.labelled_after(asset, interval, after, now)
        comparison = shadow_comparison(rows, shadow.model, incumbent.model)
        if not comparison.enough:
            return None
        versus = comparison.versus(incumbent.version)
        if comparison.challenger_wins:
            self.registry.activate(asset, interval, shadow.version)
            action, message = Action.SHADOW_PROMOTED, f"shadow v{shadow.version} promoted"
        else:
            self.registry.reject(asset, interval, shadow.version)
            action, message = Action.SHADOW_REJECTED, f"shadow v{shadow.version} rejected"
        return Outcome(
            action,
            f"{message} ({versus})",
            comparison.challenger,
            comparison.incumbent,
            shadow.version,
            shadow.model.metrics,
            str(comparison),
        )

    def record(
        self, assessment: Assessment, outcome: Outcome, now: pd.Timestamp, trigger: str
    ) -> None:
        self.store.record_recalibrations([decision_row(assessment, outcome, now, trigger)])

    def train_fallbacks(self, as_of: dict[str, pd.Timestamp], trigger: str) -> dict[str, str]:
        """Each asset's pooled model as of its time in `as_of`, for timeframes that have none
        of their own yet; the assets' models train side by side (fit_many)."""
        settings = self.settings()
        frames = {
            asset: training.pooled_training_frame(self.store, settings, asset, when)
            for asset, when in sorted(as_of.items())
        }
        fallback = settings.fallback_timeframe()
        results = training.fit_many([(f, fallback) for f in frames.values()], settings)
        outcome = {}
        for asset, result in zip(frames, results, strict=True):
            if isinstance(result, models.Insufficient | training.ComputeError):
                outcome[asset] = str(getattr(result, "message", result))
                continue
            when = as_of[asset]
            version = self.registry.register(asset, FALLBACK_INTERVAL, result, when, trigger)
            outcome[asset] = f"fallback v{version}"
        return outcome


def calibration_since(served, interval: str, now: pd.Timestamp, calendar: Calendar) -> pd.Timestamp:
    """The live predictions of `served` that count are those of bars after this: after its
    training window (out of sample; its own predictions are those since it began serving), and
    among the newest CALIBRATION_WINDOW_BARS bars (counted in the asset's trading time, so a
    stock's window holds as many bars as a 24/7 market's)."""
    span = CALIBRATION_WINDOW_BARS * interval_delta(interval)
    window_start = calendar.back(now, span, interval)
    return max(pd.Timestamp(served.model.window_end), window_start)


def performance_reasons(summary: dict, thresholds: TimeframeSettings) -> list[str]:
    """Why the trades of `summary` (metrics.summarize) degrade a pair under the timeframe's
    trigger: "threshold" compares the point win rate and profit factor with the thresholds;
    "guarded" their 95% upper bounds (Wilson 1927; percentile bootstrap, Efron 1979), so only a
    record whose whole interval lies below a threshold degrades it and a short bad run of a
    sound model does not; "page_hinkley" ignores the levels and degrades when the Page-Hinkley
    statistic says mean R has fallen (metrics.page_hinkley). The lab's policies of the same
    names judge by these triggers (seed: the configured one)."""
    if thresholds.trigger == "page_hinkley":
        statistic, alarm = summary["page_hinkley"], metrics.PAGE_HINKLEY_THRESHOLD
        return (
            [f"mean R fell: Page-Hinkley {statistic:.1f} above {alarm:g}"]
            if statistic > alarm
            else []
        )
    guarded = thresholds.trigger == "guarded"
    win_rate = summary["win_rate_high" if guarded else "win_rate"]
    pf = summary["profit_factor_high" if guarded else "profit_factor"]
    reasons = []
    if win_rate < thresholds.win_rate:
        reasons.append(f"win rate {win_rate:.1%} below {thresholds.win_rate:.0%}")
    if pf < thresholds.profit_factor:
        reasons.append(f"profit factor {pf:.2f} below {thresholds.profit_factor:.2f}")
    return [f"95% upper bound: {reason}" for reason in reasons] if guarded else reasons


@dataclass(frozen=True)
class Comparison:
    """A challenger's and an incumbent's Brier scores on the same rows, none of which either
    model trained on; `evidence` says which rows: HELD_OUT or SHADOW."""

    evidence: str
    rows: int
    challenger: float | None
    incumbent: float | None

    @property
    def enough(self) -> bool:
        return self.rows >= MIN_FAIR_ROWS

    @property
    def challenger_wins(self) -> bool:
        return self.challenger <= self.incumbent  # a tie favours the fresher model

    def versus(self, incumbent_version: int) -> str:
        return (
            f"Brier {self.challenger:.4f} vs incumbent v{incumbent_version} "
            f"{self.incumbent:.4f} on {self}"
        )

    def __str__(self) -> str:
        return f"{self.evidence} ({self.rows})"


def held_out_comparison(
    frame: pd.DataFrame, challenger: models.TrainedModel, incumbent: models.TrainedModel
) -> Comparison:
    """The challenger's hold-out predictions and the incumbent's on the rows of the
    challenger's evaluation slice after the incumbent's training window: rows the hold-out
    model never saw (it trained before the slice) and the incumbent never saw either. Scoring
    the incumbent on rows it trained on would judge it in sample and favour it."""
    evaluated = frame[frame["ts"].isin(challenger.holdout.index)]
    fair = evaluated[evaluated["ts"] > incumbent.window_end].dropna(subset=["label"])
    held_out = challenger.holdout.reindex(pd.DatetimeIndex(fair["ts"])).to_numpy()
    return _compare(HELD_OUT, fair, held_out, _predicted(incumbent, fair))


def shadow_comparison(
    rows: pd.DataFrame, shadow: models.TrainedModel, incumbent: models.TrainedModel
) -> Comparison:
    """Both models' predictions on the labelled `rows` after both training windows: what the
    two predicted live at each of those bars (the stored features are what they saw)."""
    after = max(shadow.window_end, incumbent.window_end)
    fair = rows[rows["ts"] > after].dropna(subset=[*FEATURE_NAMES, "label"])
    return _compare(SHADOW, fair, _predicted(shadow, fair), _predicted(incumbent, fair))


def _predicted(model: models.TrainedModel, rows: pd.DataFrame) -> np.ndarray:
    """The model's probabilities (none for no rows: sklearn refuses an empty input)."""
    return model.predict_proba(rows) if len(rows) else np.empty(0)


def _compare(evidence: str, rows: pd.DataFrame, challenger, incumbent) -> Comparison:
    if rows.empty:
        return Comparison(evidence, 0, None, None)
    labels = rows["label"].to_numpy(dtype="float64")
    return Comparison(
        evidence,
        len(rows),
        float(np.mean((challenger - labels) ** 2)),
        float(np.mean((incumbent - labels) ** 2)),
    )


def _verdict(comparison: Comparison | None) -> ModelStatus:
    """A challenger's registry status: active without a comparison to make, shadow while the
    comparison has too few rows, else active or rejected by its score."""
    if comparison is None:
        return ModelStatus.ACTIVE
    if not comparison.enough:
        return ModelStatus.SHADOW
    return ModelStatus.ACTIVE if comparison.challenger_wins else ModelStatus.REJECTED


def _challenger_outcome(status, version, incumbent, comparison, result) -> Outcome:
    """What registering a challenger as `status` did, in words with its evidence."""
    evidence = None if comparison is None else str(comparison)
    if status == ModelStatus.SHADOW:
        return Outcome(
            Action.SHADOWED,
            f"v{version} in shadow: {comparison} after incumbent v{incumbent.version}'s "
            f"training window, {MIN_FAIR_ROWS} needed to compare; v{incumbent.version} keeps "
            "serving until shadow outcomes decide",
            new_version=version,
            metrics_after=result.metrics,
            evidence=evidence,
        )
    if comparison is None:
        versus = "no incumbent" if incumbent is None else "promoted without comparison (policy)"
        scores = (result.metrics["brier"], None)
    else:
        versus = comparison.versus(incumbent.version)
        scores = (comparison.challenger, comparison.incumbent)
    if status == ModelStatus.ACTIVE:
        action, message = Action.RECALIBRATED, f"v{version} promoted ({versus})"
    else:
        action = Action.REJECTED_CHALLENGER
        message = f"v{version} rejected ({versus}); v{incumbent.version} keeps serving"
    return Outcome(action, message, *scores, version, result.metrics, evidence)


def cooldown_left(
    last_attempt,
    thresholds: TimeframeSettings,
    now: pd.Timestamp,
    calendar: Calendar,
    interval: str,
) -> pd.Timedelta:
    """Time left of the cooldown that the last attempt started (zero when none), in the
    trading time of the asset's calendar: a stock's cooldown stands still while its market is
    closed, and a 72-hour 1d cooldown is three sessions (wall time on 24/7)."""
    if last_attempt is None:
        return pd.Timedelta(0)
    spent = calendar.trading_time(pd.Timestamp(last_attempt).tz_convert("UTC"), now, interval)
    return max(pd.Timedelta(hours=thresholds.cooldown_hours) - spent, pd.Timedelta(0))


def silence_limit(thresholds: TimeframeSettings, interval: str) -> pd.Timedelta:
    """How long a model may open no setup before it counts as degraded: the time in which it
    could have made its min_trades trades back to back. A model that never crosses the entry
    threshold is never judged on trades, so without this it would serve, silent, forever."""
    return thresholds.min_trades * thresholds.horizon_bars * interval_delta(interval)


def silent_since(now: pd.Timestamp, calendar: Calendar, interval: str, *events) -> pd.Timedelta:
    """Trading time (the asset's calendar's) since the newest of `events` (missing ones
    ignored; zero when none is known): the serving model's newest setup, the pair's last
    training attempt (a promotion or a rejected challenger restarts the count) and the end of
    the model's training window. A closed market opens no setups, so its nights do not count."""
    known = [pd.Timestamp(e) for e in events if not formatting.missing(e)]
    return calendar.trading_time(max(known), now, interval) if known else pd.Timedelta(0)


def _shadow_decision(outcome: Outcome | None) -> dict:
    """A report row's shadow_action and shadow_message (None without a shadow decided)."""
    if outcome is None:
        return {"shadow_action": None, "shadow_message": None}
    return {"shadow_action": outcome.action, "shadow_message": outcome.message}


def _finite(value: float) -> float | None:
    """DuckDB DOUBLE takes inf, but JSON and the UI read NaN as 'no value'."""
    return None if value is None or np.isnan(value) else float(value)


def decision_row(assessment: Assessment, outcome: Outcome, now: pd.Timestamp, trigger: str) -> dict:
    """A monitor decision as the recalibrations table stores it."""
    summary = assessment.summary
    message = outcome.message or "; ".join(assessment.reasons)
    return {
        "asset": assessment.asset,
        "interval": assessment.interval,
        "ts": now,
        "trigger": trigger,
        "action": outcome.action,
        "win_rate": _finite(summary["win_rate"]),
        "profit_factor": _finite(summary["profit_factor"]),
        "trades": summary["trades"],
        "reasons": "; ".join(assessment.reasons),
        "challenger_score": outcome.challenger_score,
        "incumbent_score": outcome.incumbent_score,
        "new_version": outcome.new_version,
        "metrics_before": to_json({**summary, **assessment.live_figures()}),
        "metrics_after": to_json(outcome.metrics_after) if outcome.metrics_after else None,
        "message": message,
        "evidence": outcome.evidence,
    }
