"""Conditional retraining in the asset graph: the training asset records its fingerprint, the
check says why a model is stale, and the sensor requests a run only for a config change."""

import dagster as dg
import yaml
from support.lifecycle_world import MODEL, use_world

from refrig_assets.defs.shared.resources import RefrigResource

ASSET = dg.AssetKey(f"{MODEL}_model")


def evaluate_sensor(defs, instance):
    sensor = defs.resolve_sensor_def("conditional_retraining")
    context = dg.build_sensor_context(instance=instance, resources={"refrig": RefrigResource()})
    return sensor.evaluate_tick(context).run_requests


def test_only_a_training_input_change_requests_retraining(tmp_path, monkeypatch):
    use_world(tmp_path, monkeypatch)
    from refrig_assets.definitions import defs

    with dg.instance_for_test() as instance:
        trained = defs.resolve_job_def("train_detectors").execute_in_process(
            instance=instance, asset_selection=[ASSET], raise_on_error=False
        )
        assert trained.success
        (mat,) = trained.asset_materializations_for_node(f"{MODEL}_model")
        assert {"training_code_version", "config_hash", "dataset_version"} <= set(mat.metadata)
        current = {e.check_name: e.passed for e in trained.get_asset_check_evaluations()}
        assert current["training_is_current"] is True

        # nothing that the detector was trained from has changed
        assert evaluate_sensor(defs, instance) == []

        path = tmp_path / "models" / f"{MODEL}.yaml"
        config = yaml.safe_load(path.read_text())
        config["hyperparameters"]["n_estimators"] = 77
        path.write_text(yaml.safe_dump(config))

        (request,) = evaluate_sensor(defs, instance)
        assert request.asset_selection == [ASSET]
        assert "models/ config changed" in request.tags["refrig/reason"]
        stale = defs.resolve_job_def("train_detectors").execute_in_process(
            instance=instance,
            asset_selection=[ASSET],
            raise_on_error=False,
            run_config=request.run_config,
        )
        assert stale.success
        assert evaluate_sensor(defs, instance) == []
