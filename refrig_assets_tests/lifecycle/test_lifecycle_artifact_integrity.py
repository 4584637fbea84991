"""A corrupt model artifact or an alias moved outside the gates never stops the hour's alerts.

The version that serves is the pin, else the production version of the last audited promotion,
with its artifact verified against the sha256 recorded at registration. A corrupt artifact is
reported (``model@version`` and its path) and the previous audited production version serves;
when none loads, the model is left to the rules-based fallback. Either way the score asset's
metadata, the serving-state check and ``refrig models list`` say so. Training registers a
version only when code, config or data changed; otherwise it reuses the registered one.
"""

import hashlib
import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml
from support.lifecycle_world import HOURS, MODEL, evaluate
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore

pytestmark = pytest.mark.fault_injection


@pytest.fixture
def corrupt(lc):
    """Truncate a version's detector artifact (the world's artifacts are shared by the tests of
    this process: each is restored afterwards); returns its path."""
    saved: dict[Path, bytes] = {}

    def truncate(version: str) -> Path:
        path = artifact_file(lc, version)
        saved.setdefault(path, path.read_bytes())
        path.write_bytes(saved[path][: len(saved[path]) // 2])
        return path

    yield truncate
    for path, data in saved.items():
        path.write_bytes(data)


def artifact_file(lc, version: str) -> Path:
    uri = lc.registry.client.get_model_version_download_uri(MODEL, version)
    return Path(uri.removeprefix("file://")) / "artifacts" / "detector" / "detector.joblib"


def materialize(assets, partition: str):
    from refrig_assets.definitions import defs

    with dg.instance_for_test() as instance:
        return dg.materialize(
            assets,
            partition_key=partition,
            instance=instance,
            resources=defs.resources,
            raise_on_error=False,
        )


def execute(job: str, assets: list[str], run_config=None):
    from refrig_assets.definitions import defs

    with dg.instance_for_test() as instance:
        return defs.resolve_job_def(job).execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey(a) for a in assets],
            run_config=run_config,
            raise_on_error=False,
        )


def score(hour: str):
    from refrig_assets.defs.scoring.assets import scoring_assets

    (asset,) = [a for a in scoring_assets if a.key == dg.AssetKey(f"{MODEL}_scores")]
    return materialize([asset], hour)


def serving_state(hour: str):
    from refrig_assets.defs.lifecycle.serving import fallback_alerts, model_serving_state

    return materialize([model_serving_state, fallback_alerts], hour)


def metadata(result, asset: str) -> dict:
    (mat,) = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mat.metadata.items()}


def usable_check(result):
    (check,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == f"{MODEL}_scores_usable"
    ]
    return check


def models_list() -> str:
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    return result.output


def production_v3_after_v1(lc) -> None:
    """v1 first, then v3 promoted through its gates: both audited production versions."""
    lc.after_training(MODEL, "1", "trainer")
    lc.apply(evaluate(lc, "3").report, "alice")
    assert lc.registry.production_version(MODEL) == "3"


# -- a corrupt artifact -------------------------------------------------------------------------


def test_a_corrupt_production_artifact_is_served_by_the_previous_audited_version(lc, corrupt):
    production_v3_after_v1(lc)
    path = corrupt("3")
    store = ParquetStore(get_settings().data_dir)

    run = score(HOURS[0])
    assert run.success  # the hour is scored, so its alerts are not skipped
    assert set(store.read(f"{MODEL}_scores", HOURS[0])["model_version"]) == {"1"}
    meta = metadata(run, f"{MODEL}_scores")
    assert meta["model_version"] == "1" and meta["requested_version"] == "3"
    assert meta["serving_degraded"] is True and meta["corrupt_versions"] == "3"
    assert f"{MODEL}@3: artifact {path}" in meta["serving_problems"]
    assert "EOF" not in meta["serving_problems"]

    watch = serving_state(HOURS[0])
    assert watch.success
    check = usable_check(watch)  # the health signal: a warning, not an outage
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert f"{MODEL}@3" in check.metadata["serving_problem"].value
    state = store.read("model_serving_state", HOURS[0]).set_index("model_id").loc[MODEL]
    assert state["serving_version"] == "1" and state["action"] == "normal"
    assert metadata(watch, "fallback_alerts")["alerts"] == 0

    listing = models_list()
    assert f"{MODEL}: serving 1 (production 3, pinned -)" in listing
    (v3_line,) = [line for line in listing.splitlines() if line.startswith("  v3 ")]
    assert "CORRUPT" in v3_line and "production" in v3_line
    assert f"{MODEL}@3: artifact {path}" in listing


def test_when_no_version_loads_the_hour_is_left_to_the_rules_fallback(lc, corrupt):
    production_v3_after_v1(lc)
    corrupt("3")
    corrupt("1")
    store = ParquetStore(get_settings().data_dir)

    run = score(HOURS[1])
    assert run.success  # held, not failed: the other detectors and the alert step carry on
    meta = metadata(run, f"{MODEL}_scores")
    assert meta["written"] is False and meta["served_version"] == ""
    assert "rules-based fallback" in meta["held"]
    assert {"3", "1"} == set(meta["corrupt_versions"].split(", "))
    assert not store.exists(f"{MODEL}_scores", HOURS[1])

    watch = serving_state(HOURS[1])
    state = store.read("model_serving_state", HOURS[1]).set_index("model_id").loc[MODEL]
    assert state["state"] == "UNSERVABLE" and state["action"] == "rules-based fallback"
    assert usable_check(watch).severity == dg.AssetCheckSeverity.ERROR
    assert metadata(watch, "fallback_alerts")["fleet_action"] == "rules-based fallback"
    assert "serving - (no version loads: rules-based fallback)" in models_list()


def test_a_checksum_tag_edited_to_match_a_replaced_artifact_is_caught_by_the_audit(lc):
    production_v3_after_v1(lc)
    sums = lc.registry.recorded_checksums(MODEL, "3")
    lc.record_registration(MODEL, "3", "trainer", sums, "registered version 3")
    replaced = artifact_file(lc, "3")
    original = replaced.read_bytes()
    try:
        shutil.copyfile(artifact_file(lc, "2"), replaced)
        forged = {"detector.joblib": hashlib.sha256(replaced.read_bytes()).hexdigest()}
        lc.registry.set_version_tags(MODEL, "3", {"artifact_sha256": json.dumps(forged)})
        run = score(HOURS[2])
        assert run.success
        meta = metadata(run, f"{MODEL}_scores")
        assert meta["model_version"] == "1"
        assert "differs from the one in the audit trail" in meta["serving_problems"]
    finally:
        replaced.write_bytes(original)


# -- an alias moved outside the gates -----------------------------------------------------------


def test_an_alias_moved_outside_the_gates_is_refused_and_the_audited_version_serves(lc):
    lc.after_training(MODEL, "1", "trainer")
    lc.registry.set_production(MODEL, "2")  # directly in MLflow: no gates, no audit record
    store = ParquetStore(get_settings().data_dir)

    run = score(HOURS[3])
    assert run.success
    assert set(store.read(f"{MODEL}_scores", HOURS[3])["model_version"]) == {"1"}
    meta = metadata(run, f"{MODEL}_scores")
    assert meta["production_alias"] == "2" and meta["audited_production"] == "1"
    assert "outside the promotion gates" in meta["serving_problems"]

    watch = serving_state(HOURS[3])
    assert usable_check(watch).severity == dg.AssetCheckSeverity.WARN
    assert not usable_check(watch).passed
    listing = models_list()
    assert f"{MODEL}: serving 1 (production 2, pinned -)" in listing
    assert "moved outside the promotion gates" in listing


# -- registration: checksums audited, identical retraining reuses the version -----------------


def test_training_audits_the_artifact_sha256_and_reuses_an_identical_version(lc):
    first = execute("train_detectors", [f"{MODEL}_model"])
    assert first.success
    trained = metadata(first, f"{MODEL}_model")
    version = trained["model_version"]
    assert trained["reused_version"] is False
    sums = lc.registry.recorded_checksums(MODEL, version)
    assert sums == {
        "detector.joblib": hashlib.sha256(artifact_file(lc, version).read_bytes()).hexdigest()
    }
    (registered,) = [e for e in lc.audit.events(MODEL) if e.event == "registered"]
    assert registered.to_version == version
    assert registered.gates == [{"artifact": "detector.joblib", "sha256": sums["detector.joblib"]}]
    versions = [v["version"] for v in lc.registry.versions(MODEL)]

    again = execute("train_detectors", [f"{MODEL}_model"])  # same code, config and data
    assert again.success
    reused = metadata(again, f"{MODEL}_model")
    assert reused["reused_version"] is True and reused["model_version"] == version
    assert f"reused version {version}" in reused["reused"]
    assert [v["version"] for v in lc.registry.versions(MODEL)] == versions  # nothing new
    assert [e.event for e in lc.audit.events(MODEL)].count("registered") == 1
    assert lc.registry.production_version(MODEL) == version  # its state is left as it was

    # a config change is a new version (PATCH)
    path = lc.models_dir / f"{MODEL}.yaml"
    config = yaml.safe_load(path.read_text())
    config["flag_threshold"] = 0.97
    path.write_text(yaml.safe_dump(config))
    changed = execute("train_detectors", [f"{MODEL}_model"])
    assert changed.success
    new = metadata(changed, f"{MODEL}_model")
    assert new["reused_version"] is False and new["model_version"] != version
