"""Artifact integrity and identical retraining in a real MLflow registry.

Every version carries the sha256 of each file of its detector artifact; loading verifies it, so a
truncated or replaced artifact is refused with an error naming ``model@version`` and the file —
never joblib's raw ``EOF``. A training whose code, config, data and feature schema equal a
registered version's finds that version (the training asset reuses it instead of registering a
copy).
"""

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from refrig_assets.core.model_config import load_model_config
from refrig_assets.training.fit import train_detector, training_fingerprint
from refrig_assets.training.registry import (
    ARTIFACT_SHA256_TAG,
    CorruptArtifactError,
    ModelRegistry,
    RegistryError,
)
from tools.benchmarks.scoring import START, synthetic_features

pytestmark = pytest.mark.fault_injection

MODEL = "statistical_baseline"


@pytest.fixture
def registry(refrig_home) -> ModelRegistry:
    from refrig_assets.core.settings import get_settings

    s = get_settings()
    return ModelRegistry(s.mlflow_tracking_uri, s.mlflow_artifacts_dir)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    frame = synthetic_features(devices=20, hours=3, seed=2)
    return frame[frame["window_start"] < pd.Timestamp(START) + pd.Timedelta(hours=2)]


def register(registry, features, run_id="run-1") -> str:
    detector, lineage, metrics = train_detector(
        load_model_config(MODEL), features, "h0..h1", run_id
    )
    return registry.register(detector, lineage, metrics)


def detector_file(registry, version) -> Path:
    return Path(registry.artifact_location(MODEL, version)) / "detector.joblib"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_registration_tags_the_sha256_of_every_artifact_file(registry, features):
    version = register(registry, features)
    recorded = json.loads(registry.version_tags(MODEL, version)[ARTIFACT_SHA256_TAG])
    path = detector_file(registry, version)
    assert recorded == {"detector.joblib": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert registry.recorded_checksums(MODEL, version) == recorded
    registry.verify(MODEL, version)  # intact: no error


def test_a_truncated_artifact_is_refused_naming_model_at_version_and_the_file(registry, features):
    version = register(registry, features)
    path = detector_file(registry, version)
    truncate(path)
    with pytest.raises(CorruptArtifactError) as refused:
        ModelRegistry(registry.tracking_uri, registry.artifacts_dir).load(MODEL, version)
    message = str(refused.value)
    assert message.startswith(f"{MODEL}@{version}: artifact {path}")
    assert "recorded at registration" in message and "EOF" not in message
    assert refused.value.path == str(path) and refused.value.version == version
    assert isinstance(refused.value, RegistryError)  # callers that knew RegistryError still do


def test_an_unverifiable_artifact_that_fails_to_load_is_reported_the_same_way(registry, features):
    version = register(registry, features)
    registry.client.delete_model_version_tag(MODEL, version, ARTIFACT_SHA256_TAG)
    path = detector_file(registry, version)
    truncate(path)
    registry.verify(MODEL, version)  # nothing recorded to compare with ...
    with pytest.raises(CorruptArtifactError, match=rf"^{MODEL}@{version}: artifact .* cannot be"):
        registry.load(MODEL, version)  # ... but unpickling fails, named as such
    with pytest.raises(CorruptArtifactError):
        registry.check(MODEL, version)


def test_a_missing_artifact_is_reported_as_missing(registry, features):
    version = register(registry, features)
    detector_file(registry, version).unlink()
    with pytest.raises(CorruptArtifactError, match="detector.joblib is missing"):
        registry.load(MODEL, version)


def test_the_same_code_config_and_data_find_the_registered_version(registry, features):
    config = load_model_config(MODEL)
    version = register(registry, features)
    assert registry.version_with_fingerprint(MODEL, training_fingerprint(config, features)) == (
        version
    )
    fewer = features[features["device_id"] != features["device_id"].iloc[0]]
    assert registry.version_with_fingerprint(MODEL, training_fingerprint(config, fewer)) is None
    # the fingerprint before fitting is the lineage the registry tagged after fitting
    tags = registry.version_tags(MODEL, version)
    for key, value in training_fingerprint(config, features).items():
        assert tags[key] == value, key
