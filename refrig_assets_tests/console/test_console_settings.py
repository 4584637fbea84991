"""The operations settings file: every value checked, errors name the file and the key."""

import pytest
import yaml
from support.operator_world import write_operations_file

from refrig_assets.core.config import config_path
from refrig_assets.operations.settings import OperationsConfigError, load_operations_settings


def test_the_shipped_file_loads():
    settings = load_operations_settings()
    assert settings.feedback.false_positive_threshold == 3
    assert settings.work_orders.due_hours["CRITICAL"] > 0


def test_an_environment_variable_points_to_another_file(tmp_path, monkeypatch):
    path = write_operations_file(tmp_path, feedback={"auto_apply": True})
    monkeypatch.setenv("REFRIG_OPERATIONS_FILE", str(path))
    assert load_operations_settings().feedback.auto_apply is True


@pytest.mark.parametrize(
    "section, values, message",
    [
        (
            "feedback",
            {"false_positive_threshold": 0},
            "feedback.false_positive_threshold: must be at least 1",
        ),
        (
            "feedback",
            {"action": "delete"},
            "feedback.action: must be one of raise_threshold, suppress",
        ),
        ("feedback", {"auto_apply": "yes"}, "feedback.auto_apply: must be true or false"),
        ("console", {"note_max_chars": 2.5}, "console.note_max_chars: must be a whole number"),
        (
            "work_orders",
            {"due_hours": {"LOW": -1}},
            "work_orders.due_hours.LOW: must be at least 0",
        ),
    ],
)
def test_invalid_values_name_file_and_key(tmp_path, section, values, message):
    path = write_operations_file(tmp_path, **{section: values})
    with pytest.raises(OperationsConfigError, match=message) as error:
        load_operations_settings(path)
    assert str(path) in str(error.value)


def test_a_missing_section_is_named(tmp_path):
    path = tmp_path / "ops.yaml"
    shipped = yaml.safe_load(config_path("operations").read_text())
    path.write_text(yaml.safe_dump({"console": shipped["console"]}))
    with pytest.raises(OperationsConfigError, match="maintenance: missing"):
        load_operations_settings(path)
