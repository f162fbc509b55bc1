"""Benchmark: triple-barrier labelling of a long synthetic random walk (horizon 24).

Run from the repository root: .venv/bin/python -m bench.bench_targets
"""

import time

import numpy as np
import pandas as pd
import talib

from alpha12.targets import triple_barrier

HORIZON = 24
# Best of a few runs, because other work on the machine only ever adds time.
REPEATS = 3


def random_walk_bars(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.exp(np.abs(rng.normal(0, 0.001, (2, n))))
    return pd.DataFrame(
        {
            "ts": pd.date_range("2015-01-01", periods=n, freq="5min", tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) * wick[0],
            "low": np.minimum(open_, close) / wick[1],
            "close": close,
            "volume": 1.0,
        }
    )


def run(quick: bool = False) -> list[dict]:
    n = 100_000 if quick else 1_000_000
    bars = random_walk_bars(n)
    atr = talib.ATR(bars["high"].to_numpy(), bars["low"].to_numpy(), bars["close"].to_numpy(), 14)
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        targets = triple_barrier(
            bars,
            atr,
            interval="5m",
            tp_mult=2.0,
            sl_mult=1.0,
            horizon=HORIZON,
            round_trip_cost_bps=10,
        )
        timings.append(time.perf_counter() - started)
    seconds = min(timings)
    if targets["label"].notna().sum() < n - HORIZON - 14:
        raise RuntimeError("benchmark run left labels unresolved; the timing would be misleading")
    row = {"reference": None, "ratio": None}
    return [
        row
        | {
            "name": f"triple_barrier {n:,} bars, horizon {HORIZON} (best of {REPEATS})",
            "value": round(seconds, 3),
            "unit": "s",
            "aim": "lower is better; labelling a full history should take seconds",
        },
        row
        | {
            "name": f"triple_barrier throughput ({n:,} bars, horizon {HORIZON})",
            "value": round(n / seconds),
            "unit": "bars/s",
            "aim": "higher is better",
        },
    ]


if __name__ == "__main__":
    for result in run():
        print(result)
