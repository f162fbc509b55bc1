"""Alerts to chat, mail or webhooks through `apprise`, without ever slowing the caller.

`Alerter.notify` only decides (kind enabled? repeat within the rate limit?) and enqueues; one
daemon thread sends, each send bounded by a timeout, so a slow or dead endpoint costs the
engine nothing. Each delivery and each failure is reported through `on_result(level, message)`
with the URLs masked. apprise is optional: without it alerts are off and say why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pandas as pd

from alpha12 import logs
from alpha12.clock import WallClock

APPRISE_MISSING = "alerts need the optional package apprise (pip install apprise)"
DEFAULT_SEND_TIMEOUT_S = 10.0  # connect and read timeout of one send to one URL
DEFAULT_QUEUE_SIZE = 100
Result = Callable[[str, str], None]  # on_result(level, message), level as in the events table


class AlertKind(StrEnum):
    DEGRADED = "degraded"
    RECALIBRATED = "recalibrated"
    REJECTED = "rejected"
    FAILED = "failed"
    ENGINE_STALLED = "engine_stalled"
    ENGINE_DEAD = "engine_dead"
    SOURCE_DOWN = "source_down"
    TEST = "test"  # only send_test uses it; not a kind a user subscribes to


SUBSCRIBABLE = tuple(kind.value for kind in AlertKind if kind is not AlertKind.TEST)


def _apprise() -> Any:
    """The apprise module, or None when it is not installed (alerts are optional)."""
    try:
        import apprise
    except ImportError:
        return None
    return apprise


def url_problem(url: str) -> str | None:
    """Why apprise cannot use `url` (None when it can), in words that hide the URL's secrets."""
    apprise = _apprise()
    if apprise is None:
        return APPRISE_MISSING
    if apprise.Apprise.instantiate(url) is None:
        return f"{logs.mask_url(url)} is not a URL apprise understands (see its wiki for forms)"
    return None


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go (apprise URLs), which kinds are sent, and how often at most."""

    urls: tuple[str, ...] = ()  # apprise URLs, e.g. "tgram://TOKEN/CHAT"; secrets: never shown
    kinds: tuple[str, ...] = SUBSCRIBABLE
    rate_limit_minutes: float = 30.0  # one alert per (asset, interval, kind) in this window
    source_down_minutes: float = 60.0  # a source failing this long raises source_down

    def problems(self, path: str) -> list[str]:
        found = [
            f"{path}.kinds: unknown kind {kind!r} (valid: {', '.join(SUBSCRIBABLE)})"
            for kind in self.kinds
            if kind not in SUBSCRIBABLE
        ]
        found += [f"{path}.urls: {problem}" for url in self.urls if (problem := url_problem(url))]
        for name in ("rate_limit_minutes", "source_down_minutes"):
            if getattr(self, name) < 0:
                found.append(f"{path}.{name}: must be >= 0")
        return found


@dataclass
class _Alert:
    kind: str
    title: str
    body: str
    label: str  # "degraded BTC 1h", for the reports
    done: Future | None = None


@dataclass
class _Target:
    plugin: Any
    shown: str  # the masked URL


def _default_result(level: str, message: str) -> None:
    logs.log_event(level, "alerts", message)


@dataclass
class _Counters:
    queued: int = 0
    sent: int = 0
    failed: int = 0
    suppressed: int = 0  # repeats inside the rate limit
    dropped: int = 0  # oldest alerts dropped because the queue was full


class Alerter:
    """Rate-limited, queued alerts to the URLs of `settings` (an `AlertSettings`)."""

    def __init__(
        self,
        settings: AlertSettings,
        on_result: Result | None = None,
        send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ):
        self.settings = settings
        self.on_result = on_result or _default_result
        self.counters = _Counters()
        self._last: dict[tuple, pd.Timestamp] = {}  # when each (asset, interval, kind) last went
        self._targets = _targets(settings.urls, send_timeout_s)
        self._queue: deque[_Alert] = deque()
        self._queue_size = queue_size
        self._reported_drops = 0
        self._lock = threading.Condition()
        self._closing = False
        self._worker: threading.Thread | None = None
        if settings.urls and _apprise() is None:
            self._report("warning", f"alerts are off: {APPRISE_MISSING}")

    @property
    def enabled(self) -> bool:
        return bool(self._targets)

    def notify(
        self,
        kind: str,
        title: str,
        body: str,
        asset: str | None = None,
        interval: str | None = None,
        now: pd.Timestamp | None = None,
    ) -> bool:
        """Queue an alert; False when it is not sent: alerts off, kind not subscribed, or the
        same (asset, interval, kind) alerted less than rate_limit_minutes ago in `now`'s clock."""
        kind = AlertKind(kind).value
        now = WallClock().now() if now is None else now
        key = (asset, interval, kind)
        window = pd.Timedelta(minutes=self.settings.rate_limit_minutes)
        with self._lock:
            if not self.enabled or kind not in self.settings.kinds or self._closing:
                return False
            last = self._last.get(key)
            if last is not None and now - last < window:
                self.counters.suppressed += 1
                return False
            self._last[key] = now
        label = " ".join(part for part in (kind, asset, interval) if part)
        return self._enqueue(_Alert(kind, title, body, label))

    def send_test(self) -> Future:
        """Queue a test alert, whatever the kinds and rate limit; the future answers True when
        every URL took it (the failures are reported through on_result as usual)."""
        done: Future = Future()
        alert = _Alert(
            AlertKind.TEST, "alpha12 test alert", "Alerts from alpha12 reach you.", "test"
        )
        alert.done = done
        if not self._enqueue(alert):
            done.set_result(False)
        return done

    def test(self, timeout: float = 30.0) -> tuple[bool, str]:
        """Send a test alert and wait for it: whether it reached every URL, and in words."""
        if not self.enabled:
            return False, "not sent: alerts are off (no [alerts] urls, or apprise missing)"
        try:
            delivered = self.send_test().result(timeout)
        except TimeoutError:
            return False, f"not sent within {timeout:g} s; the events will say what came of it"
        if delivered:
            return True, "it reached every alert URL"
        return False, "it did not reach every URL; the events above say which and why"

    def close(self, timeout: float = 10.0) -> bool:
        """Stop taking alerts and send the queued ones; True when all went out within `timeout`."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        if self._worker is not None:
            self._worker.join(timeout)
            return not self._worker.is_alive()
        return True

    def _enqueue(self, alert: _Alert) -> bool:
        with self._lock:
            if not self.enabled or self._closing:
                return False
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self.counters.dropped += 1
            self._queue.append(alert)
            self.counters.queued += 1
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="alpha12-alerts", daemon=True
                )
                self._worker.start()
            self._lock.notify()
        return True

    def _run(self) -> None:
        while (alert := self._next()) is not None:
            self._report_drops()
            delivered = all([self._send(alert, target) for target in self._targets])
            if alert.done is not None:
                alert.done.set_result(delivered)

    def _next(self) -> _Alert | None:
        with self._lock:
            while not self._queue and not self._closing:
                self._lock.wait()
            return self._queue.popleft() if self._queue else None

    def _report_drops(self) -> None:
        dropped = self.counters.dropped
        if dropped > self._reported_drops:
            self._reported_drops = dropped
            self._report(
                "warning",
                f"alert queue full ({self._queue_size}): dropped the oldest alerts, "
                f"{dropped} so far; the endpoints are slower than the alerts come",
            )

    def _send(self, alert: _Alert, target: _Target) -> bool:
        started = time.monotonic()
        try:
            ok = bool(target.plugin.notify(body=alert.body, title=alert.title))
            reason = "refused, timed out or answered with an error"
        except Exception as error:  # a plugin bug must not end the worker
            ok, reason = False, f"{type(error).__name__}: {error}"
        seconds = time.monotonic() - started
        if ok:
            self.counters.sent += 1
            self._report("info", f"alert {alert.label} sent to {target.shown} ({seconds:.1f} s)")
        else:
            self.counters.failed += 1
            self._report(
                "error",
                f"alert {alert.label} not delivered to {target.shown}: {reason} "
                f"(after {seconds:.1f} s)",
            )
        return ok

    def _report(self, level: str, message: str) -> None:
        try:
            self.on_result(level, logs.redact(message))
        except Exception:  # the callback's failure must not end the worker either
            logging.getLogger(__name__).exception("alert result callback failed")


def _targets(urls: tuple[str, ...], timeout_s: float) -> list[_Target]:
    """One apprise plugin per URL, each with the send timeout (unless the URL sets cto/rto),
    and every URL's text registered as a secret for the log."""
    apprise = _apprise() if urls else None
    if apprise is None:
        return []
    targets = []
    for url in urls:
        logs.add_url_secrets(url)
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            continue  # settings validation has named it already
        query = url.partition("?")[2]
        if "cto=" not in query:
            plugin.socket_connect_timeout = timeout_s
        if "rto=" not in query:
            plugin.socket_read_timeout = timeout_s
        targets.append(_Target(plugin, logs.mask_url(url)))
    return targets
