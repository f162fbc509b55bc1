"""Clocks: replay speed, pause and resume on an injected monotonic time; manual clocks; and no
module outside clock.py reads the wall time itself."""

import re
from pathlib import Path

import pandas as pd
import pytest

from alpha12.clock import ManualClock, ReplayClock, WallClock, utc

START = pd.Timestamp("2025-03-01 12:00", tz="UTC")
PACKAGE = Path(__file__).resolve().parents[1] / "alpha12"


class FakeMonotonic:
    """A monotonic() stand-in the test moves by hand."""

    def __init__(self):
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


@pytest.fixture
def real() -> FakeMonotonic:
    return FakeMonotonic()


def test_replay_runs_speed_market_seconds_per_real_second(real):
    clock = ReplayClock(START, speed=600, monotonic=real)
    assert clock.now() == START
    real.seconds += 3
    assert clock.now() == START + pd.Timedelta(minutes=30)


def test_pause_freezes_and_resume_continues_without_skipping(real):
    clock = ReplayClock(START, speed=60, monotonic=real)
    real.seconds += 10
    clock.pause()
    assert clock.paused
    real.seconds += 1000  # a long pause
    assert clock.now() == START + pd.Timedelta(minutes=10)
    clock.resume()
    assert not clock.paused
    assert clock.now() == START + pd.Timedelta(minutes=10)
    real.seconds += 1
    assert clock.now() == START + pd.Timedelta(minutes=11)


def test_set_speed_keeps_the_time_reached(real):
    clock = ReplayClock(START, speed=60, monotonic=real)
    real.seconds += 10
    clock.set_speed(3600)
    assert clock.speed == 3600
    assert clock.now() == START + pd.Timedelta(minutes=10)
    real.seconds += 2
    assert clock.now() == START + pd.Timedelta(minutes=10) + pd.Timedelta(hours=2)


def test_set_speed_while_paused_stays_paused(real):
    clock = ReplayClock(START, speed=60, monotonic=real)
    clock.pause()
    clock.set_speed(120)
    real.seconds += 50
    assert clock.now() == START
    clock.resume()
    real.seconds += 1
    assert clock.now() == START + pd.Timedelta(minutes=2)


def test_pause_and_resume_twice_never_move_time_backwards(real):
    clock = ReplayClock(START, speed=60, monotonic=real)
    real.seconds += 10
    clock.resume()  # resuming a running clock must not rewind it
    assert clock.now() == START + pd.Timedelta(minutes=10)
    clock.pause()
    real.seconds += 5
    clock.pause()
    assert clock.now() == START + pd.Timedelta(minutes=10)


@pytest.mark.parametrize("speed", [0, -1])
def test_replay_speed_must_be_positive(real, speed):
    with pytest.raises(ValueError, match="speed"):
        ReplayClock(START, speed=speed, monotonic=real)
    with pytest.raises(ValueError, match="speed"):
        ReplayClock(START, speed=1, monotonic=real).set_speed(speed)


def test_manual_clock_advances_and_never_goes_backwards():
    clock = ManualClock("2025-03-01")
    assert clock.now() == pd.Timestamp("2025-03-01", tz="UTC")
    assert clock.advance(minutes=5) == pd.Timestamp("2025-03-01 00:05", tz="UTC")
    assert clock.advance(pd.Timedelta(hours=2)) == pd.Timestamp("2025-03-01 02:05", tz="UTC")
    clock.set("2025-03-02")
    assert clock.now() == pd.Timestamp("2025-03-02", tz="UTC")
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(minutes=-1)
    with pytest.raises(ValueError, match="backwards"):
        clock.set("2025-03-01")
    assert clock.now() == pd.Timestamp("2025-03-02", tz="UTC")


def test_clocks_speak_utc():
    assert utc("2025-03-01 13:00+01:00") == pd.Timestamp("2025-03-01 12:00", tz="UTC")
    assert utc("2025-03-01 12:00") == pd.Timestamp("2025-03-01 12:00", tz="UTC")
    assert str(WallClock().now().tz) == "UTC"
    assert not WallClock.replayed and ReplayClock.replayed and ManualClock.replayed


WALL_TIME_READS = re.compile(
    r"datetime\.now\(|utcnow\(|datetime\.today\(|date\.today\(|time\.time(_ns)?\(|"
    r"Timestamp\.now\(|Timestamp\.today\("
)


def test_only_clock_py_reads_the_wall_time():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "clock.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if WALL_TIME_READS.search(line)
    ]
    assert offenders == []
    assert WALL_TIME_READS.search((PACKAGE / "clock.py").read_text())  # the pattern does match
