"""Terminal output: durations and percents as people read them, '—' for unknowns, coloured
statuses on a terminal, and plain text without ANSI codes when stdout is not one."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest

from alpha12 import formatting, terminal
from alpha12.formatting import MISSING
from alpha12.vocabulary import PairStatus

ANSI = "\x1b["
FRAME = pd.DataFrame(
    {
        "asset": ["BTC", "ETH", "SOL"],
        "interval": ["1h", "5m", "1d"],
        "status": ["healthy", "degraded", "no_model"],
        "win_rate": [0.5234, float("nan"), None],
    }
)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def colour_terminal(monkeypatch) -> FakeTerminal:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM_PROGRAM", raising=False)
    return FakeTerminal()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45.9, "45s"),
        (125, "2m 05s"),
        (3599, "59m 59s"),
        (3600, "1h 00m"),
        (33 * 3600 + 25 * 60 + 59, "33h 25m"),
        (47 * 3600 + 59 * 60, "47h 59m"),
        (48 * 3600, "2d 0h"),
        (3 * 86400 + 4 * 3600 + 59 * 60, "3d 4h"),
        (None, MISSING),
        (math.nan, MISSING),
        (math.inf, MISSING),
        (-5, MISSING),
    ],
)
def test_duration(seconds, text):
    assert formatting.duration(seconds) == text


def test_percent():
    assert formatting.percent(0.5234) == "52.3%"
    assert formatting.percent(1) == "100.0%"
    assert formatting.percent(0.5, digits=0) == "50%"
    assert formatting.percent(None) == formatting.percent(math.nan) == MISSING


def test_every_monitor_status_has_a_colour():
    for status in PairStatus:
        assert status in terminal.STATUS_STYLES


def test_plain_output_off_a_terminal_has_no_ansi_codes():
    out = io.StringIO()
    terminal.show(FRAME, out, title="pairs")
    text = out.getvalue()
    assert ANSI not in text
    lines = text.splitlines()
    assert lines[0] == "pairs"
    assert lines[1].split() == ["asset", "interval", "status", "win_rate"]
    assert lines[2].split() == ["BTC", "1h", "healthy", "0.5234"]
    assert lines[3].split() == ["ETH", "5m", "degraded", MISSING]
    assert lines[4].split() == ["SOL", "1d", "no_model", MISSING]


def test_on_a_terminal_statuses_are_coloured(colour_terminal):
    terminal.show(FRAME, colour_terminal)
    text = colour_terminal.getvalue()
    assert ANSI in text
    assert "\x1b[32mhealthy" in text  # green
    assert "\x1b[31mdegraded" in text  # red, as on the pages


def test_live_table_off_a_terminal_prints_each_change_once():
    out = io.StringIO()
    changed = FRAME.assign(status=["healthy", "healthy", "no_model"])
    with terminal.live_table(out) as update:
        update(FRAME)
        update(FRAME.copy())  # the same content: not printed again
        update(changed)
    text = out.getvalue()
    assert ANSI not in text
    assert text.count("asset") == 2 and "degraded" in text


def test_live_table_on_a_terminal_redraws(colour_terminal):
    with terminal.live_table(colour_terminal) as update:
        update(FRAME)
        update(FRAME.assign(status="cooldown"))
    text = colour_terminal.getvalue()
    assert "cooldown" in text and "\x1b[38;5;208mcooldown" in text  # dark orange
    assert "\x1b[2K" in text or "\x1b[1A" in text  # cursor moves: drawn over in place


def test_progress_off_a_terminal_prints_tenths():
    out = io.StringIO()
    with terminal.progress("backfill BTC 5m", out) as report:
        for n in range(101):
            report(n / 100, f"{n * 100} bars")
    lines = out.getvalue().splitlines()
    assert len(lines) == 11 and ANSI not in out.getvalue()
    assert lines[0] == "backfill BTC 5m: 0% 0 bars"
    assert lines[-1] == "backfill BTC 5m: 100% 10000 bars"


def test_progress_on_a_terminal_draws_a_bar(colour_terminal):
    with terminal.progress("backfill", colour_terminal) as report:
        report(0.5, "halfway")
        report(1.0, "done")
    text = colour_terminal.getvalue()
    assert ANSI in text and "100%" in text and "done" in text
