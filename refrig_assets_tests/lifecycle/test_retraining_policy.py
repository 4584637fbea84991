"""Conditional retraining: only training code, models/ config, dataset or drift request a retrain."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import refrig_assets
from refrig_assets.core.model_config import MODELS_DIR, all_model_ids, load_model_config
from refrig_assets.lifecycle.retraining_policy import (
    TrainingFingerprint,
    asset_code_version,
    current_fingerprint,
    decide_retraining,
    detector_module_file,
    training_code_files,
    training_range_files,
)

MODEL = "isolation_forest"


@pytest.fixture
def project(tmp_path):
    """A copy of the package and of models/ that the test may edit."""
    package = tmp_path / "refrig_assets"
    shutil.copytree(
        Path(refrig_assets.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    features = tmp_path / "data" / "device_features"
    features.mkdir(parents=True)
    for hour in ("2026-01-01T00", "2026-01-01T01", "2026-01-01T02"):
        pd.DataFrame({"device_id": ["d1", "d2"], "x": [1.0, 2.0]}).to_parquet(
            features / f"{hour}.parquet"
        )
    return tmp_path


def fingerprint(project):
    config = load_model_config(MODEL, project / "models")
    files = training_range_files(project / "data", "2026-01-01T00..2026-01-01T01")
    return current_fingerprint(config, files, project / "refrig_assets")


def test_a_change_to_an_unrelated_module_requests_no_retraining(project):
    trained = fingerprint(project)
    notify = project / "refrig_assets" / "alerts" / "notify.py"
    notify.write_text(notify.read_text() + "\n# an unrelated change\n")
    decision = decide_retraining(MODEL, fingerprint(project), trained)
    assert not decision.retrain
    assert decision.reasons == ()
    assert "is current" in decision.summary


def test_a_models_config_change_requests_retraining(project):
    trained = fingerprint(project)
    config = project / "models" / f"{MODEL}.yaml"
    config.write_text(config.read_text() + "\nflag_threshold: 0.987\n")
    decision = decide_retraining(MODEL, fingerprint(project), trained)
    assert decision.retrain
    assert decision.reasons[0].startswith("models/ config changed")
    assert decision.summary.startswith(f"{MODEL} is stale because models/ config changed")


def test_a_change_to_the_detector_code_requests_retraining(project):
    trained = fingerprint(project)
    detector = project / "refrig_assets" / "detectors" / "isolation_forest.py"
    detector.write_text(detector.read_text() + "\n# changed scoring\n")
    decision = decide_retraining(MODEL, fingerprint(project), trained)
    assert decision.retrain
    assert decision.reasons[0].startswith("training code changed")


def test_another_detectors_code_is_not_this_detectors_training_code(project):
    trained = fingerprint(project)
    other = project / "refrig_assets" / "detectors" / "statistical_baseline.py"
    other.write_text(other.read_text() + "\n# changed\n")
    assert not decide_retraining(MODEL, fingerprint(project), trained).retrain


def test_rewritten_training_data_requests_retraining_but_a_new_later_hour_does_not(project):
    trained = fingerprint(project)
    features = project / "data" / "device_features"
    pd.DataFrame({"device_id": ["d9"], "x": [5.0]}).to_parquet(features / "2026-01-01T03.parquet")
    assert not decide_retraining(MODEL, fingerprint(project), trained).retrain
    pd.DataFrame({"device_id": ["d1"], "x": [9.0]}).to_parquet(features / "2026-01-01T01.parquet")
    decision = decide_retraining(MODEL, fingerprint(project), trained)
    assert decision.retrain
    assert decision.reasons[0].startswith("training dataset changed")


def test_drift_requests_retraining_even_when_nothing_else_changed(project):
    trained = fingerprint(project)
    decision = decide_retraining(MODEL, trained, trained, ["temperature PSI 0.41"])
    assert decision.retrain
    assert decision.reasons == ("drift asked for it: temperature PSI 0.41",)


def test_the_fingerprint_round_trips_through_materialization_metadata(project):
    trained = fingerprint(project)
    assert TrainingFingerprint.from_metadata(trained.as_metadata()) == trained
    assert TrainingFingerprint.from_metadata({"model_version": "3"}) is None
    assert decide_retraining(MODEL, trained, None).retrain


def test_the_asset_code_version_names_training_code_and_config(project):
    config = load_model_config(MODEL, project / "models")
    version = asset_code_version(config, project / "refrig_assets")
    assert version.startswith("code-") and f"config-{config.config_hash}" in version
    names = {p.name for p in training_code_files(config, project / "refrig_assets")}
    assert "isolation_forest.py" in names and "notify.py" not in names


@pytest.mark.parametrize("model_id", all_model_ids())
def test_a_detectors_training_code_is_its_registered_class_module(model_id):
    from refrig_assets.detectors.base import DETECTORS, load_detector_modules

    load_detector_modules()
    config = load_model_config(model_id)
    expected = DETECTORS[config.detector].__module__.removeprefix("refrig_assets.")
    assert detector_module_file(config) == expected.replace(".", "/") + ".py"


def test_loading_the_definitions_does_not_import_the_detectors_ml_libraries():
    # Every Dagster process (code server, run workers, sensors) loads the Definitions.
    probe = "import sys, refrig_assets.definitions; print(sorted({'torch', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
