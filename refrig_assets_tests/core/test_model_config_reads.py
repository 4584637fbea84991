"""Detector settings are read from models/ each time they are asked for, parsed once per version
of the file: an edited file is seen at once, and a caller that changes the settings it got
changes nothing for the next one."""

import os
import shutil

from refrig_assets.core.model_config import load_model_config
from refrig_assets.core.settings import MODELS_DIR
from refrig_assets.lifecycle.policy import load_policy

MODEL = "statistical_baseline"


def copy_models(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    return models


def test_an_edited_detector_file_is_read_again(tmp_path):
    models = copy_models(tmp_path)
    before = load_model_config(MODEL, models)
    path = models / f"{MODEL}.yaml"
    path.write_text(path.read_text() + "\npinned_version: '7'\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))

    after = load_model_config(MODEL, models)

    assert before.pinned_version is None
    assert after.pinned_version == "7"


def test_settings_a_caller_changes_are_not_shared_with_the_next_caller(tmp_path):
    models = copy_models(tmp_path)
    first = load_model_config(MODEL, models)
    first.settings["schedule"] = "changed by a caller"
    first.settings.setdefault("hyperparameters", {})["added"] = 1
    policy = load_policy(models, MODEL)
    policy["promotion"] = "changed by a caller"

    again = load_model_config(MODEL, models)

    assert again.settings["schedule"] == first.schedule
    assert "added" not in again.settings.get("hyperparameters", {})
    assert load_policy(models, MODEL)["promotion"] != "changed by a caller"
