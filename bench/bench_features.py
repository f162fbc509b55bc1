"""Benchmarks alpha12.features: full-history speed against TA-Lib, throughput, per-bar latency.

Run from the repository root: `.venv/bin/python -m bench.bench_features [--quick]`.
"""

import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import talib

from alpha12.features import TAIL_BARS, TALIB_FEATURES, compute_features, latest_features
from alpha12.sources.synthetic import BARS_PER_DAY, SyntheticMarket

FULL_BARS, QUICK_BARS = 1_000_000, 100_000


def _bars(n: int) -> pd.DataFrame:
    """n synthetic 5m bars: a random walk with regimes, fat tails and intraday volume."""
    market = SyntheticMarket(seed=7, origin=pd.Timestamp("2015-01-01", tz="UTC"))
    return market.base_bars("BTCUSDT", days=-(-n // BARS_PER_DAY)).iloc[:n]


def _talib_16(bars: pd.DataFrame) -> list[np.ndarray]:
    """TA-Lib computing the same 16 indicators, scaled the same way."""
    high, low, close, volume = (bars[c].to_numpy() for c in ("high", "low", "close", "volume"))
    macd, signal, hist = talib.MACD(close, 12, 26, 9)
    slow_k, slow_d = talib.STOCH(high, low, close, 14, 3, 0, 3, 0)
    upper, middle, lower = talib.BBANDS(close, 20, 2.0, 2.0, 0)
    return [
        talib.RSI(close, 14),
        talib.ATR(high, low, close, 14) / close,
        macd / close,
        signal / close,
        hist / close,
        talib.ADX(high, low, close, 14),
        talib.PLUS_DI(high, low, close, 14),
        talib.MINUS_DI(high, low, close, 14),
        slow_k,
        slow_d,
        talib.WILLR(high, low, close, 14),
        talib.CCI(high, low, close, 20),
        talib.MFI(high, low, close, volume, 14),
        talib.ROC(close, 10),
        (close - lower) / (upper - lower),
        (upper - lower) / middle,
    ]


def _seconds(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls, after one untimed call that warms caches and memory."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(quick: bool = False) -> list[dict]:
    n = QUICK_BARS if quick else FULL_BARS
    repeats = 3 if quick else 5
    bars = _bars(n)
    size = f"{n // 1000}k bars"

    ours = _seconds(lambda: compute_features(bars, TALIB_FEATURES), repeats)
    reference = _seconds(lambda: _talib_16(bars), repeats)
    all_39 = _seconds(lambda: compute_features(bars), repeats)
    tail = bars.iloc[-TAIL_BARS:]
    per_call = _seconds(lambda: latest_features(tail), 200 if quick else 1000)

    return [
        {
            "name": f"features: the 16 TA-Lib indicators, full history of {size}",
            "value": ours,
            "unit": "s",
            "reference": reference,
            "ratio": ours / reference,
            "aim": "<= 3x TA-Lib",
        },
        {
            "name": f"features: all 39, full history of {size}",
            "value": n / all_39,
            "unit": "bars/s",
            "reference": None,
            "ratio": None,
            "aim": ">= 1M bars/s",
        },
        {
            "name": f"features: latest_features on a {TAIL_BARS}-bar tail (median per call)",
            "value": per_call * 1e3,
            "unit": "ms",
            "reference": None,
            "ratio": None,
            "aim": "< 5 ms",
        },
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv[1:]):
        print(row)
