"""alpha12.heap: the pages C code freed go back to the system, and the engine gives them back
after training work, at most once a minute."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time
from pathlib import Path

import numpy as np
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


def test_release_frees_what_only_reference_cycles_hold():
    class Node:  # a node that refers to itself: only the cycle collector can free it
        def __init__(self):
            self.me, self.data = self, np.ones(BLOCK * BLOCKS // 8)  # 125 MB

    gc.disable()  # no automatic collection between the drop and the release
    try:
        Node()
        held = rss_mb()
        heap.release()
        released = held - rss_mb()
    finally:
        gc.enable()
    assert released > 0.8 * BLOCK * BLOCKS / 2**20, f"only {released:.0f} MB went back"


def test_the_engine_releases_after_training_work_once_a_release_is_due(monkeypatch):
    from alpha12 import engine as engine_module

    calls = []
    monkeypatch.setattr(heap, "release", lambda: calls.append("release") or True)

    def work(fail: bool) -> None:
        calls.append("work")
        if fail:
            raise RuntimeError("a job that fails still releases")

    class Store:
        def reopen(self) -> bool:
            calls.append("reopen")
            if len(calls) > 6:
                raise OSError("the file went away")
            return True

    engine = engine_module.Engine.__new__(engine_module.Engine)  # _train needs only these
    engine.store, engine._store_reopened = Store(), time.monotonic()
    engine._heap_released = time.monotonic() - engine_module.HEAP_RELEASE_SECONDS
    engine._event = lambda level, message, *args, **kwargs: calls.append(f"{level}: {message}")
    engine._train(work, False)  # the store was opened just now: not reopened yet
    engine._train(work, False)  # released just now: not again yet
    monkeypatch.setattr(engine_module, "STORE_REOPEN_SECONDS", 0)
    monkeypatch.setattr(engine_module, "HEAP_RELEASE_SECONDS", 0)
    with pytest.raises(RuntimeError):
        engine._train(work, True)
    engine._train(work, False)  # a reopen that fails is an event; the release still runs
    assert calls == [
        *("work", "release", "work", "work", "reopen", "release", "work", "reopen"),
        "error: reopening the store failed: OSError: the file went away",
        "release",
    ]
