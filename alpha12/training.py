"""What models train on and where: the training frames a model may learn from as of a time,
and the backend that fits them — this machine's cores, or a Dask cluster, chosen by a setting.

Training fans out through joblib, so the choice is joblib's backend: its default process pool
locally (`backend = "local"`), or its Dask backend (`backend = "dask"`, `dask_scheduler =
"tcp://host:port"`). Either way the store stays single-writer in this process: workers get
only training frames and return fitted models with their metrics, which are checked here
before anyone registers them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import joblib
import numpy as np
import pandas as pd

from alpha12 import models, snapshots
from alpha12.config import Settings, TimeframeSettings
from alpha12.errors import TransientError
from alpha12.features import FEATURE_NAMES, TAIL_BARS
from alpha12.store import Store

CONNECT_TIMEOUT_S = 10

_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


class ComputeError(TransientError):
    """The cluster cannot be reached, or a worker sent back something unusable."""


def labelled_history(
    store: Store,
    settings: Settings,
    asset: str,
    interval: str,
    as_of: pd.Timestamp | None = None,
    newest: int | None = None,
) -> pd.DataFrame:
    """Every labelled snapshot of the pair with both directions' outcomes, oldest first; or,
    given `as_of` and `newest`, only the newest rows whose label was known `as_of`.

    Columns: ts, target_ts, label, pnl_long, short_target_ts, pnl_short and the features.
    Only `snapshots.as_of_view` of it may be shown to a model.
    """
    labelled = store.labelled_snapshots(asset, interval, known_by=as_of, newest=newest)
    start = labelled["ts"].iloc[0] if newest is not None and len(labelled) else None
    # The short outcomes' ATR is recursive: TAIL_BARS before the first row reproduce its
    # full-history value, as they do for the live tail's features.
    bars = store.read_bars(asset, interval, start=start, warmup=TAIL_BARS)
    return snapshots.with_short_outcomes(labelled, bars, interval, settings)


def training_frame(
    store: Store, settings: Settings, asset: str, interval: str, as_of: pd.Timestamp
) -> pd.DataFrame:
    """The rows a model trained `as_of` may learn from: the timeframe's `train_rows` newest
    (see `labelled_history`). Only those rows are read, so a retrain costs the same on a
    year of history as on a month."""
    rows = settings.timeframe(interval).train_rows
    history = labelled_history(store, settings, asset, interval, as_of=as_of, newest=rows)
    return snapshots.as_of_view(history, as_of, rows)


def pooled_training_frame(
    store: Store, settings: Settings, asset: str, as_of: pd.Timestamp
) -> pd.DataFrame:
    """All of an asset's timeframes together, for its fallback model, oldest first: each
    timeframe's own training window (its `train_rows`), so the coarse timeframes are not
    crowded out by the 5m rows. `models.fit` purges each row by its own label time."""
    frames = [training_frame(store, settings, asset, i, as_of) for i in settings.intervals]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return training_frame(store, settings, asset, settings.intervals[0], as_of)
    return pd.concat(frames).sort_values("ts", kind="stable").reset_index(drop=True)


def fit_many(
    frames: list[tuple[pd.DataFrame, TimeframeSettings]], settings: Settings
) -> list[models.TrainedModel | models.Insufficient]:
    """Train one model per (frame, thresholds), in parallel on the configured backend. Each
    result is checked against its frame: one that fails comes back as its ComputeError, so
    one bad answer never costs the other models."""
    if not frames:
        return []
    if settings.backend == "local" and len(frames) == 1:  # its two halves over the cores
        frame, timeframe = frames[0]
        results = [models.fit(frame, timeframe, settings.seed, workers=spare_cores(settings, 1))]
    else:
        tasks = [(frame, timeframe, settings.seed) for frame, timeframe in frames]
        results = run_tasks(models.fit, tasks, settings)
    return [_checked(result, frame) for result, (frame, _) in zip(results, frames, strict=True)]


def spare_cores(settings: Settings, parts: int) -> int:
    """Processes each of `parts` pieces of work run side by side may fit a model with
    (models.fit's `workers`): the local cores they leave idle (a lone walk uses both of two
    cores); 1 on a cluster, whose workers are busy with the other pieces."""
    if settings.backend != "local" or parts >= settings.n_jobs:
        return 1
    return settings.n_jobs // max(parts, 1)


def run_tasks(function, tasks: list[tuple], settings: Settings) -> list:
    """function(*task) for every task, in parallel on the configured backend; results in
    order. `function` and the tasks must pickle: plain data in, plain data out."""
    with _backend(settings):
        return joblib.Parallel(n_jobs=_n_jobs(settings, len(tasks)))(
            joblib.delayed(function)(*task) for task in tasks
        )


def results_as_done(function, tasks: Iterator[tuple], count: int, settings: Settings) -> Iterator:
    """function(*task) for up to `count` tasks on the configured backend, each result as soon
    as it is ready (in any order). `tasks` is read only as a worker frees up, so a generator
    that stops early starts nothing more, while the tasks already running finish and are
    yielded: a run cancelled between tasks keeps all it started."""
    with _backend(settings):
        yield from joblib.Parallel(
            n_jobs=_n_jobs(settings, max(count, 1)),
            return_as="generator_unordered",
            pre_dispatch="n_jobs",
            batch_size=1,
        )(joblib.delayed(function)(*task) for task in tasks)


def _checked(result, frame: pd.DataFrame):
    try:
        return verified(result, frame)
    except ComputeError as error:
        return error


def verified(result, frame: pd.DataFrame):
    """`result` if it is what models.fit returns for `frame`; ComputeError otherwise."""
    if isinstance(result, models.Insufficient):
        return result
    if not isinstance(result, models.TrainedModel):
        raise ComputeError(f"a worker returned {type(result).__name__}, not a trained model")
    rows = frame.dropna(subset=[*FEATURE_NAMES, "label"])
    if tuple(result.features) != FEATURE_NAMES or result.rows != len(rows):
        raise ComputeError(
            f"a worker's model does not match its training frame "
            f"({result.rows} rows for {len(rows)}, {len(result.features)} features)"
        )
    probability = result.predict_proba(rows.iloc[-models.MIN_EVAL_ROWS :])
    if not np.all((probability >= 0) & (probability <= 1)):
        raise ComputeError("a worker's model predicts probabilities outside [0, 1]")
    return result


def _n_jobs(settings: Settings, tasks: int) -> int:
    # On a cluster every task may run at once; the cluster's workers are the limit.
    return tasks if settings.backend == "dask" else min(settings.n_jobs, tasks)


@contextmanager
def _backend(settings: Settings):
    if settings.backend == "local":
        yield
        return
    with joblib.parallel_config(backend="dask", client=dask_client(settings.dask_scheduler)):
        yield


def dask_client(address: str | None):
    """This process's client of the cluster at `address` (one per address, made on first use)."""
    if not address:
        raise ComputeError("backend = 'dask' needs dask_scheduler, e.g. tcp://host:8786")
    with _clients_lock:
        client = _clients.get(address)
        if client is None or client.status != "running":
            client = _clients[address] = _connect(address)
        return client


def _connect(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise ComputeError(
            "backend = 'dask' needs the dask and distributed packages "
            "(pip install -r requirements-dev.txt)"
        ) from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise ComputeError(f"cannot reach the Dask scheduler at {address}: {error}") from None
