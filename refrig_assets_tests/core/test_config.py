"""Operational policy lives in config/, one file per topic, read by one typed loader: a missing
or mistyped key fails at load naming the file and the key; the old locations are read for one
release with a deprecation warning."""

import shutil
import warnings

import pytest
import yaml

from refrig_assets.access import load_access_policy
from refrig_assets.alerts.severity import alert_policy
from refrig_assets.core.backfill import hours_per_run
from refrig_assets.core.config import CONFIG_DIR, ConfigError, Section, config_path
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.settings import CONTRACTS_DIR, MODELS_DIR
from refrig_assets.engines.memory import load_memory_budget
from refrig_assets.evaluation.labelled import evaluation_settings
from refrig_assets.incidents.policy import incident_policy
from refrig_assets.incidents.signatures import load_signatures
from refrig_assets.ingestion.mapping import load_units
from refrig_assets.ingestion.settings import load_ingestion_settings
from refrig_assets.lifecycle.policy import load_policy
from refrig_assets.monitoring.settings import load_monitoring_settings
from refrig_assets.operations.settings import load_operations_settings
from refrig_assets.serving.settings import load_serving_settings
from refrig_assets.streaming.config import load_streaming_settings

TOPICS = (
    "alerts",
    "streaming",
    "lifecycle",
    "monitoring",
    "operations",
    "registry",
    "release",
    "ingestion",
    "units",
    "evaluation",
    "causes",
    "access",
    "serving",
    "incidents",
    "performance",
    "backfill",
)


@pytest.fixture
def config_copy(tmp_path, monkeypatch):
    """A private copy of config/ in use through REFRIG_CONFIG_DIR."""
    folder = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, folder)
    monkeypatch.setenv("REFRIG_CONFIG_DIR", str(folder))
    return folder


def edit(path, change):
    body = yaml.safe_load(path.read_text())
    change(body)
    path.write_text(yaml.safe_dump(body))


def test_every_topic_has_its_file_and_every_loader_reads_it_without_warnings():
    assert sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) == sorted(TOPICS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert alert_policy().dedup_window_hours == 4
        assert {r.name for r in load_streaming_settings().rules} >= {"compressor_overload"}
        assert load_policy()["path"] == str(config_path("lifecycle"))
        assert load_monitoring_settings().path == config_path("monitoring")
        assert load_operations_settings().path == config_path("operations")
        assert load_access_policy().proxy_header
        assert load_ingestion_settings().authoritative is False
        assert load_signatures().path == config_path("causes")
        assert load_serving_settings().thresholds.latency_ms > 0
        assert incident_policy().hysteresis_windows >= 1
        assert load_memory_budget().path == config_path("performance")
        assert evaluation_settings() is not None
        assert load_units() is not None
        assert hours_per_run() >= 1


def test_policy_is_no_longer_in_the_contracts():
    assert "severity_rules" not in load_contract("device_alerts").settings
    assert "streaming_rules" not in load_contract("device_registry").settings
    assert not list(MODELS_DIR.glob("_lifecycle.yaml"))


def test_a_missing_alert_setting_names_the_file_and_the_key(config_copy):
    edit(config_copy / "alerts.yaml", lambda b: b["reconciliation"].pop("confirm_minutes"))
    from refrig_assets.alerts.reconciliation import ReconciliationPolicy

    with pytest.raises(ConfigError, match=r"alerts.yaml: reconciliation.confirm_minutes: missing"):
        ReconciliationPolicy.from_contract()


def test_a_mistyped_setting_names_the_file_the_key_and_the_value(config_copy):
    edit(config_copy / "alerts.yaml", lambda b: b.update(dedup_window_hours="four"))
    with pytest.raises(ConfigError, match=r"alerts.yaml: dedup_window_hours: must be a number"):
        alert_policy()


def test_an_unknown_severity_or_escalation_level_is_refused(config_copy):
    edit(config_copy / "alerts.yaml", lambda b: b["severity_rules"][0].update(severity="URGENT"))
    with pytest.raises(ConfigError, match=r"severity_rules\[0\].severity: must be one of"):
        alert_policy()


def test_a_streaming_rule_on_an_unknown_sensor_is_refused(config_copy):
    edit(
        config_copy / "streaming.yaml",
        lambda b: b["rules"]["compressor_overload"].update(sensor="humidity"),
    )
    with pytest.raises(ConfigError, match=r"rules.compressor_overload.sensor: must be one of"):
        load_streaming_settings()


def test_policy_left_in_the_alert_contract_is_read_with_a_deprecation_warning(
    tmp_path, monkeypatch
):
    contracts = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, contracts)
    with (contracts / "device_alerts.yaml").open("a") as f:
        f.write("dedup_window_hours: 8\n")
    monkeypatch.setattr("refrig_assets.core.contracts.CONTRACTS_DIR", contracts)
    with pytest.warns(
        DeprecationWarning,
        match="dedup_window_hours in contracts/device_alerts.yaml: policy now lives in .*alerts.yaml",
    ):
        assert alert_policy().dedup_window_hours == 8


def test_a_lifecycle_file_left_in_models_is_read_with_a_deprecation_warning(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    legacy = models / "_lifecycle.yaml"
    legacy.write_text(config_path("lifecycle").read_text())
    with pytest.warns(DeprecationWarning, match="_lifecycle.yaml: policy now lives in"):
        assert load_policy(models)["path"] == str(legacy)


def test_sections_check_types_and_bounds():
    section = Section(CONFIG_DIR / "x.yaml", {"n": 3, "flag": "yes", "name": "a"})
    assert section.number("n", minimum=1, integer=True) == 3
    with pytest.raises(ConfigError, match=r"x.yaml: n: must be at most 2"):
        section.number("n", maximum=2)
    with pytest.raises(ConfigError, match=r"x.yaml: flag: must be true or false"):
        section.flag("flag")
    with pytest.raises(ConfigError, match=r"x.yaml: other: missing"):
        section.text("other")
