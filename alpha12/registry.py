"""Per-asset/timeframe model storage on disk, laid out as SEED.md says, mirrored in `models`.

    runs/timeframe_models/{asset}_{interval}/model.joblib   the active model
    runs/timeframe_models/{asset}_{interval}/meta.json      its metadata, incl. sha256
    runs/timeframe_models/{asset}_{interval}/versions/vN/   every version ever trained

An asset's fallback model (its timeframes pooled) lives under {asset}_all. Files are written
atomically (temp file + os.replace) and a model is loaded only when its sha256 matches the
record; a mismatch or unreadable file is an event, and the newest earlier valid version serves.
A model file is a plain pickle (protocol 5, C speed: an eighth of joblib's time to write, a
fifteenth to read); files written before 2026-11 are joblib's format and still load.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import platform
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import joblib
import pandas as pd
import sklearn

from alpha12.clock import Clock
from alpha12.errors import UserError
from alpha12.models import TrainedModel
from alpha12.store import Store, to_json
from alpha12.vocabulary import FALLBACK_INTERVAL, ModelStatus

MODEL_METRICS = (
    "brier",
    "roc_auc",
    "log_loss",
    "ece",
    "base_rate",
    "signal_trades",
    "signal_win_rate",
    "signal_profit_factor",
)
# Verified models kept in memory: per pair and per asset's fallback, the version that last
# served (a recalibration's new version replaces its predecessor) and a challenger in shadow
# beside it (it predicts every bar too); at most this many in all, or as many as the pairs the
# registry serves need if they are more: a cache smaller than one cycle's models reads every
# one of them from its file again each cycle (100 assets: 100 fallbacks, 12 s of a 22 s cycle).
# A superseded version asked for again (a rollback, a corrupt active file) is read and verified
# from its file. A loaded model takes about 1 MB (the soak, RELIABILITY.md).
MODEL_CACHE_SIZE = 64


class RegistryError(UserError):
    """A model could not be written (disk full, read-only folder, ...)."""


@dataclass(frozen=True)
class ServedModel:
    """A model ready to predict, and which one it is."""

    model: TrainedModel
    asset: str
    interval: str  # the pair's timeframe, or "all" for the asset's fallback
    version: int

    @property
    def scope(self) -> str:
        return "fallback" if self.interval == FALLBACK_INTERVAL else "timeframe"


class Registry:
    def __init__(self, root: str | Path, store: Store, clock: Clock):
        self.root = Path(root)
        self.store = store
        self.clock = clock
        # Verified models by (asset, interval, version), least recently used first, one version
        # per (asset, interval): bounded, because every recalibration adds a version and a
        # process runs for months.
        # (asset, interval, version) -> (file signature, model, shadow or not)
        self._cache: OrderedDict[tuple[str, str, int], tuple[tuple, TrainedModel, bool]] = (
            OrderedDict()
        )
        self._lock = threading.RLock()
        self._refused: set[tuple] = set()  # bad files already reported
        self._servable: dict[tuple[str, str], list[tuple[int, str, str]]] = {}

    def pair_dir(self, asset: str, interval: str) -> Path:
        """The pair's folder, always directly inside the registry's root."""
        name = f"{asset}_{interval}"
        if Path(name).name != name or name.startswith("."):
            raise RegistryError(f"{asset!r} {interval!r}: not a name a model folder can have")
        return self.root / name

    # -- writing -------------------------------------------------------------------------

    def register(
        self,
        asset: str,
        interval: str,
        trained: TrainedModel,
        as_of: pd.Timestamp,
        trigger: str,
        status: str = ModelStatus.ACTIVE,
    ) -> int:
        """Store a new version (active, or rejected for a losing challenger); its number."""
        with self._lock:
            version = self._next_version(asset, interval)
            folder = self.pair_dir(asset, interval) / "versions" / f"v{version}"
            model_path = folder / "model.joblib"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                digest = _dump_atomic(trained, model_path)
                meta = _meta(
                    asset, interval, version, trained, as_of, trigger, digest, self.clock.now()
                )
                _write_atomic(folder / "meta.json", to_json(meta, indent=2).encode())
                if status == ModelStatus.ACTIVE:
                    self._publish(asset, interval, version)
            except (OSError, RegistryError) as error:
                # Nothing refers to the half-written version: remove it, the table never saw it.
                shutil.rmtree(folder, ignore_errors=True)
                if isinstance(error, RegistryError):
                    raise
                raise RegistryError(
                    f"cannot write model {asset} {interval} v{version} to "
                    f"{folder}: {error.strerror or error}"
                ) from None
            self.store.insert_model(  # the new row and its activation together
                {
                    "asset": asset,
                    "interval": interval,
                    "version": version,
                    "scope": _scope(interval),
                    "trained_at": meta["trained_at"],
                    "as_of": as_of,
                    "rows": trained.rows,
                    "window_start": trained.window_start,
                    "window_end": trained.window_end,
                    "metrics": to_json(meta["metrics"]),
                    "path": str(model_path),
                    "sha256": digest,
                    "status": status,
                    "trigger": trigger,
                }
            )
            self._servable.pop((asset, interval), None)
            return version

    def activate(self, asset: str, interval: str, version: int) -> None:
        """Make `version` the one that serves (also a roll-back to an earlier version)."""
        with self._lock:
            self._servable.pop((asset, interval), None)
            self._publish(asset, interval, version)
            self.store.activate_model(asset, interval, version)

    def reject(self, asset: str, interval: str, version: int) -> None:
        """Mark `version` rejected (a shadow challenger that lost)."""
        with self._lock:
            self._servable.pop((asset, interval), None)
            self.store.set_model_status(asset, interval, version, ModelStatus.REJECTED)

    def _publish(self, asset: str, interval: str, version: int) -> None:
        """Copy version's files to the pair's top level (the SEED layout's active model)."""
        folder = self.pair_dir(asset, interval)
        source = folder / "versions" / f"v{version}"
        try:
            # Both files are written in full before either replaces its old copy, so a full
            # disk or a read-only folder leaves the previous model and its meta.json together.
            _write_all_atomic(
                {
                    folder / "meta.json": (source / "meta.json").read_bytes(),
                    folder / "model.joblib": (source / "model.joblib").read_bytes(),
                }
            )
        except OSError as error:
            raise RegistryError(
                f"cannot activate {asset} {interval} v{version}: {error.strerror or error}"
            ) from None

    # -- reading -------------------------------------------------------------------------

    def model_card(self, asset: str, interval: str) -> dict | None:
        """The model serving the pair (its own or the fallback): its record, metrics, feature
        importances and hyper-parameters; None when no model serves."""
        served = self.load_timeframe_model(asset, interval)
        if served is None:
            return None
        record = self.store.model_record(served.asset, served.interval, served.version)
        meta = self.version_meta(served.asset, served.interval, served.version)
        return {
            **{k: v for k, v in record.items() if k not in ("metrics", "path", "sha256")},
            "metrics": _json_numbers(record["metrics"]),
            "importances": meta.get("feature_importances", {}),
            "hyper_parameters": meta.get("hyper_parameters", {}),
        }

    def version_table(self, asset: str, interval: str) -> pd.DataFrame:
        """Every version of the pair's model, newest first, with its headline metrics
        (MODEL_METRICS) as columns."""
        versions = self.versions(asset, interval)
        metrics = pd.DataFrame(
            [_json_numbers(m) for m in versions["metrics"]], columns=list(MODEL_METRICS)
        )
        return pd.concat([versions.drop(columns=["metrics", "path", "sha256"]), metrics], axis=1)

    def version_meta(self, asset: str, interval: str, version: int) -> dict:
        """A version's meta.json (importances, hyper-parameters, ...); {} when unreadable,
        which only costs a model card its details."""
        path = self.pair_dir(asset, interval) / "versions" / f"v{version}" / "meta.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def versions(self, asset: str, interval: str) -> pd.DataFrame:
        return self.store.model_versions(asset, interval)

    def active_version(self, asset: str, interval: str) -> int | None:
        return self.store.active_version(asset, interval)

    def load_timeframe_model(self, asset: str, interval: str) -> ServedModel | None:
        """The pair's own model; only when it has none, the asset's fallback; else None."""
        return self.load_active(asset, interval) or self.load_active(asset, FALLBACK_INTERVAL)

    def load_active(self, asset: str, interval: str) -> ServedModel | None:
        """The active version if it verifies (its top-level copy, else its kept copy under
        versions/, which then repairs the top level), else the newest earlier valid version."""
        with self._lock:  # never observe an activation half done (files new, table old)
            candidates = self._candidates(asset, interval)
            serving = [c for c in candidates if c[2] != ModelStatus.SHADOW]
            return self._first_valid(asset, interval, serving)

    def load_shadow(self, asset: str, interval: str) -> ServedModel | None:
        """The pair's challenger in shadow, if it has one and its file verifies."""
        with self._lock:
            candidates = self._candidates(asset, interval)
            shadow = [c for c in candidates if c[2] == ModelStatus.SHADOW]
            return self._first_valid(asset, interval, shadow)

    def prepare(self, pairs: list[tuple[str, str]]) -> None:
        """Look up the servable versions of the pairs and of their assets' fallbacks that
        are not remembered yet, in one query (a cycle serves hundreds of pairs)."""
        keys = {
            (asset, scope) for asset, interval in pairs for scope in (interval, FALLBACK_INTERVAL)
        }
        with self._lock:
            unknown = sorted(keys - self._servable.keys())
            if unknown:
                self._servable.update(self.store.servable_versions_of(unknown))

    def _candidates(self, asset: str, interval: str) -> list[tuple[int, str, str]]:
        """The servable versions, active first, and the one in shadow; remembered until this
        registry changes them (this process is the store's only writer), so the live cycle
        does not query per bar."""
        key = (asset, interval)
        if key not in self._servable:
            self._servable[key] = self.store.servable_versions(asset, interval)
        return self._servable[key]

    def _first_valid(self, asset: str, interval: str, candidates) -> ServedModel | None:
        folder = self.pair_dir(asset, interval)
        for version, sha256, status in candidates:
            kept = folder / "versions" / f"v{version}" / "model.joblib"
            paths = [folder / "model.joblib", kept] if status == ModelStatus.ACTIVE else [kept]
            shadow = status == ModelStatus.SHADOW
            for path in paths:
                model = self._verified(asset, interval, version, path, sha256, shadow)
                if model is None:
                    continue
                if path == kept and status == ModelStatus.ACTIVE:
                    self._repair(asset, interval, version)
                return ServedModel(model, asset, interval, version)
        return None

    def _verified(self, asset, interval, version, path: Path, sha256: str, shadow: bool):
        """The model at `path` if its bytes hash to `sha256`, else None (and one event per bad
        file, however often it is asked for). Cached in place of the pair's other version in
        the same role (serving or shadow)."""
        key = (asset, interval, version)
        signature = None
        try:
            stat = path.stat()
            signature = (str(path), stat.st_mtime_ns, stat.st_size)
            cached = self._cache.get(key)
            if cached and cached[0] == signature:
                self._cache.move_to_end(key)
                return cached[1]
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha256:
                raise ValueError("its sha256 does not match the registry (file changed)")
            model = _unpickle(data)  # the verified bytes, not the file again
            if not isinstance(model, TrainedModel):
                raise ValueError("it is not an alpha12 model")
        except Exception as error:  # corrupt, missing, swapped or unpicklable: never crash
            if signature not in self._refused:
                self._refused.add(signature)
                self.store.log_event(
                    self.clock.now(),
                    "error",
                    "registry",
                    f"model v{version} at {path} refused: {error}; trying another copy",
                    asset,
                    interval,
                )
            return None
        superseded = [
            k
            for k, kept in self._cache.items()
            if k[:2] == key[:2] and k != key and kept[2] == shadow
        ]
        for other in superseded:
            del self._cache[other]  # kept, it would only fill the cache
        self._cache[key] = (signature, model, shadow)
        self._cache.move_to_end(key)
        while len(self._cache) > max(MODEL_CACHE_SIZE, 2 * len(self._servable)):
            self._cache.popitem(last=False)
        return model

    def _repair(self, asset: str, interval: str, version: int) -> None:
        """Restore the top-level copy of the active model from its verified kept copy."""
        try:
            self._publish(asset, interval, version)
        except RegistryError as error:
            self.store.log_event(self.clock.now(), "error", "registry", str(error), asset, interval)
            return
        self.store.log_event(
            self.clock.now(),
            "warning",
            "registry",
            f"restored the top-level model file from versions/v{version}",
            asset,
            interval,
        )

    def _next_version(self, asset: str, interval: str) -> int:
        return self.store.latest_version(asset, interval) + 1


def _scope(interval: str) -> str:
    return "fallback" if interval == FALLBACK_INTERVAL else "timeframe"


def _meta(asset, interval, version, trained: TrainedModel, as_of, trigger, digest, now) -> dict:
    return {
        "asset": asset,
        "interval": interval,
        "scope": _scope(interval),
        "version": version,
        "trained_at": now.isoformat(),
        "as_of": pd.Timestamp(as_of).isoformat(),
        "rows": trained.rows,
        "window": [trained.window_start.isoformat(), trained.window_end.isoformat()],
        "features": list(trained.features),
        "hyper_parameters": trained.params,
        "metrics": trained.metrics,
        "feature_importances": trained.importances,
        "library_versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "pandas": pd.__version__,
            "joblib": joblib.__version__,
        },
        "trigger": trigger,
        "sha256": digest,
    }


def _dump_atomic(model: TrainedModel, path: Path) -> str:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".model-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            pickle.dump(model, file, protocol=5)
            file.flush()
            os.fsync(file.fileno())
        digest = _sha256(Path(temp))
        os.replace(temp, path)
        return digest
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _unpickle(data: bytes):
    """A model file's object: a plain pickle, or joblib's format (files written before 2026-11),
    which pickle refuses at its first array and only joblib reads."""
    try:
        return pickle.loads(data)
    except pickle.UnpicklingError:
        return joblib.load(io.BytesIO(data))


def _write_atomic(path: Path, data: bytes) -> None:
    _write_all_atomic({path: data})


def _write_all_atomic(files: dict[Path, bytes]) -> None:
    """Write every file to a temp file beside it, then rename them all into place: a failed
    write (disk full, no permission) replaces none of them."""
    temps: list[str] = []
    try:
        for path, data in files.items():
            handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
            temps.append(temp)
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
        for temp, path in zip(temps, files, strict=True):
            os.replace(temp, path)
    except BaseException:
        for temp in temps:
            Path(temp).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json_numbers(value: str | dict | None) -> dict:
    """A metrics JSON column as a dict, with the "inf" strings JSON needed back as floats."""
    parsed = json.loads(value) if isinstance(value, str) else dict(value or {})
    return {key: float(item) if item in ("inf", "-inf") else item for key, item in parsed.items()}
