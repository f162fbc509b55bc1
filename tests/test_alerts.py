"""Alerts through apprise against real HTTP receivers on 127.0.0.1: every kind arrives with its
title and body; repeats inside the rate limit are dropped, later ones pass; a hanging endpoint
never delays notify() and is abandoned after the send timeout; a refused port is reported, not
raised; a full queue drops the oldest with a warning; settings are validated."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from alpha12 import alerts
from alpha12.alerts import SUBSCRIBABLE, Alerter, AlertKind, AlertSettings
from alpha12.config import SettingsError, load_settings

NOW = pd.Timestamp("2025-01-11 10:00", tz="UTC")
SEND_TIMEOUT_S = 0.5


@dataclass
class Receiver:
    """An HTTP endpoint that records each JSON body; the first `hang_first` requests sleep."""

    hang_s: float = 0.0
    hang_first: int = 0
    received: list[dict] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    port: int = 0

    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)

    def wait_for_title(self, title: str, timeout: float = 30.0) -> list[dict]:
        """The alerts titled `title`, once one has arrived (or [] after `timeout`)."""
        with self.arrived:
            self.arrived.wait_for(lambda: any(r["title"] == title for r in self.received), timeout)
            return [r for r in self.received if r["title"] == title]


def serve(receiver: Receiver) -> Iterator[Receiver]:
    requests = iter(range(sys.maxsize))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if next(requests) < receiver.hang_first:
                time.sleep(receiver.hang_s)
                return  # the client gave up long ago
            with receiver.arrived:
                receiver.received.append(body)
                receiver.arrived.notify_all()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve(Receiver())


@pytest.fixture
def hanging() -> Iterator[Receiver]:
    yield from serve(Receiver(hang_s=3.0, hang_first=1))


@dataclass
class Results:
    """on_result's calls, waitable."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, level: str, message: str) -> None:
        with self.changed:
            self.calls.append((level, message))
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[str, str]]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.calls) >= count, timeout)
            return list(self.calls)


@pytest.fixture
def results() -> Results:
    return Results()


def alerter(urls, results, **options) -> Alerter:
    settings = AlertSettings(urls=tuple(urls), **options)
    return Alerter(settings, on_result=results, send_timeout_s=SEND_TIMEOUT_S)


def timed(call) -> tuple[object, float]:
    started = time.perf_counter()
    answer = call()
    return answer, time.perf_counter() - started


def test_every_kind_arrives_with_its_title_and_body(receiver, results):
    sender = alerter([receiver.url()], results)
    for kind in SUBSCRIBABLE:
        assert sender.notify(kind, f"title {kind}", f"body {kind}", "BTC", "1h", now=NOW)
    got = receiver.wait_for(len(SUBSCRIBABLE))
    assert sender.close(5)
    assert [(g["title"], g["message"]) for g in got] == [
        (f"title {kind}", f"body {kind}") for kind in SUBSCRIBABLE
    ]
    assert [level for level, _ in results.calls] == ["info"] * len(SUBSCRIBABLE)
    assert results.calls[0][1].startswith(
        f"alert degraded BTC 1h sent to json://127.0.0.1:{receiver.port}/"
    )
    assert sender.counters.sent == len(SUBSCRIBABLE)


def test_repeats_within_the_rate_limit_are_dropped(receiver, results):
    sender = alerter([receiver.url()], results, rate_limit_minutes=30)
    sent = [
        sender.notify("degraded", "1", "first", "BTC", "1h", now=NOW),
        sender.notify("degraded", "2", "repeat", "BTC", "1h", now=NOW + pd.Timedelta(minutes=29)),
        sender.notify("degraded", "3", "other pair", "ETH", "1h", now=NOW),
        sender.notify("failed", "4", "other kind", "BTC", "1h", now=NOW),
        sender.notify("degraded", "5", "after", "BTC", "1h", now=NOW + pd.Timedelta(minutes=30)),
    ]
    assert sent == [True, False, True, True, True]
    assert sender.close(5)
    assert [g["message"] for g in receiver.received] == [
        "first",
        "other pair",
        "other kind",
        "after",
    ]
    assert sender.counters.suppressed == 1


def test_kinds_not_subscribed_are_not_sent(receiver, results):
    sender = alerter([receiver.url()], results, kinds=("engine_dead",))
    assert not sender.notify("degraded", "t", "b", now=NOW)
    assert sender.notify(AlertKind.ENGINE_DEAD, "t", "dead", now=NOW)
    assert sender.close(5)
    assert [g["message"] for g in receiver.received] == ["dead"]


def test_a_hanging_endpoint_never_delays_the_caller(hanging, results):
    sender = alerter([hanging.url()], results)
    for kind in ("degraded", "failed"):
        queued, seconds = timed(lambda k=kind: sender.notify(k, k, k, "BTC", "5m", now=NOW))
        assert queued and seconds < 0.05
    started = time.perf_counter()
    got = hanging.wait_for(1)
    waited = time.perf_counter() - started
    assert [g["message"] for g in got] == ["failed"]  # the second went out after the first...
    assert SEND_TIMEOUT_S * 0.8 < waited < hanging.hang_s  # ...was abandoned at the timeout
    level, message = results.wait_for(2)[0]
    assert level == "error" and message.startswith("alert degraded BTC 5m not delivered")
    assert sender.close(5)


def test_a_refused_port_is_reported_not_raised(results):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = alerter([f"json://127.0.0.1:{port}/"], results)
    assert sender.notify("engine_stalled", "stalled", "no tick for 10 minutes", now=NOW)
    test = sender.send_test()
    assert test.result(timeout=10) is False
    assert sender.close(5)
    assert [level for level, _ in results.calls] == ["error", "error"]
    assert f"json://127.0.0.1:{port}/" in results.calls[1][1]
    assert sender.counters.failed == 2


def test_send_test_reports_delivery(receiver, results):
    sender = alerter([receiver.url()], results, kinds=())
    assert sender.send_test().result(timeout=10) is True
    assert receiver.received[0]["title"] == "alpha12 test alert"
    assert sender.close(5)


def test_a_full_queue_drops_the_oldest_with_a_warning(hanging, results):
    settings = AlertSettings(urls=(hanging.url(),), rate_limit_minutes=0)
    sender = Alerter(settings, on_result=results, send_timeout_s=SEND_TIMEOUT_S, queue_size=2)
    assert sender.notify("degraded", "t", "hangs", now=NOW)
    time.sleep(0.2)  # the worker took it and waits on the hanging endpoint
    for body in ("dropped", "kept 1", "kept 2"):
        assert sender.notify("degraded", "t", body, now=NOW)
    assert sender.close(10)
    assert [g["message"] for g in hanging.received] == ["kept 1", "kept 2"]
    assert sender.counters.dropped == 1
    warnings = [m for level, m in results.calls if level == "warning"]
    assert len(warnings) == 1 and "dropped the oldest alerts, 1 so far" in warnings[0]


def test_no_urls_means_alerts_off(results):
    sender = alerter([], results)
    assert not sender.enabled and not sender.notify("degraded", "t", "b", now=NOW)
    assert sender.send_test().result(timeout=1) is False
    assert sender.close(1) and results.calls == []


def test_without_apprise_alerts_say_why(monkeypatch, results):
    monkeypatch.setitem(sys.modules, "apprise", None)  # import apprise now raises ImportError
    assert alerts.url_problem("json://127.0.0.1:1/") == alerts.APPRISE_MISSING
    sender = alerter(["json://127.0.0.1:1/"], results)
    assert not sender.enabled and not sender.notify("degraded", "t", "b", now=NOW)
    assert results.calls == [("warning", f"alerts are off: {alerts.APPRISE_MISSING}")]


def test_alert_settings_are_validated(tmp_path):
    config = tmp_path / "alpha12.toml"
    config.write_text(
        "[alerts]\n"
        'urls = ["json://127.0.0.1:9/", "nosuch://sekr3t-t0ken/x"]\n'
        'kinds = ["degraded", "exploded"]\n'
        "rate_limit_minutes = -1\n"
    )
    with pytest.raises(SettingsError) as raised:
        load_settings(config, env={})
    assert raised.value.problems == [
        "alerts.kinds: unknown kind 'exploded' (valid: " + ", ".join(SUBSCRIBABLE) + ")",
        "alerts.urls: nosuch://*** is not a URL apprise understands (see its wiki for forms)",
        "alerts.rate_limit_minutes: must be >= 0",
    ]
    assert "sekr3t" not in str(raised.value)
    env = {"ALPHA12_ALERTS__URLS": "json://127.0.0.1:9/", "ALPHA12_ALERTS__KINDS": "engine_dead"}
    config.write_text("")
    settings = load_settings(config, env=env)
    assert settings.alerts == AlertSettings(urls=("json://127.0.0.1:9/",), kinds=("engine_dead",))
