"""Training on a Dask cluster: a LocalCluster of worker processes on loopback trains the same
models, with the same metrics, as the local cores; the app registers what the workers return,
and refuses what does not match its training frame."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from distributed import LocalCluster

from alpha12 import models, training
from alpha12.config import Settings, SettingsError, load_settings
from alpha12.services import Alpha12
from alpha12.vocabulary import Action

INTERVALS = ("15m", "1h", "4h")


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as running:
        yield running.scheduler_address


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compute")
    settings = dataclasses.replace(
        Settings(),
        assets=("BTC",),
        intervals=INTERVALS,
        history_days=60,
        db_path=folder / "storage.duckdb",
        models_dir=folder / "models",
    )
    opened = Alpha12.open(settings=settings)
    opened.collect_once()
    opened.backfill()
    yield opened
    opened.close()


def frames(app: Alpha12) -> list[tuple[pd.DataFrame, object]]:
    now = app.clock.now()
    return [
        (training.training_frame(app.store, app.settings, "BTC", i, now), app.settings.timeframe(i))
        for i in INTERVALS
    ]


def on_dask(settings: Settings, address: str) -> Settings:
    return dataclasses.replace(settings, backend="dask", dask_scheduler=address)


def test_the_cluster_trains_the_same_models_as_the_local_cores(app, cluster):
    work = frames(app)
    local = training.fit_many(work, app.settings)
    remote = training.fit_many(work, on_dask(app.settings, cluster))
    assert all(isinstance(r, models.TrainedModel) for r in local + remote), local + remote
    for here, there, (frame, _) in zip(local, remote, work, strict=True):
        assert there.metrics == here.metrics
        assert there.importances == here.importances
        rows = frame.dropna().iloc[-200:]
        pd.testing.assert_series_equal(
            pd.Series(there.predict_proba(rows)), pd.Series(here.predict_proba(rows))
        )
    ran_on = training.dask_client(cluster).run(lambda: "worker")  # the workers did the work
    assert len(ran_on) == 2


def test_the_monitor_registers_what_the_workers_trained(app, cluster):
    app.settings = on_dask(app.settings, cluster)
    assessments = app.monitor.assess_all([("BTC", i) for i in INTERVALS])
    outcomes = app.monitor.recalibrate_many(assessments, app.clock.now(), "forced")
    assert [o.action for o in outcomes] == [Action.RECALIBRATED] * len(INTERVALS)
    for interval, outcome in zip(INTERVALS, outcomes, strict=True):
        served = app.registry.load_active("BTC", interval)  # sha256-checked on load
        assert served.version == outcome.new_version
        assert served.model.metrics == outcome.metrics_after


def test_a_worker_answer_that_does_not_match_its_frame_is_refused(app):
    frame, timeframe = frames(app)[0]
    trained = models.fit(frame, timeframe)
    assert training.verified(trained, frame) is trained
    with pytest.raises(training.ComputeError, match="does not match its training frame"):
        training.verified(trained, frame.iloc[:-50])
    with pytest.raises(training.ComputeError, match="not a trained model"):
        training.verified({"pickled": "anything"}, frame)


def test_an_unreachable_scheduler_fails_the_retrain_with_a_plain_message(app, monkeypatch):
    # Dask retries a refused connection until its timeout: a second is enough to be refused.
    monkeypatch.setattr(training, "CONNECT_TIMEOUT_S", 1)
    settings = on_dask(app.settings, "tcp://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(training.ComputeError, match="cannot reach the Dask scheduler"):
        training.fit_many(frames(app), settings)


def test_the_backend_is_chosen_by_variables_and_checked():
    chosen = load_settings(
        env={"ALPHA12_BACKEND": "dask", "ALPHA12_DASK_SCHEDULER": "tcp://10.0.0.5:8786"}
    )
    assert (chosen.backend, chosen.dask_scheduler) == ("dask", "tcp://10.0.0.5:8786")
    with pytest.raises(SettingsError, match="dask_scheduler: required"):
        load_settings(env={"ALPHA12_BACKEND": "dask"})
    with pytest.raises(SettingsError, match="backend: 'spark' is not one of local, dask"):
        load_settings(env={"ALPHA12_BACKEND": "spark"})


@pytest.mark.parametrize(
    ("backend", "n_jobs", "parts", "workers"),
    [
        ("local", 2, 1, 2),
        ("local", 2, 2, 1),
        ("local", 2, 5, 1),
        ("local", 4, 2, 2),
        ("dask", 2, 1, 1),
    ],
)
def test_a_part_fits_with_the_cores_the_other_parts_leave_idle(backend, n_jobs, parts, workers):
    settings = dataclasses.replace(Settings(), backend=backend, n_jobs=n_jobs)
    assert training.spare_cores(settings, parts) == workers
