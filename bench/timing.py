"""Shared timing helper: best of a few runs, because other work on the machine only adds time."""

import time
from collections.abc import Callable


def best_seconds(call: Callable[[], object], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def row(name: str, value: float, unit: str, aim: str, reference: float | None = None) -> dict:
    """One result row; the ratio is value / reference when a same-run reference exists."""
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "reference": reference,
        "ratio": None if not reference else value / reference,
        "aim": aim,
    }
