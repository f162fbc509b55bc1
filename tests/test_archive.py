"""Growth: `alpha12 archive` moves old snapshots into Parquet without losing a row or anything
a model needs — what the models train on and compare drift against stays in the database."""

from __future__ import annotations

import dataclasses

import duckdb
import pandas as pd
import pytest

from alpha12 import archive, cli, training
from alpha12.config import Settings
from alpha12.services import Alpha12

DAYS = 150  # 1h bars: 3600 snapshots, more than archive.keep_rows keeps


@pytest.fixture
def app(tmp_path):
    settings = dataclasses.replace(
        Settings(),
        assets=("BTC",),
        intervals=("1h",),
        history_days=DAYS,
        db_path=tmp_path / "storage.duckdb",
        models_dir=tmp_path / "models",
    )
    opened = Alpha12.open(settings=settings)
    opened.collect_once()
    opened.backfill()
    opened.retrain("BTC", "1h", force=True)
    yield opened
    opened.close()


def snapshots(source) -> pd.DataFrame:
    return source.query("SELECT * EXCLUDE (id) FROM snapshots ORDER BY ts").reset_index(drop=True)


def archived(folder) -> pd.DataFrame:
    frame = duckdb.sql(f"SELECT * EXCLUDE (id) FROM read_parquet('{folder}/*.parquet')").df()
    return frame.sort_values("ts").reset_index(drop=True)


def test_old_rows_move_to_parquet_and_nothing_is_lost(app, tmp_path):
    before = snapshots(app.store)
    frame_before = training.training_frame(app.store, app.settings, "BTC", "1h", app.clock.now())
    report = app.archive_snapshots(30, tmp_path / "archive")
    kept, moved = snapshots(app.store), archived(tmp_path / "archive")
    keep = archive.keep_rows(app.settings)
    assert report.rows == len(moved) == len(before) - keep > 1000
    assert len(kept) == keep
    assert moved["ts"].max() < kept["ts"].min()  # the oldest rows moved
    rejoined = pd.concat([moved, kept], ignore_index=True)
    pd.testing.assert_frame_equal(rejoined, before, check_dtype=False)  # not a row lost
    frame_after = training.training_frame(app.store, app.settings, "BTC", "1h", app.clock.now())
    pd.testing.assert_frame_equal(frame_after, frame_before)  # what the models learn from
    assert app.archive_snapshots(30, tmp_path / "archive").rows == 0  # idempotent


def test_rows_inside_an_active_models_window_stay(app, tmp_path):
    oldest = snapshots(app.store)["ts"].iloc[100]
    with app.store.transaction() as cursor:  # a model trained on (almost) the whole history
        cursor.execute("UPDATE models SET window_start = ? WHERE status = 'active'", [oldest])
    report = app.archive_snapshots(30, tmp_path / "archive")
    assert report.rows == 100
    assert snapshots(app.store)["ts"].min() == oldest
    assert app.feature_drift("BTC", "1h")["reference_rows"] > 0


def test_the_cli_reports_what_moved(app, tmp_path, capsys, isolated_env):
    db = app.store.path
    app.close()
    assert cli.main(["--db", str(db), "archive", "--older-than", "30"]) == 0
    out = capsys.readouterr().out
    assert "snapshots moved to" in out and str(tmp_path / "archive") in out
    assert cli.main(["--db", str(db), "archive", "--older-than", "30"]) == 0
    assert "nothing to archive" in capsys.readouterr().out
