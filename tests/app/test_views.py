"""The services views behind the pages (snapshot paging and export, PSI, rolling performance,
the per-timeframe summary, the recalibration feed) and the UI's formatting."""

import dataclasses
import io
import math
import time

import numpy as np
import pandas as pd
import pytest

from alpha12 import ui
from alpha12.config import Settings
from alpha12.drift import population_stability
from alpha12.metrics import rolling_performance, timeframe_summary
from alpha12.services import Alpha12
from alpha12.store import SnapshotQuery

MILLION = 1_000_000


@pytest.fixture
def app(tmp_path):
    settings = dataclasses.replace(
        Settings(), assets=("BTC",), db_path=tmp_path / "s.duckdb", models_dir=tmp_path / "m"
    )
    opened = Alpha12.open(settings=settings)
    yield opened
    opened.close()


def fill_snapshots(app: Alpha12, rows: int) -> None:
    """`rows` synthetic snapshots over 3 assets and 5 timeframes, one minute apart."""
    app.store.rows(
        """INSERT INTO snapshots (asset, interval, ts, source, rsi_14, probability, target,
                                  setup_generated, model_version)
           SELECT ['BTC', 'ETH', 'SOL'][i % 3 + 1], ['5m', '15m', '1h', '4h', '1d'][i % 5 + 1],
                  TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_minutes(i), 'background_analysis',
                  (i * 7919) % 100, ((i * 104729) % 1000) / 1000.0,
                  CASE WHEN i % 4 = 0 THEN NULL ELSE (i % 2)::FLOAT END, i % 7 = 0, i % 3 + 1
           FROM range(?) t(i)""",
        [rows],
    )


def test_snapshot_paging_sorts_and_filters_in_duckdb(app):
    fill_snapshots(app, 3_000)
    query = SnapshotQuery(asset="ETH", interval="15m", labelled=True)
    page, total = app.snapshot_page(query, "probability", descending=True, limit=7, offset=3)
    every = app.store.query("SELECT * FROM snapshots")
    expected = every[
        (every["asset"] == "ETH") & (every["interval"] == "15m") & every["target"].notna()
    ].sort_values(["probability", "id"], ascending=[False, True], kind="stable")
    assert total == len(expected) > 10
    assert page["id"].tolist() == expected["id"].iloc[3:10].tolist()


def test_snapshot_filters_by_date_setup_source_and_version(app):
    fill_snapshots(app, 3_000)
    query = SnapshotQuery(
        start=pd.Timestamp("2024-01-01 10:00", tz="UTC"),
        end=pd.Timestamp("2024-01-01 20:00", tz="UTC"),
        setup_generated=True,
        labelled=False,
        source="background_analysis",
        model_version=2,
    )
    page, total = app.snapshot_page(query, limit=1_000)
    assert total == len(page) > 0
    assert page["ts"].between(query.start, query.end, inclusive="left").all()
    assert page["setup_generated"].all() and page["target"].isna().all()
    assert (page["model_version"] == 2).all()


def test_sorting_only_by_a_known_column(app):
    with pytest.raises(ValueError, match="cannot sort"):
        app.snapshot_page(SnapshotQuery(), order_by="ts; DROP TABLE snapshots")


@pytest.mark.slow
def test_a_million_snapshots_page_fast(app):
    fill_snapshots(app, MILLION)
    query = SnapshotQuery(asset="BTC", labelled=True, setup_generated=False)
    app.snapshot_page(query, "probability", limit=100, offset=50_000)  # warm DuckDB's caches
    started = time.perf_counter()
    page, total = app.snapshot_page(query, "probability", limit=100, offset=50_000)
    elapsed = time.perf_counter() - started
    assert total == app.store.scalar(
        "SELECT count(*) FROM snapshots WHERE asset = 'BTC' AND target IS NOT NULL "
        "AND NOT setup_generated"
    )
    assert len(page) == 100 and page["probability"].is_monotonic_decreasing
    assert elapsed < 1.0, f"a page of a million rows took {elapsed:.2f} s"


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_export_holds_exactly_the_filtered_rows(app, file_format):
    fill_snapshots(app, 2_000)
    query = SnapshotQuery(interval="1h", labelled=True)
    data = app.snapshot_export(query, file_format)
    read = pd.read_csv if file_format == "csv" else pd.read_parquet
    exported = read(io.BytesIO(data))
    page, total = app.snapshot_page(query, "id", descending=False, limit=10_000)
    assert len(exported) == total
    assert exported["id"].tolist() == page["id"].tolist()
    assert set(exported["interval"]) == {"1h"} and exported["target"].notna().all()


def test_population_stability_is_near_zero_for_one_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    reference = pd.Series(rng.normal(0, 1, 5_000))
    assert population_stability(reference, pd.Series(rng.normal(0, 1, 5_000))) < 0.02
    assert population_stability(reference, pd.Series(rng.normal(1.5, 1, 5_000))) > 0.25
    assert math.isnan(population_stability(reference, pd.Series([np.nan])))


def test_rolling_performance_follows_the_metric_definitions():
    closed = pd.DataFrame(
        {
            "exit_ts": pd.date_range("2025-01-01", periods=4, freq="h", tz="UTC"),
            "pnl_pct": [1.0, -0.5, 2.0, 1.0],
            "r_multiple": [1.0, -1.0, 2.0, 1.0],
        }
    )
    perf = rolling_performance(closed, window=2)
    assert perf["win_rate"].tolist()[1:] == [0.5, 0.5, 1.0]
    assert perf["profit_factor"].tolist()[1:] == [2.0, 4.0, math.inf]
    assert math.isnan(perf["win_rate"].iloc[0])
    assert perf["equity_r"].tolist() == [1.0, 0.0, 2.0, 3.0]


def test_the_rolling_charts_shade_each_95_percent_interval():
    pnl = [1.0, -0.5, 2.0, 1.0, -1.0, 0.5, -0.5, 1.5, -1.0, 1.0, 2.0, -0.5]
    closed = pd.DataFrame(
        {
            "exit_ts": pd.date_range("2025-01-01", periods=len(pnl), freq="h", tz="UTC"),
            "pnl_pct": pnl,
            "r_multiple": pnl,
        }
    )
    perf = rolling_performance(closed, window=10)
    marks = pd.DataFrame(columns=["ts", "action"])
    figure = ui.performance_figure(perf, 0.5, 1.2, marks)
    bands = [t for t in figure.data if t.name == "95% interval"]
    assert [(t.yaxis, t.fill) for t in bands] == [
        ("y", None),
        ("y", "tonexty"),
        ("y2", None),
        ("y2", "tonexty"),
    ]
    win_rate_high, win_rate_low = (np.array(t.y, dtype=float) for t in bands[:2])
    assert np.allclose(win_rate_high, perf["win_rate_high"], equal_nan=True)
    assert np.allclose(win_rate_low, perf["win_rate_low"], equal_nan=True)
    shown = ~np.isnan(win_rate_low)
    assert shown.sum() == 3 and (win_rate_low[shown] <= perf["win_rate"][shown]).all()


def test_timeframe_summary_counts_statuses_and_pools_the_win_rate():
    grid = pd.DataFrame(
        {
            "asset": ["BTC", "ETH", "BTC", "ETH"],
            "interval": ["5m", "5m", "1h", "1h"],
            "status": ["healthy", "degraded", "no_model", "no_model"],
            "trades": [60, 40, 0, 0],
            "pending": [1, 0, 0, 0],
            "win_rate": [0.5, 0.25, np.nan, np.nan],
            "win_rate_threshold": [0.45, 0.45, 0.52, 0.52],
        }
    )
    summary = timeframe_summary(grid).set_index("interval")
    assert summary.loc["5m", ["healthy", "degraded", "no_model", "trades"]].tolist() == [
        1,
        1,
        0,
        100,
    ]
    assert summary.loc["5m", "win_rate"] == pytest.approx(0.4)  # 40 wins of 100 trades
    assert summary.loc["1h", "no_model"] == 2 and math.isnan(summary.loc["1h", "win_rate"])


def test_recalibration_feed_leaves_routine_decisions_out_on_request(app):
    with app.store.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO recalibrations (asset, interval, ts, trigger, action) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                ["BTC", "5m", pd.Timestamp("2025-01-01", tz="UTC"), "monitor", action]
                for action in ("healthy", "recalibrated", "skipped_insufficient_trades", "failed")
            ],
        )
    assert app.recalibration_log(routine=False)["action"].tolist() == ["failed", "recalibrated"]
    assert len(app.recalibration_log()) == 4
    assert app.recalibration_log(after_id=2, routine=False)["action"].tolist() == ["failed"]
    assert app.recalibration_log(interval="1h").empty


def test_durations_and_numbers_read_naturally():
    assert [ui.duration(s) for s in (45, 750, 3 * 3600 + 300, 2 * 86400 + 4 * 3600)] == [
        "45s",
        "12m 30s",
        "3h 05m",
        "2d 4h",
    ]
    assert ui.profit_factor(math.inf) == "∞" and ui.profit_factor(math.nan) == "—"
    assert ui.percent(0.4567) == "45.7%" and ui.percent(None) == "—"


def test_a_pair_card_shows_status_intervals_thresholds_cooldown_and_model():
    card = ui.pair_card(
        {
            "status": "cooldown",
            "no_edge": True,
            "win_rate": 0.40,
            "win_rate_low": 0.284,
            "win_rate_high": 0.529,
            "win_rate_threshold": 0.45,
            "profit_factor": math.inf,
            "profit_factor_low": 1.5,
            "profit_factor_high": math.inf,
            "profit_factor_threshold": 1.2,
            "trades": 55,
            "min_trades": 50,
            "pending": 2,
            "cooldown_remaining_s": 5400.0,
            "model_version": 3,
            "model_scope": "fallback",
            "model_age_s": 90000.0,
        }
    )
    assert card.splitlines() == [
        ":orange-background[:orange[**:material/hourglass_top: cooldown**]] "
        ":violet-background[:violet[**:material/trending_flat: no edge**]]  ",
        "win rate **40.0%** [28–53] :red[< 45%]  ",
        "profit factor **∞** [1.50–∞] :green[≥ 1.20]  ",
        "trades **55** / 50 · 2 open  ",
        ":orange[cooldown **1h 30m** left]  ",
        "model **v3** :violet[fallback], 25h 00m old",
    ]
