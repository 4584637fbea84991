"""Steps of ``refrig pipeline run`` that the pipeline tests chain themselves."""

import dagster as dg


def train(defs: dg.Definitions, instance, models: list[str], keys: list[str]) -> None:
    """Train the detectors ``models`` (their ``<model>_model`` assets) on the hours ``keys``."""
    assets = [f"{m}_model" for m in models]
    span = {"start_partition": keys[0], "end_partition": keys[-1]}
    trained = defs.resolve_job_def("train_detectors").execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(a) for a in assets],
        run_config={"ops": {a: {"config": span} for a in assets}},
    )
    assert trained.success
