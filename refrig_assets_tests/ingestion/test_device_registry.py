"""The device registry never hides a problem: a device listed twice fails its check with the
rows named (and the previous registry stays in use); a cohort too small to be real is flagged,
moved to the `unknown` cohort or refused, as config/registry.yaml says."""

import shutil

import dagster as dg
import pandas as pd
import pytest
import yaml

from refrig_assets.core.config import CONFIG_DIR
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.ingestion.assets import device_registry
from refrig_assets.defs.shared.resources import RefrigResource

pytestmark = pytest.mark.fault_injection

FLEET = [(f"d{i}", "s1", "walk_in") for i in range(5)] + [
    (f"e{i}", "s2", "reach_in") for i in range(4)
]


def write_registry(rows) -> None:
    path = get_settings().registry_path
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["device_id", "site_id", "cohort"]).to_csv(path, index=False)


def materialize() -> dict[str, dg.AssetCheckEvaluation]:
    result = dg.materialize(
        [device_registry], resources={"refrig": RefrigResource()}, raise_on_error=False
    )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture
def policy(tmp_path, monkeypatch):
    """Set ``unknown_cohorts`` in a private copy of config/."""
    folder = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, folder)
    monkeypatch.setenv("REFRIG_CONFIG_DIR", str(folder))

    def set_action(action: str) -> None:
        body = yaml.safe_load((folder / "registry.yaml").read_text())
        body["unknown_cohorts"] = action
        (folder / "registry.yaml").write_text(yaml.safe_dump(body))

    return set_action


def stored() -> pd.DataFrame:
    return ParquetStore(get_settings().data_dir).read("device_registry")


def test_a_clean_registry_passes_both_checks(refrig_home):
    write_registry(FLEET)
    checks = materialize()
    assert all(c.passed for c in checks.values())
    assert len(stored()) == 9


def test_a_device_listed_twice_fails_naming_its_rows_and_keeps_the_previous_registry(
    refrig_home,
):
    write_registry(FLEET)
    materialize()
    write_registry([*FLEET, ("d1", "s9", "walk_in")])
    checks = materialize()
    keys = checks["device_registry_keys_and_cohorts"]
    assert not keys.passed and keys.severity == dg.AssetCheckSeverity.ERROR
    problems = keys.metadata["problems"].value
    assert "device_id 'd1' is on rows 2, 10" in problems and "device_registry.csv" in problems
    assert stored()["site_id"].tolist().count("s9") == 0  # the previous registry stays


def test_a_typo_cohort_is_flagged_as_a_warning_by_default(refrig_home):
    write_registry([*FLEET, ("x1", "s1", "walkin")])
    keys = materialize()["device_registry_keys_and_cohorts"]
    assert not keys.passed and keys.severity == dg.AssetCheckSeverity.WARN
    assert "cohort 'walkin' of x1 (1 device(s)) is not a known cohort" in (
        keys.metadata["problems"].value
    )
    assert "walkin" in set(stored()["cohort"])


def test_a_typo_cohort_can_fall_back_to_the_unknown_cohort(refrig_home, policy):
    policy("default")
    write_registry([*FLEET, ("x1", "s1", "walkin")])
    assert materialize()["device_registry_keys_and_cohorts"].passed
    registry = stored().set_index("device_id")
    assert registry.loc["x1", "cohort"] == "unknown"


def test_a_typo_cohort_can_be_refused(refrig_home, policy):
    policy("fail")
    write_registry([*FLEET, ("x1", "s1", "walkin")])
    keys = materialize()["device_registry_keys_and_cohorts"]
    assert not keys.passed and keys.severity == dg.AssetCheckSeverity.ERROR
    assert not ParquetStore(get_settings().data_dir).exists("device_registry", None)
