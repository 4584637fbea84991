"""Trained detectors in a real MLflow registry: lineage tags and semantic versions.

MAJOR when the feature schema changes, MINOR on retraining with new data, PATCH when only the
detector's configuration changed. Scores name the exact version they came from.
"""

import dataclasses
from datetime import UTC, datetime

import pandas as pd
import pytest

from refrig_assets.core.model_config import load_model_config
from refrig_assets.core.settings import MODELS_DIR
from refrig_assets.scoring.score import score_windows
from refrig_assets.training.fit import train_detector
from refrig_assets.training.registry import ModelRegistry
from tools.benchmarks.scoring import START, synthetic_features

MODEL = "statistical_baseline"
LINEAGE_TAGS = (
    "training_partitions",
    "training_data_hash",
    "config_hash",
    "code_version",
    "run_id",
    "feature_schema",
    "semver",
)


@pytest.fixture
def registry(refrig_home) -> ModelRegistry:
    from refrig_assets.core.settings import get_settings

    s = get_settings()
    return ModelRegistry(s.mlflow_tracking_uri, s.mlflow_artifacts_dir)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return synthetic_features(devices=30, hours=3, seed=1)


def hours(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    return frame[frame["window_start"] < pd.Timestamp(START) + pd.Timedelta(hours=n)]


def models_dir_with(tmp_path, **overrides) -> str:
    """A copy of models/ whose statistical_baseline file has some top-level settings changed."""
    import yaml

    d = tmp_path / "models"
    d.mkdir(exist_ok=True)
    for f in MODELS_DIR.glob("*.yaml"):
        (d / f.name).write_text(f.read_text())
    spec = yaml.safe_load((d / f"{MODEL}.yaml").read_text()) | overrides
    (d / f"{MODEL}.yaml").write_text(yaml.safe_dump(spec))
    return d


def register(registry, config, frame, partitions, run_id="run-1", **lineage_changes):
    detector, lineage, metrics = train_detector(config, frame, partitions, run_id)
    lineage = dataclasses.replace(lineage, **lineage_changes)
    return detector, registry.register(detector, lineage, metrics)


def test_a_version_carries_its_lineage(registry, features):
    config = load_model_config(MODEL)
    _, version = register(registry, config, hours(features, 2), "2026-01-01T00..2026-01-01T01")
    tags = registry.version_tags(MODEL, version)
    for tag in LINEAGE_TAGS:
        assert tags.get(tag), tag
    assert tags["training_partitions"] == "2026-01-01T00..2026-01-01T01"
    assert tags["config_hash"] == config.config_hash
    assert tags["run_id"] == "run-1"
    assert tags["semver"] == "1.0.0"


def test_semver_bumps_patch_for_config_minor_for_data_major_for_schema(
    registry, features, tmp_path
):
    base = load_model_config(MODEL)
    two_hours, three_hours = hours(features, 2), hours(features, 3)
    _, v1 = register(registry, base, two_hours, "h0..h1")
    changed = load_model_config(MODEL, models_dir_with(tmp_path, flag_threshold=0.9))
    assert changed.config_hash != base.config_hash
    _, v2 = register(registry, changed, two_hours, "h0..h1")
    _, v3 = register(registry, changed, three_hours, "h0..h2")
    _, v4 = register(registry, changed, three_hours, "h0..h2", feature_schema="schema-v2")
    semvers = [registry.version_tags(MODEL, v)["semver"] for v in (v1, v2, v3, v4)]
    assert semvers == ["1.0.0", "1.0.1", "1.1.0", "2.0.0"]


def test_scores_name_the_version_that_made_them_and_reload_identically(registry, features):
    config = load_model_config(MODEL)
    detector, version = register(registry, config, hours(features, 2), "h0..h1")
    scored_at = datetime(2026, 1, 1, 3, tzinfo=UTC)
    direct = score_windows(detector, version, features, scored_at)
    loaded = score_windows(registry.load(MODEL, version), version, features, scored_at)
    pd.testing.assert_frame_equal(direct, loaded)
    assert set(direct["model_version"]) == {version}
    assert set(direct["model_id"]) == {MODEL}
