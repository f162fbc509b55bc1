"""alpha12.heap: the pages C code freed go back to the system, the engine gives them back after
each cycle and each piece of training work, and its threads share two arenas."""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from alpha12 import heap

BLOCK = 64 * 1024  # below glibc's mmap threshold: served from the heap, kept there when freed
BLOCKS = 2000  # 125 MB


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(x for x in status if x.startswith("VmRSS:")).split()[1]) / 1024


def test_release_returns_freed_heap_pages_to_the_system():
    if not heap.release():
        pytest.skip("this C library has no malloc_trim")
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(BLOCK) for _ in range(BLOCKS)]
    for block in blocks:
        ctypes.memset(block, 1, BLOCK)  # resident, not just reserved
    for block in blocks[:-1]:  # the last one pins the heap's top: free() alone cannot shrink it
        libc.free(block)
    held = rss_mb()
    assert heap.release()
    released = held - rss_mb()
    libc.free(blocks[-1])
    assert released > 0.8 * BLOCK * BLOCKS / 2**20, f"only {released:.0f} MB went back"


def test_the_engine_releases_after_every_piece_of_training_work(monkeypatch):
    from alpha12.engine import Engine

    calls = []
    monkeypatch.setattr(heap, "release", lambda: calls.append("release") or True)

    def work(fail: bool) -> None:
        calls.append("work")
        if fail:
            raise RuntimeError("a job that fails still releases")

    engine = Engine.__new__(Engine)  # _train needs no state: it runs the work, then releases
    engine._train(work, False)
    with pytest.raises(RuntimeError):
        engine._train(work, True)
    assert calls == ["work", "release", "work", "release"]


ARENA_PROBE = """
import ctypes, ctypes.util, sys, threading
from alpha12 import heap
if sys.argv[1] == "bound":
    assert heap.bound_arenas()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
all_holding = threading.Barrier(8)

def hold():  # every thread allocates while the others hold theirs: glibc spreads them out
    block = libc.malloc(4096)
    all_holding.wait()

threads = [threading.Thread(target=hold) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc.malloc_stats()  # one "Arena N:" paragraph per arena, on stderr
"""


def arenas(mode: str) -> int:
    probe = subprocess.run(
        [sys.executable, "-c", ARENA_PROBE, mode], capture_output=True, text=True, check=True
    )
    return probe.stderr.count("Arena ")


def test_a_bounded_process_keeps_its_threads_in_two_arenas():
    if heap._libc_call("mallopt") is None:
        pytest.skip("this C library has no mallopt")
    assert arenas("bound") == heap.SERVICE_ARENAS
    assert arenas("default") > heap.SERVICE_ARENAS  # the probe does spread threads out


def test_the_engine_bounds_the_arenas_before_its_threads_start(monkeypatch, settings):
    from alpha12.engine import Engine
    from alpha12.services import Alpha12

    calls = []
    monkeypatch.setattr(heap, "bound_arenas", lambda: calls.append("bound"))
    app = Alpha12.open(settings=settings)
    engine = Engine(app.context)
    monkeypatch.setattr(engine, "_spawn", lambda: calls.append("spawn"))
    monkeypatch.setattr(engine, "_requeue_interrupted_jobs", lambda: None)
    try:
        engine.start()
    finally:
        engine._stop.set()
        app.close()
    assert calls == ["bound", "spawn"]


def test_the_engine_releases_after_a_cycle_and_not_on_an_idle_tick(monkeypatch, settings):
    from alpha12.clock import ManualClock
    from alpha12.engine import Engine
    from alpha12.services import Alpha12
    from alpha12.sources.replay import SyntheticReplay

    source = SyntheticReplay(12, 10)
    app = Alpha12.open(
        settings=dataclasses.replace(settings, intervals=("1h",), monitor_period_minutes=1e9),
        clock=ManualClock(source.default_start),
        source=source,
    )
    engine, calls = Engine(app.context), []
    analyze = engine.cycle
    monkeypatch.setattr(engine, "cycle", lambda *args: calls.append("cycle") or analyze(*args))
    monkeypatch.setattr(heap, "release", lambda: calls.append("release") or True)
    try:
        engine.tick()  # every pair is due at the first tick
        calls.append("idle")
        engine.tick()  # no bar has closed since
    finally:
        app.close()
    assert calls == ["cycle", "release", "idle"]
