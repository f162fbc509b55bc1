"""The background engine: one thread per process that collects and analyses each pair as its
bars close, runs the monitor every monitor period of clock time, and works the job queue of
forced retrains — with a heartbeat, and a supervisor that restarts the thread if it dies.

Training never runs on the engine thread: monitor runs and jobs go to one trainer thread (which
fans out through joblib), so a burst of retrains never stalls the other pairs' cycle.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout

import pandas as pd

from alpha12 import cycle, heap
from alpha12.alerts import AlertKind
from alpha12.clock import WallClock, utc
from alpha12.collector import Backoff, collect_pairs
from alpha12.context import Context
from alpha12.lab import runs
from alpha12.monitor import Outcome
from alpha12.timeframes import interval_delta
from alpha12.vocabulary import ATTEMPTS, Action, EngineState, JobKind, JobStatus, PairStatus
from alpha12.warmstart import WARM_START_PROGRESS_KEY, pending_pairs, warm_start

TICK_SECONDS = 1.0
ENGINE_STATE_KEY = "engine"
REPEAT_LOG_EVERY = 100
MAX_FAILURE_KEYS = 1000  # distinct failure messages counted at once (a bounded memory)
STALL_TICKS = 60  # a running engine whose heartbeat is this many ticks old has stalled
# Wall seconds between reopenings of the store after training work (Connection.reopen): DuckDB
# keeps about 1 KB of C heap per query until its instance closes; a reopen takes a fraction of
# a second while the pages and the engine's reads wait.
STORE_REOPEN_SECONDS = 600
# Wall seconds between heap releases after training work (alpha12.heap): a release walks every
# object and the whole C heap (0.1-0.2 s in a large process), and on a fast replay clock the
# monitor runs every few seconds; pages freed meanwhile go back at the next release.
HEAP_RELEASE_SECONDS = 60
# A monitor decision -> the alert it raises (a challenger put in shadow raises none: nothing
# changed yet; its later decision does).
ACTION_ALERTS = {
    Action.RECALIBRATED: AlertKind.RECALIBRATED,
    Action.REJECTED_CHALLENGER: AlertKind.REJECTED,
    Action.FAILED: AlertKind.FAILED,
    Action.SHADOW_PROMOTED: AlertKind.RECALIBRATED,
    Action.SHADOW_REJECTED: AlertKind.REJECTED,
}

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, context: Context, tick_seconds: float = TICK_SECONDS):
        self.context = context
        self.store = context.store
        self.clock = context.clock
        self.registry = context.registry
        self.monitor = context.monitor
        self.tick_seconds = tick_seconds
        self.backoff = Backoff()
        self._state = EngineState.STOPPED
        self.last_heartbeat: pd.Timestamp | None = None
        self._stall_reported: pd.Timestamp | None = None  # the heartbeat a stall was told of
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._supervisor: threading.Thread | None = None
        self._trainer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alpha12-trainer")
        self._training: Future | None = None
        self._next_due: dict[tuple[str, str], pd.Timestamp] = {}
        self._next_monitor: pd.Timestamp | None = None
        self._failures: dict[tuple[str, str, str], int] = {}
        self._death = "no exception"
        self._lock = threading.Lock()
        self._store_reopened = time.monotonic()
        self._heap_released = time.monotonic()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the engine thread and its supervisor; a second call does nothing."""
        with self._lock:
            if self._thread and self._thread.is_alive():
                return
            self._stop.clear()
            self._requeue_interrupted_jobs()
            self._spawn()
            self._supervisor = threading.Thread(
                target=self._supervise, daemon=True, name="alpha12-supervisor"
            )
            self._supervisor.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop and wait for the thread; a second call does nothing."""
        self._stop.set()
        _join(self._supervisor, timeout)
        _join(self._thread, timeout)  # after the supervisor: it may have just restarted it
        if self._training and not self._training.done():
            try:
                self._training.exception(timeout)  # let a running retrain finish its writes
            except FuturesTimeout:
                self._event(
                    "warning", f"stopped while training was still running after {timeout:g} s"
                )
        self.state = EngineState.STOPPED
        self._heartbeat()

    @property
    def running(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    @property
    def state(self) -> EngineState:
        return self._state

    @state.setter
    def state(self, value: EngineState) -> None:
        """Every change of state is a log line: a service's log says when it warmed up,
        stopped or restarted."""
        if value != self._state:
            log.info("engine %s -> %s", self._state, value)
        self._state = value

    def _spawn(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="alpha12-engine")
        self.state = EngineState.RUNNING
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
                self.restarts += 1
                self.state = EngineState.RESTARTING
                message = f"the engine thread died ({self._death}); restarting it"
                self._event("error", message)
                self._alert(AlertKind.ENGINE_DEAD, "alpha12 engine died", message)
                if not self._stop.is_set():  # the alert can take seconds; a stop may have come
                    self._spawn()
            elif self._stalled() and self._stall_reported != self.last_heartbeat:
                self._stall_reported = self.last_heartbeat  # once per stall, not every tick
                age = (WallClock().now() - self.last_heartbeat).total_seconds()
                message = f"the engine's heartbeat is {age:.0f} s old (a tick is stuck)"
                log.warning(message)
                self._alert(AlertKind.ENGINE_STALLED, "alpha12 engine stalled", message)

    def _stalled(self) -> bool:
        return _stale(self.state, self.last_heartbeat, self._stall_seconds())

    def _run(self) -> None:
        try:
            self._heartbeat()  # a first tick that hangs must still show as a stall
            self.warm_start_if_new()
            while not self._stop.is_set():
                started = time.monotonic()
                self.tick()
                self._stop.wait(max(0.0, self.tick_seconds - (time.monotonic() - started)))
        except BaseException as error:  # remembered for the supervisor's event, then let die
            self._death = f"{type(error).__name__}: {error}"
            raise

    # -- one tick ------------------------------------------------------------------------

    def tick(self) -> None:
        """Collect and analyse the pairs whose bar closed, then monitor and jobs if due."""
        now = self.clock.now()
        due = [pair for pair in self.context.pairs() if self._due(pair, now)]
        if due:
            self.cycle(due, now)
        if self._trainer_idle():
            if self._next_monitor is None:
                self._next_monitor = now + self._monitor_period()
            # A user's forced retrain first: a monitor run longer than the monitor period would
            # otherwise be due again every time the trainer is free, and starve the queue.
            if (job := self._claim_job()) is not None:
                self._training = self._trainer.submit(self._train, self._run_job, job)
            elif now >= self._next_monitor:
                self._next_monitor = now + self._monitor_period()
                self._training = self._trainer.submit(self._train, self._monitor_run)
        self.context.remember_clock()
        self._heartbeat()

    def cycle(self, due: list[tuple[str, str]], now: pd.Timestamp, timings=None) -> None:
        """Collect the due pairs, then analyse them together (cycle.analyze_pairs);
        `timings` (a Counter, optional) collects seconds per stage."""
        with cycle.stage(timings, "collect"):
            collected = self._collect(due, now)
        try:
            results = cycle.analyze_pairs(
                self.store, self.registry, self.context.settings, collected, timings
            )
        except Exception as error:  # the store failed the whole batch: every pair retries
            for pair in collected:
                self._failed(pair, error)
            return
        for result in results:
            pair = (result.asset, result.interval)
            if result.error is not None:
                self._failed(pair, result.error)
                continue
            last, calendar = result.newest_bar, self.context.settings.calendar(result.asset)
            # Due when the next bar closes on the asset's calendar: never while its market is
            # closed (a stock's Friday close is next collected at Monday's first bar close).
            self._next_due[pair] = (
                calendar.next_bar_close(last, result.interval)
                if last is not None
                else now + interval_delta(result.interval)
            )

    def _collect(self, due: list[tuple[str, str]], now: pd.Timestamp) -> list[tuple[str, str]]:
        """Fetch the due pairs' new bars (imported assets have no source); the pairs to
        analyse. Source trouble is the collector's event; a store failure fails the batch."""
        settings = self.context.settings
        sourced = [pair for pair in due if pair[0] in settings.assets]
        try:
            collect_pairs(
                self.store,
                self.context.source,
                sourced,
                now,
                self.backoff,
                timeout_s=settings.source_timeout_s,
                calendar_of=settings.calendar,
            )
        except Exception as error:
            for pair in sourced:
                self._failed(pair, error)
            return [pair for pair in due if pair not in sourced]
        self._alert_source_down(now)
        return due

    def _alert_source_down(self, now: pd.Timestamp) -> None:
        """Alert (rate-limited per pair) for each pair whose source has failed too long."""
        limit = pd.Timedelta(minutes=self.context.settings.alerts.source_down_minutes)
        for asset, interval in self.backoff.down_for(now, limit):
            since = self.backoff.failing_since[(asset, interval)]
            self._alert(
                AlertKind.SOURCE_DOWN,
                f"alpha12: no bars for {asset} {interval}",
                f"{self.context.source.name} has failed for {asset} {interval} since "
                f"{since:%Y-%m-%d %H:%M} UTC.",
                asset,
                interval,
            )

    def _due(self, pair: tuple[str, str], now: pd.Timestamp) -> bool:
        due = self._next_due.get(pair)
        return due is None or now >= due

    def _failed(self, pair: tuple[str, str], error: Exception) -> None:
        """A pair's failure is an event and the loop goes on; the pair retries a bar later."""
        asset, interval = pair
        message = f"{type(error).__name__}: {error}"
        # A failure that repeats every tick is logged once, then every REPEAT_LOG_EVERY-th
        # time with its count, so it cannot flood the events table.
        key = (asset, interval, message)
        seen = self._failures[key] = self._failures.pop(key, 0) + 1  # newest last
        if len(self._failures) > MAX_FAILURE_KEYS:  # messages vary: forget the oldest
            self._failures.pop(next(iter(self._failures)))
        if seen == 1 or seen % REPEAT_LOG_EVERY == 0:
            suffix = f" (seen {seen} times)" if seen > 1 else ""
            detail = "".join(traceback.format_exception(error, limit=3))
            self._event("error", message + suffix, asset, interval, detail=detail)
        self._next_due[pair] = self.clock.now() + interval_delta(interval)

    def _monitor_period(self) -> pd.Timedelta:
        return pd.Timedelta(minutes=self.context.settings.monitor_period_minutes)

    def _trainer_idle(self) -> bool:
        return self._training is None or self._training.done()

    # -- monitor and jobs (trainer thread) -------------------------------------------------

    def _train(self, work, *args) -> None:
        """Run a monitor run or job on the trainer thread, then hand the memory its training
        frames and models held back to the system (alpha12.heap), with DuckDB's, when due."""
        try:
            work(*args)
        finally:
            self._reopen_store_if_due()
            self._release_heap_if_due()

    def _release_heap_if_due(self) -> None:
        if time.monotonic() - self._heap_released >= HEAP_RELEASE_SECONDS:
            self._release_heap()

    def _release_heap(self) -> None:
        heap.release()
        self._heap_released = time.monotonic()

    def _reopen_store_if_due(self) -> None:
        if time.monotonic() - self._store_reopened < STORE_REOPEN_SECONDS:
            return
        started = time.monotonic()
        try:
            reopened = self.store.reopen()
        except Exception as error:  # the next use of the store tries to open it again
            self._store_reopened = started
            self._event("error", f"reopening the store failed: {type(error).__name__}: {error}")
            return
        if reopened:  # else a long read was in flight: try again after the next training work
            self._store_reopened = time.monotonic()
            log.info(
                "store reopened in %.2f s (DuckDB's memory handed back)",
                self._store_reopened - started,
            )

    def _monitor_run(self) -> None:
        try:
            report = self.monitor.monitor_all_timeframes(
                self.context.universe(), self.context.settings.intervals
            )
        except Exception as error:
            self._event("error", f"monitor run failed: {type(error).__name__}: {error}")
            return
        for key, row in report.items():
            asset, interval = key.rsplit("_", 1)
            if row["status"] in (PairStatus.DEGRADED, PairStatus.COOLDOWN):
                reasons = "; ".join(row["reasons"])
                self._alert(
                    AlertKind.DEGRADED,
                    f"alpha12: {asset} {interval} degraded",
                    reasons,
                    asset,
                    interval,
                )
            decisions = [(row["shadow_action"], row["shadow_message"])]
            decisions.append((row["action"], row["message"]))
            for action, message in decisions:
                if action in (*ATTEMPTS, *ACTION_ALERTS):
                    self._decided(asset, interval, action, f"{action}: {message}")

    def _decided(self, asset: str, interval: str, action: Action, message: str) -> None:
        """A recalibration decision's event and alert (the monitor's or a forced retrain's)."""
        self._event("error" if action == Action.FAILED else "info", message, asset, interval)
        if action in ACTION_ALERTS:
            title = f"alpha12: {asset} {interval} {action}"
            self._alert(ACTION_ALERTS[action], title, message, asset, interval)

    def request_retrain(self, asset: str, interval: str, requested_by: str = "ui") -> int:
        """Queue a forced retrain; a pair already queued or running gets that job's id."""
        return self.store.queue_job("retrain", asset, interval, self.clock.now(), requested_by)

    def _claim_job(self) -> dict | None:
        return self.store.claim_job(self.clock.now())

    def _run_job(self, job: dict) -> None:
        if job["kind"] == JobKind.LAB:
            self._run_lab_job(job)
            return

        def progress(fraction: float, message: str) -> None:
            self._update_job(job["id"], JobStatus.RUNNING, fraction, message)

        asset, interval = job["asset"], job["interval"]
        try:
            outcome = self.monitor.retrain(asset, interval, True, "forced", progress)[1]
        except Exception as error:  # the pair could not even be assessed: nothing to record
            outcome = Outcome(Action.FAILED, f"{type(error).__name__}: {error}")
        status = JobStatus.FAILED if outcome.action == Action.FAILED else JobStatus.DONE
        self._update_job(job["id"], status, 1.0, f"{outcome.action}: {outcome.message}".strip())
        message = f"forced retrain {outcome.action}: {outcome.message}"
        if outcome.action in ATTEMPTS:
            self._decided(asset, interval, outcome.action, message)
        else:  # skipped: no training happened, nothing to alert
            self._event("info", message, asset, interval)

    def _run_lab_job(self, job: dict) -> None:
        """A kept lab run, on this trainer thread like any job: its progress goes to the job
        row, and it stops between parts when cancelled or when the engine stops. Finished
        parts are kept either way; a run stopped by the engine goes back to the queue, so the
        next start resumes it."""
        run_id = job["run_id"]

        def progress(fraction: float, message: str) -> None:
            self._update_job(job["id"], JobStatus.RUNNING, fraction, message)

        def should_stop() -> bool:
            return self._stop.is_set() or self.store.lab_cancel_requested(run_id)

        try:
            kept = runs.execute(
                self.store, self.context.settings, run_id, self.clock.now, progress, should_stop
            )
        except Exception as error:
            message = f"lab run {run_id} failed: {type(error).__name__}: {error}"
            self._update_job(job["id"], JobStatus.FAILED, 1.0, message)
            self._event("error", message, detail=traceback.format_exc(limit=5))
            return
        status, message = kept.record["status"], kept.record["message"]
        if kept.lab.stopped and not self.store.lab_cancel_requested(run_id):
            status, message = JobStatus.QUEUED, "stopped with the engine; resumes at its start"
            self.store.set_lab_status(run_id, status, message)
        self._update_job(job["id"], status, 1.0 if status != JobStatus.QUEUED else 0.0, message)
        self._event("info", f"lab run {run_id} {status}: {message}")

    def _requeue_interrupted_jobs(self) -> None:
        """Jobs left running by a crash go back to the queue instead of hanging forever."""
        self.store.requeue_running_jobs()

    def _update_job(self, job_id: int, status: JobStatus, progress: float, message: str) -> None:
        ended = (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)
        finished = self.clock.now() if status in ended else None
        self.store.update_job(job_id, status, progress, message, finished)

    # -- warm start, heartbeat, events ---------------------------------------------------

    def warm_start_if_new(self) -> None:
        """Walk history for the pairs never warm-started (all of them on a new store)."""
        self.context.collect_once(self.backoff)
        pairs = pending_pairs(self.store, self.context.pairs())
        if not pairs or self._stop.is_set():
            return
        pause, resume = getattr(self.clock, "pause", None), getattr(self.clock, "resume", None)
        if pause:
            pause()  # no market time passes unseen while history is being walked
        try:
            self.state = EngineState.WARMING_UP
            summary = warm_start(self.monitor, pairs, self._warm_progress, self._stop.is_set)
            self._event("info", "warm start: " + "; ".join(f"{k} {v}" for k, v in summary.items()))
        except Exception as error:
            self._event(
                "error",
                f"warm start failed: {type(error).__name__}: {error}",
                detail=traceback.format_exc(limit=5),
            )
        finally:
            self._release_heap()
            if resume:
                resume()
            self.state = EngineState.RUNNING

    def _warm_progress(self, fraction: float, message: str) -> None:
        self.store.set_state(WARM_START_PROGRESS_KEY, {"progress": fraction, "message": message})
        self._heartbeat()

    def status(self) -> dict:
        """State, heartbeat and its age in real time, restarts, and when the next monitor run
        and collection are due. In the process that runs the engine, its own; elsewhere (the
        CLI) the last heartbeat the running process wrote. A running engine whose heartbeat is
        older than STALL_TICKS ticks is "stalled"."""
        beat = self.store.get_state(ENGINE_STATE_KEY) or {}
        heartbeat = self.last_heartbeat or _timestamp(beat.get("heartbeat_wall"))
        age = (WallClock().now() - heartbeat).total_seconds() if heartbeat else None
        state = self.state if self.running else EngineState(beat.get("state", self.state))
        if _stale(state, heartbeat, self._stall_seconds()):
            state = EngineState.STALLED
        running = self.running
        return {
            "state": state,
            "running": running,
            "restarts": self.restarts,
            "heartbeat": heartbeat,
            "heartbeat_age_s": age,
            "next_monitor": _timestamp(beat.get("next_monitor")) if running else None,
            "next_collection": _timestamp(beat.get("next_collection")) if running else None,
        }

    def _stall_seconds(self) -> float:
        return STALL_TICKS * self.tick_seconds

    def _heartbeat(self) -> None:
        self.last_heartbeat = WallClock().now()  # real time: a paused replay is still alive
        self.store.set_state(
            ENGINE_STATE_KEY,
            {
                "state": self.state,
                "heartbeat_clock": self.clock.now().isoformat(),
                "heartbeat_wall": self.last_heartbeat.isoformat(),
                "next_monitor": self._next_monitor.isoformat() if self._next_monitor else None,
                "next_collection": min(self._next_due.values()).isoformat()
                if self._next_due
                else None,
                "restarts": self.restarts,
            },
        )

    def _event(
        self,
        level: str,
        message: str,
        asset: str | None = None,
        interval: str | None = None,
        detail: str | None = None,
    ) -> None:
        try:
            self.store.log_event(self.clock.now(), level, "engine", message, asset, interval)
        except Exception:  # the store itself failing must not kill the loop; print instead
            print(f"alpha12 engine: {message}\n{detail or ''}", flush=True)

    def _alert(
        self,
        kind: AlertKind,
        title: str,
        body: str,
        asset: str | None = None,
        interval: str | None = None,
    ) -> None:
        """Hand an alert to the process's alerter: it only queues (its own thread sends), and
        its failing must never stop the engine."""
        try:
            self.context.alerter.notify(kind, title, body, asset, interval, self.clock.now())
        except Exception:
            log.exception("could not queue the %s alert", kind)


def _stale(state: EngineState, heartbeat: pd.Timestamp | None, limit_s: float) -> bool:
    """Running (not warming up, whose heartbeat is per pair) with a heartbeat older than
    `limit_s` seconds of real time: the one rule for "stalled"."""
    if state != EngineState.RUNNING or heartbeat is None:
        return False
    return (WallClock().now() - heartbeat).total_seconds() > limit_s


def _timestamp(value: str | None) -> pd.Timestamp | None:
    return utc(value) if value else None


def _join(thread: threading.Thread | None, timeout: float) -> None:
    if thread and thread.is_alive() and thread is not threading.current_thread():
        thread.join(timeout)
