"""A ranged score step guards each hour as one run per hour does: the lifecycle store and the
distribution hold's reference are shared by the step's hours, yet a model paused during the
range (here by the step's own distribution hold, at an hour whose scores diverge) holds every
later hour, the reference of each hour is the partitions written just before it (also those
of earlier runs), and the files, held/written metadata and audit trail are those of one run
per hour."""

from pathlib import Path

import dagster as dg
import pandas as pd
import yaml
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG as RANGE_END_TAG
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_START_TAG as RANGE_START_TAG
from support.lifecycle_world import HOURS, MODEL, use_world

from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.lifecycle.audit import AuditTrail, lifecycle_db_url
from refrig_assets.lifecycle.promotion import ModelLifecycle
from refrig_assets.training.registry import ModelRegistry

ASSET = f"{MODEL}_scores"
DIVERGED = 5  # the hour whose features are distorted: its scores pause the model
ALREADY = HOURS[:2]  # scored by earlier one-hour runs: the first hours' reference
RANGE = HOURS[2:]


def lifecycle() -> ModelLifecycle:
    s = get_settings()
    return ModelLifecycle(
        ModelRegistry(s.mlflow_tracking_uri, s.mlflow_artifacts_dir),
        AuditTrail(lifecycle_db_url(s.alerts_db_url)),
        s.models_dir,
    )


def prepare(tmp_path: Path, monkeypatch) -> None:
    """The lifecycle world with v1 in production, a pause policy this small fleet can reach,
    and the features of hour DIVERGED far from anything seen before."""
    use_world(tmp_path, monkeypatch)
    s = get_settings()
    lc = lifecycle()
    try:
        lc.after_training(MODEL, "1", "trainer")
    finally:
        lc.audit.close()
    policy_file = tmp_path / "config" / "lifecycle.yaml"
    policy = yaml.safe_load(policy_file.read_text())
    policy["pause"]["min_windows"] = 50  # 30 devices of 4 windows an hour
    policy_file.write_text(yaml.safe_dump(policy))
    store = ParquetStore(s.data_dir)
    features = store.read("device_features", HOURS[DIVERGED])
    measured = [
        c
        for c in features.columns
        if c.endswith(("_mean", "_std", "_min", "_max")) and features[c].dtype.kind == "f"
    ]
    features[measured] = features[measured] * 7.0 + 40.0
    store.write("device_features", HOURS[DIVERGED], features)


def run(instance, first: str, last: str | None = None) -> dict[str, dict]:
    """One run of the score asset over ``first``..``last``; each hour's metadata that tells
    what the guards decided."""
    from refrig_assets.cli.runner import QUIET
    from refrig_assets.definitions import defs

    ranged = last is not None and last != first
    result = defs.resolve_job_def("hourly_pipeline").execute_in_process(
        instance=instance,
        partition_key=None if ranged else first,
        asset_selection=[dg.AssetKey(ASSET)],
        run_config=QUIET,
        tags={RANGE_START_TAG: first, RANGE_END_TAG: last} if ranged else {},
    )
    assert result.success
    return {
        e.partition: {
            k: e.materialization.metadata[k].value
            for k in ("held", "written", "windows_scored")
            if k in e.materialization.metadata
        }
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(ASSET)
    }


def backfill(tmp_path: Path, monkeypatch, ranged: bool) -> tuple[dict, dict, list]:
    """Score ALREADY hour by hour, then RANGE in one run or one run per hour; the hours'
    metadata, the score files and the model's audit trail (kind, actor, reason, paused)."""
    prepare(tmp_path, monkeypatch)
    meta: dict[str, dict] = {}
    with dg.instance_for_test() as instance:
        for hour in ALREADY:
            meta |= run(instance, hour)
        if ranged:
            meta |= run(instance, RANGE[0], RANGE[-1])
        else:
            for hour in RANGE:
                meta |= run(instance, hour)
    store = ParquetStore(get_settings().data_dir)
    files = {
        h: store.read(ASSET, h).drop(columns="scored_at") for h in HOURS if store.exists(ASSET, h)
    }
    lc = lifecycle()
    try:
        trail = [(e.event, e.actor, e.reason, e.paused) for e in lc.audit.events(MODEL)]
    finally:
        lc.audit.close()
    return meta, files, trail


def test_a_pause_during_a_ranged_step_holds_the_later_hours_as_one_run_per_hour(
    tmp_path, monkeypatch
):
    meta, files, trail = backfill(tmp_path / "ranged", monkeypatch, ranged=True)
    want_meta, want_files, want_trail = backfill(tmp_path / "hourly", monkeypatch, ranged=False)

    assert meta == want_meta
    # The distorted hour paused the model: nothing written from it on, in both ways.
    assert "KL" in meta[HOURS[DIVERGED]]["held"]
    assert all(meta[h]["written"] is False for h in HOURS[DIVERGED:])
    assert all(meta[h]["written"] is True for h in HOURS[:DIVERGED])
    assert set(files) == set(want_files) == set(HOURS[:DIVERGED])
    for hour, frame in files.items():
        pd.testing.assert_frame_equal(frame, want_files[hour])
    assert [t[0] for t in trail] == [t[0] for t in want_trail]
    assert [t[1:] for t in trail[1:]] == [t[1:] for t in want_trail[1:]]
    assert trail[-1][3] is True
