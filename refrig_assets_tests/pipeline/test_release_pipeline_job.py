"""The release order as one job: ingest → features → train → validate → deploy → monitor, with the
validation gates blocking the deployment in the asset graph itself."""

import dagster as dg
import pytest

from refrig_assets.core.model_config import all_model_ids

STAGES = [
    ("ingest", "sensor_readings"),
    ("features", "device_features"),
    ("train", "{m}_model"),
    ("validate", "{m}_canary"),
    ("deploy", "{m}_promotion"),
]


@pytest.fixture(scope="module")
def graph():
    from refrig_assets.definitions import defs

    job = defs.resolve_job_def("release_pipeline")
    return defs.resolve_asset_graph(), job.asset_layer.selected_asset_keys


def upstream(graph, key: dg.AssetKey) -> set[dg.AssetKey]:
    seen, todo = set(), [key]
    while todo:
        for parent in graph.get(todo.pop()).parent_keys:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


@pytest.mark.parametrize("model_id", all_model_ids())
def test_each_stage_of_a_detector_depends_on_the_previous_one(graph, model_id):
    asset_graph, selected = graph
    keys = [dg.AssetKey(name.format(m=model_id)) for _, name in STAGES]
    assert set(keys) <= selected
    for earlier, later in zip(keys, keys[1:], strict=False):
        assert earlier in upstream(asset_graph, later), f"{later} does not follow {earlier}"


@pytest.mark.parametrize("model_id", all_model_ids())
def test_validation_blocks_deployment(graph, model_id):
    asset_graph, _ = graph
    from refrig_assets.definitions import defs

    canary = defs.resolve_assets_def(f"{model_id}_canary")
    blocking = [spec for spec in canary.check_specs if spec.blocking]
    assert blocking, "the promotion gates are blocking checks"
    assert (
        dg.AssetKey(f"{model_id}_canary")
        in asset_graph.get(dg.AssetKey(f"{model_id}_promotion")).parent_keys
    )


def test_monitoring_is_part_of_the_job(graph):
    _, selected = graph
    assert {dg.AssetKey("model_serving_state"), dg.AssetKey("device_alerts")} <= selected
