"""Benchmark: bytes a feature snapshot row takes on disk, on real market data — the Binance
BTC/USDT candles in ../shared (all five timeframes) imported and backfilled, the growth of the
checkpointed DuckDB file divided by the snapshot rows it gained."""

import dataclasses
import tempfile
import time
from pathlib import Path

from alpha12.config import Settings
from alpha12.services import Alpha12
from bench.timing import row

BTC_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "btcusdt"


def run(quick: bool = False) -> list[dict]:
    if not BTC_DIR.exists():
        return [row(f"storage: skipped, {BTC_DIR} not found", float("nan"), "B", "<= 150 B")]
    with tempfile.TemporaryDirectory() as folder:
        settings = dataclasses.replace(
            Settings(),
            assets=("BTCUSDT",),
            db_path=Path(folder) / "storage.duckdb",
            models_dir=Path(folder) / "models",
        )
        app = Alpha12.open(settings=settings)
        app.import_csv(BTC_DIR)
        checkpointed = _checkpointed_size(app)
        started = time.perf_counter()
        app.backfill()
        backfill = time.perf_counter() - started
        rows = app.store.scalar("SELECT count(*) FROM snapshots")
        grown = _checkpointed_size(app) - checkpointed
        app.close()
    return [
        row(
            f"storage: bytes per snapshot row on disk ({rows:,} real BTC rows, 5 timeframes)",
            grown / rows,
            "B",
            "<= 150 B",
        ),
        row(f"storage: backfill of those {rows:,} snapshots", backfill, "s", "informative"),
    ]


def _checkpointed_size(app: Alpha12) -> int:
    app.store.rows("CHECKPOINT")
    return app.store.path.stat().st_size
