"""The model registry: SEED.md's layout mirrored in the models table, sha256-verified loads
that fall back instead of crashing, atomic writes, and timeframe-then-asset model lookup."""

import hashlib
import json
import os

import joblib
import numpy as np
import pandas as pd
import pytest

from alpha12 import models, training
from alpha12.clock import ManualClock
from alpha12.config import Settings
from alpha12.features import FEATURE_NAMES
from alpha12.registry import (
    FALLBACK_INTERVAL,
    MODEL_CACHE_SIZE,
    Registry,
    RegistryError,
)
from alpha12.vocabulary import ModelStatus
from tests.conftest import backfilled_1h_store

SETTINGS = Settings()
NOW = pd.Timestamp("2025-02-01", tz="UTC")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two different 1h models (trained as of two times) and rows to predict."""
    store = backfilled_1h_store(tmp_path_factory.mktemp("training"), 30)
    fitted = [
        models.fit(
            training.training_frame(store, SETTINGS, "BTC", "1h", NOW - days),
            SETTINGS.timeframe("1h"),
        )
        for days in (pd.Timedelta(days=3), pd.Timedelta(0))
    ]
    inputs = store.query(f"SELECT {', '.join(FEATURE_NAMES)} FROM snapshots").dropna()
    store.close()
    assert all(isinstance(model, models.TrainedModel) for model in fitted)
    return fitted, inputs


@pytest.fixture
def registry(store, tmp_path) -> Registry:
    return Registry(tmp_path / "timeframe_models", store, ManualClock(NOW))


@pytest.fixture
def two_versions(registry, trained):
    """BTC 1h with v1 (retired) and v2 (active)."""
    (first, second), _ = trained
    registry.register("BTC", "1h", first, NOW - pd.Timedelta(days=3), "test")
    registry.register("BTC", "1h", second, NOW, "test")
    return registry


def served_predictions(served, inputs) -> np.ndarray:
    return served.model.predict_proba(inputs)


def expected_predictions(trained, version: int) -> np.ndarray:
    models_, inputs = trained
    return models_[version - 1].predict_proba(inputs)


def registry_events(store) -> pd.DataFrame:
    return store.query("SELECT * FROM events WHERE component = 'registry' ORDER BY id")


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- layout ------------------------------------------------------------------------------


def test_layout_and_the_models_table_mirror_each_other(two_versions, store, tmp_path):
    pair = tmp_path / "timeframe_models" / "BTC_1h"
    assert pair == two_versions.pair_dir("BTC", "1h")
    for version in (1, 2):
        assert (pair / "versions" / f"v{version}" / "model.joblib").is_file()
        assert (pair / "versions" / f"v{version}" / "meta.json").is_file()
    v2 = pair / "versions" / "v2"
    assert (pair / "model.joblib").read_bytes() == (v2 / "model.joblib").read_bytes()
    assert (pair / "meta.json").read_bytes() == (v2 / "meta.json").read_bytes()
    assert not [p for p in pair.rglob(".*")]  # no temp files left behind

    table = store.query("SELECT * FROM models ORDER BY version")
    assert table["version"].tolist() == [1, 2]
    assert table["status"].tolist() == [ModelStatus.RETIRED, ModelStatus.ACTIVE]
    assert (table["scope"] == "timeframe").all() and (table["trigger"] == "test").all()
    for row in table.itertuples():
        folder = pair / "versions" / f"v{row.version}"
        meta = json.loads((folder / "meta.json").read_text())
        assert row.path == str(folder / "model.joblib")
        assert row.sha256 == meta["sha256"] == sha256(folder / "model.joblib")
        assert (row.rows, row.version) == (meta["rows"], meta["version"])
        assert pd.Timestamp(row.as_of) == pd.Timestamp(meta["as_of"])
        assert pd.Timestamp(row.trained_at) == pd.Timestamp(meta["trained_at"]) == NOW
        assert json.loads(row.metrics)["brier"] == pytest.approx(meta["metrics"]["brier"])


def test_the_active_version_serves_and_a_rollback_serves_the_earlier_one(two_versions, trained):
    _, inputs = trained
    served = two_versions.load_active("BTC", "1h")
    assert (served.version, served.scope) == (2, "timeframe")
    np.testing.assert_array_equal(
        served_predictions(served, inputs), expected_predictions(trained, 2)
    )
    two_versions.activate("BTC", "1h", 1)
    served = two_versions.load_active("BTC", "1h")
    assert served.version == 1 == two_versions.active_version("BTC", "1h")
    np.testing.assert_array_equal(
        served_predictions(served, inputs), expected_predictions(trained, 1)
    )


def test_memory_holds_every_served_pair_beyond_the_bound(registry, trained, monkeypatch):
    """More pairs than MODEL_CACHE_SIZE: each cycle still finds every model in memory (a cache
    smaller than a cycle read all of them from their files again, every cycle)."""
    (model, _), _ = trained
    pairs = [(f"A{i:03d}", FALLBACK_INTERVAL) for i in range(MODEL_CACHE_SIZE + 6)]
    for asset, interval in pairs:
        registry.register(asset, interval, model, NOW, "test")
    for asset, interval in pairs:
        registry.load_active(asset, interval)
    monkeypatch.setattr(joblib, "load", lambda _: pytest.fail("a served model was read again"))
    assert all(registry.load_active(*pair).model is not None for pair in pairs)


def test_memory_holds_one_version_per_pair_a_superseded_one_is_read_again(two_versions, trained):
    """Every recalibration adds a version: the cache keeps the one that serves, not the history
    (the soak's registry filled with superseded models, RELIABILITY.md)."""
    _, inputs = trained
    assert two_versions.load_active("BTC", "1h").version == 2
    two_versions.activate("BTC", "1h", 1)
    assert two_versions.load_active("BTC", "1h").version == 1
    assert list(two_versions._cache) == [("BTC", "1h", 1)]
    two_versions.activate("BTC", "1h", 2)
    served = two_versions.load_active("BTC", "1h")
    assert list(two_versions._cache) == [("BTC", "1h", 2)]
    np.testing.assert_array_equal(
        served_predictions(served, inputs), expected_predictions(trained, 2)
    )


def test_memory_holds_a_pairs_shadow_beside_its_serving_model(two_versions, trained, monkeypatch):
    """A cycle loads a pair's serving model and its challenger in shadow every bar: neither
    evicts the other (each was read from its file again every cycle)."""
    first, _ = trained[0]
    shadow = two_versions.register("BTC", "1h", first, NOW, "test", status=ModelStatus.SHADOW)
    for _ in range(2):
        assert two_versions.load_active("BTC", "1h").version == 2
        assert two_versions.load_shadow("BTC", "1h").version == shadow
    monkeypatch.setattr(joblib, "load", lambda _: pytest.fail("a model was read again"))
    assert two_versions.load_active("BTC", "1h").version == 2
    assert two_versions.load_shadow("BTC", "1h").version == shadow


def test_a_rejected_challenger_is_kept_but_never_serves(two_versions, trained, store):
    first, _ = trained[0]
    version = two_versions.register("BTC", "1h", first, NOW, "test", status=ModelStatus.REJECTED)
    assert version == 3
    assert (two_versions.pair_dir("BTC", "1h") / "versions" / "v3" / "model.joblib").is_file()
    assert two_versions.load_active("BTC", "1h").version == 2
    statuses = store.query("SELECT version, status FROM models ORDER BY version")
    assert statuses["status"].tolist() == [
        ModelStatus.RETIRED,
        ModelStatus.ACTIVE,
        ModelStatus.REJECTED,
    ]


# --- damaged files ------------------------------------------------------------------------


def test_a_corrupted_top_level_file_serves_the_kept_copy_and_is_restored(
    two_versions, trained, store
):
    active = two_versions.pair_dir("BTC", "1h") / "model.joblib"
    active.write_bytes(b"\x00not a model" * 100)
    served = two_versions.load_active("BTC", "1h")
    assert served.version == 2  # versions/v2 still verifies, so v2 keeps serving
    np.testing.assert_array_equal(
        served_predictions(served, trained[1]), expected_predictions(trained, 2)
    )
    events = registry_events(store)
    assert events["level"].tolist() == ["error", "warning"]
    assert "v2" in events["message"].iloc[0] and "refused" in events["message"].iloc[0]
    assert "restored" in events["message"].iloc[1]
    assert (events["asset"].iloc[0], events["interval"].iloc[0]) == ("BTC", "1h")
    assert (
        hashlib.sha256(active.read_bytes()).hexdigest()
        == two_versions.versions("BTC", "1h").set_index("version").loc[2, "sha256"]
    )


def test_a_corrupted_active_version_falls_back_to_the_previous_version(
    two_versions, trained, store
):
    folder = two_versions.pair_dir("BTC", "1h")
    for path in (folder / "model.joblib", folder / "versions" / "v2" / "model.joblib"):
        path.write_bytes(b"\x00not a model" * 100)
    for _ in range(3):  # asked again and again (every tick), it is reported once per file
        served = two_versions.load_active("BTC", "1h")
    assert served.version == 1
    np.testing.assert_array_equal(
        served_predictions(served, trained[1]), expected_predictions(trained, 1)
    )
    events = registry_events(store)
    assert len(events) == 2 and set(events["level"]) == {"error"}
    assert all("v2" in m and "refused" in m for m in events["message"])


def test_every_version_corrupted_serves_nothing_and_never_raises(two_versions, store):
    for path in two_versions.pair_dir("BTC", "1h").rglob("model.joblib"):
        path.write_bytes(b"garbage")
    assert two_versions.load_active("BTC", "1h") is None
    assert two_versions.load_timeframe_model("BTC", "1h") is None
    assert len(registry_events(store)) >= 2


def test_a_swapped_model_file_is_refused_by_its_sha256(two_versions, trained, store):
    """A valid joblib of another model in the active slot must not serve."""
    first = trained[0][0]
    imposter = models.TrainedModel(**{**vars(first), "rows": first.rows + 1})
    folder = two_versions.pair_dir("BTC", "1h")
    for path in (folder / "model.joblib", folder / "versions" / "v2" / "model.joblib"):
        joblib.dump(imposter, path)
    served = two_versions.load_active("BTC", "1h")
    assert served.version == 1 and served.model.rows == first.rows
    assert "sha256" in registry_events(store)["message"].iloc[0]


def test_a_model_written_in_joblibs_format_before_2026_11_still_serves(
    two_versions, trained, store
):
    """Registries written by earlier releases hold joblib files: they load, verify and predict
    as they did, while new versions are plain pickles."""
    (_, second), inputs = trained
    folder = two_versions.pair_dir("BTC", "1h")
    kept = folder / "versions" / "v2" / "model.joblib"
    assert kept.read_bytes()[:2] == b"\x80\x05"  # written now: a protocol-5 pickle
    for path in (folder / "model.joblib", kept):
        joblib.dump(second, path)
    with store.transaction() as cursor:  # the record an earlier release wrote for that file
        cursor.execute("UPDATE models SET sha256 = ? WHERE version = 2", [sha256(kept)])
    reopened = Registry(folder.parent, store, ManualClock(NOW))
    served = reopened.load_active("BTC", "1h")
    assert served.version == 2
    np.testing.assert_array_equal(served_predictions(served, inputs), second.predict_proba(inputs))
    assert registry_events(store).empty


# --- interrupted writes ---------------------------------------------------------------------


@pytest.mark.parametrize("failing_replace", [1, 2, 3, 4])
def test_a_write_killed_midway_leaves_the_previous_model_serving(
    registry, trained, store, monkeypatch, failing_replace
):
    """register makes four os.replace calls (version's model and meta, then the active
    model and meta, in some order); the process dies at each one in turn."""
    (first, second), inputs = trained
    registry.register("BTC", "1h", first, NOW, "test")
    real_replace, calls = os.replace, []

    def dying_replace(source, target):
        calls.append(target)
        if len(calls) == failing_replace:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(RegistryError, match="No space left on device"):
        registry.register("BTC", "1h", second, NOW, "test")
    monkeypatch.setattr(os, "replace", real_replace)

    served = registry.load_timeframe_model("BTC", "1h")
    assert served is not None and served.version == 1
    np.testing.assert_array_equal(
        served_predictions(served, inputs), expected_predictions(trained, 1)
    )
    assert registry.active_version("BTC", "1h") == 1
    assert registry_events(store).empty  # the previous model serves from its own slot
    assert not list(registry.pair_dir("BTC", "1h").rglob(".*"))  # temp files cleaned up
    # ...and the next registration succeeds.
    version = registry.register("BTC", "1h", second, NOW, "test")
    assert registry.load_active("BTC", "1h").version == version


# --- which model serves a pair ---------------------------------------------------------------


def test_the_pair_model_first_then_the_asset_fallback(registry, trained, store):
    (first, second), inputs = trained
    assert registry.load_timeframe_model("BTC", "1h") is None
    registry.register("BTC", FALLBACK_INTERVAL, first, NOW, "test")
    registry.register("BTC", "1h", second, NOW, "test")
    own = registry.load_timeframe_model("BTC", "1h")
    assert (own.interval, own.scope, own.version) == ("1h", "timeframe", 1)
    np.testing.assert_array_equal(served_predictions(own, inputs), expected_predictions(trained, 2))
    fallback = registry.load_timeframe_model("BTC", "4h")
    assert (fallback.interval, fallback.scope) == (FALLBACK_INTERVAL, "fallback")
    np.testing.assert_array_equal(
        served_predictions(fallback, inputs), expected_predictions(trained, 1)
    )
    assert registry.load_timeframe_model("ETH", "1h") is None
    assert store.scalar("SELECT scope FROM models WHERE interval = 'all'") == "fallback"
    # A pair whose own model cannot be loaded is served by the asset's fallback.
    for path in registry.pair_dir("BTC", "1h").rglob("model.joblib"):
        path.write_bytes(b"garbage")
    assert registry.load_timeframe_model("BTC", "1h").scope == "fallback"
