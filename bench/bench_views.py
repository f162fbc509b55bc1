"""Benchmark: server-side time of the overview and of a filtered snapshot page with 1M and 10M
feature snapshots in the store (a tenth as many setups), and the app's peak memory serving every
page at 1M (quick: 100k and 1M snapshots).

The store is filled with SQL (random features at the stored precision, closed trades of each
pair's serving model), so the figures measure the app's queries, not the market simulation.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from alpha12.clock import ManualClock
from alpha12.config import Settings
from alpha12.features import FEATURE_NAMES
from alpha12.registry import FALLBACK_INTERVAL
from alpha12.services import Alpha12
from alpha12.sources.replay import SyntheticReplay
from alpha12.store import SnapshotQuery
from alpha12.timeframes import INTERVALS
from bench.bench_cycle import cycle_model
from bench.timing import best_seconds, row

UNIVERSES = (3, 20)  # the default universe's size, and an analyst watching 20 assets
START = pd.Timestamp("2025-01-01", tz="UTC")


def fill(app: Alpha12, snapshots: int, setups: int) -> None:
    """`snapshots` and `setups` rows spread evenly over the assets x 5 timeframes."""
    assets = app.settings.assets
    pairs = ", ".join(f"('{a}', '{i}')" for a in assets for i in INTERVALS)
    features = ", ".join(f"round(random(), 4)::FLOAT AS {name}" for name in FEATURE_NAMES)
    with app.store.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE pair_list AS SELECT * FROM (VALUES {pairs}) p(asset, iv)"
        )
        cursor.execute(
            f"""INSERT INTO snapshots (asset, interval, ts, source, {", ".join(FEATURE_NAMES)},
                      probability, model_version, model_scope, setup_generated, target, target_ts,
                      pnl_pct)
                SELECT asset, iv, ?::TIMESTAMPTZ + to_minutes(n * 5), 'background_analysis',
                       {", ".join(FEATURE_NAMES)}, random(), 1, 'fallback', random() < 0.2,
                       CASE WHEN random() < 0.5 THEN 1 ELSE 0 END,
                       ?::TIMESTAMPTZ + to_minutes(n * 5 + 60), random() - 0.5
                FROM (SELECT *, {features} FROM pair_list,
                      range({snapshots // len(assets) // len(INTERVALS)}) r(n))""",
            [START, START],
        )
        cursor.execute(
            f"""INSERT INTO setups (asset, interval, ts, direction, entry, stop, take_profit, atr,
                      expires_ts, probability, model_version, model_scope, status, exit_reason,
                      exit_ts, exit_price, pnl_pct, r_multiple, origin)
                SELECT asset, iv, ?::TIMESTAMPTZ + to_minutes(n * 5), 1, 100, 99, 101, 1,
                       ?::TIMESTAMPTZ + to_minutes(n * 5 + 60), 0.6, 1, 'fallback', 'closed',
                       'take_profit', ?::TIMESTAMPTZ + to_minutes(n * 5 + 30), 101,
                       random() - 0.45, random() * 2 - 0.9, 'live'
                FROM pair_list, range({setups // len(assets) // len(INTERVALS)}) r(n)""",
            [START, START, START],
        )


def build(folder: Path, assets: int, snapshots: int, setups: int) -> Alpha12:
    settings = Settings(
        assets=tuple(f"A{i:02d}" for i in range(assets)),
        history_days=2,
        db_path=folder / "views.duckdb",
        models_dir=folder / "models",
    )
    source = SyntheticReplay(settings.seed, settings.history_days, future_days=1)
    app = Alpha12.open(
        settings=settings, clock=ManualClock(START + pd.Timedelta(days=400)), source=source
    )
    model = cycle_model()
    for asset in settings.assets:
        app.registry.register(asset, FALLBACK_INTERVAL, model, START, "bench")
    fill(app, snapshots, setups)
    return app


def overview(app: Alpha12) -> None:
    """What the overview's live fragment asks for on every refresh."""
    app.overview()
    app.recalibration_log(routine=False, limit=30)
    app.open_jobs()


def snapshot_page(app: Alpha12) -> None:
    """A filtered, sorted page of the snapshot explorer, with its filter choices."""
    app.snapshot_choices()
    query = SnapshotQuery(asset="A01", interval="1h", labelled=True, setup_generated=True)
    app.snapshot_page(query, "probability", True, 100, 200)


def run(quick: bool = False) -> list[dict]:
    small, large = (100_000, 1_000_000) if quick else (1_000_000, 10_000_000)
    return [
        *measure(UNIVERSES[0], small),
        *measure(UNIVERSES[1], small, memory=True),
        *measure(UNIVERSES[1], large),
    ]


def measure(assets: int, snapshots: int, memory: bool = False) -> list[dict]:
    setups = snapshots // 10
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        app = build(Path(folder), assets, snapshots, setups)
        built = time.perf_counter() - started
        overview(app)  # the first call loads the models, as a running app already has
        size = f"{assets} assets x 5, {snapshots:,} snapshots, {setups:,} setups"
        rows = [
            row(
                f"views: overview refresh, {size}",
                best_seconds(lambda: overview(app)) * 1e3,
                "ms",
                "<= 300 ms at 1M",
            ),
            row(
                f"views: filtered snapshot page, {size}",
                best_seconds(lambda: snapshot_page(app)) * 1e3,
                "ms",
                "<= 300 ms at 1M",
            ),
            row(
                f"views: building that store (SQL fill, model registrations), {assets} assets",
                built,
                "s",
                "informative",
            ),
        ]
        app.close()
        if memory:
            rows.append(
                row(
                    f"views: app peak memory serving every page, {size}",
                    peak_memory(app.settings) / 2**20,
                    "MB",
                    "<= 600 MB",
                )
            )
    return rows


def peak_memory(settings: Settings) -> int:
    """Peak RSS (bytes) of a fresh process serving the app's pages over this store."""
    variables = {
        "ALPHA12_CONFIG": str(settings.db_path.parent / "absent.toml"),
        "ALPHA12_ASSETS": ",".join(settings.assets),
        "ALPHA12_HISTORY_DAYS": str(settings.history_days),
        "ALPHA12_DB_PATH": str(settings.db_path),
        "ALPHA12_MODELS_DIR": str(settings.models_dir),
        "ALPHA12_ENGINE": "off",
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ALPHA12_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench.app_memory"],
        env={**clean, **variables},
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return int(done.stdout.strip().splitlines()[-1])
