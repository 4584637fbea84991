"""An hour with no usable readings is a normal event: a gateway outage (no file at all) or an
hour whose only file was rejected materializes empty partitions all the way down, a warning
check says so, and the run succeeds."""

import gzip

import dagster as dg
import pytest
from support.landing_world import H0, H1, H2, HOURLY, LandingWorld, checks, metadata
from support.quality_helpers import good_rows

pytestmark = pytest.mark.fault_injection


def hour_file(world: LandingWorld, hour: int, name: str | None = None) -> None:
    """Three good readings of dev-1 in ``hour`` (of 2026-01-01), as Parquet."""
    name = name or f"readings_20260101T{hour:02d}.parquet"
    good_rows(3, start_minute=60 * hour).to_parquet(world.landing / name, index=False)


def assert_empty_hour(world: LandingWorld, result: dg.ExecuteInProcessResult, hour: str) -> None:
    for dataset in HOURLY:
        assert world.store.exists(dataset, hour), dataset
    assert len(world.rows("clean_readings", hour)) == 0
    assert len(world.rows("device_features", hour)) == 0
    found = checks(result)
    readable = found["landing_files_readable"]
    assert not readable.passed and readable.severity == dg.AssetCheckSeverity.WARN
    assert "no readings" in readable.metadata["readings"].value
    assert found["rows_accounted_for"].passed
    assert found["clean_readings_contract"].passed
    assert found["device_features_contract"].passed
    assert metadata(result, "sensor_readings")["rows"] == 0
    assert metadata(result, "clean_readings")["rows_read"] == 0


def test_a_gateway_outage_materializes_an_empty_hour_and_the_next_hours_run(refrig_home):
    world = LandingWorld()
    hour_file(world, 0)
    hour_file(world, 2)
    with dg.instance_for_test() as instance:
        world.run_hour(instance, H0)
        outage = world.run_hour(instance, H1)
        after = world.run_hour(instance, H2)
    assert_empty_hour(world, outage, H1)
    assert len(world.rows("clean_readings", H2)) == 3
    assert checks(after)["landing_files_readable"].passed


def semicolons(path):
    good_rows(3, start_minute=60).to_csv(path.with_suffix(".csv"), sep=";", index=False)


def missing_column(path):
    good_rows(3, start_minute=60).drop(columns=["device_id"]).to_parquet(path, index=False)


def gzip_named_csv(path):
    text = good_rows(3, start_minute=60).to_csv(index=False).encode()
    path.with_suffix(".csv").write_bytes(gzip.compress(text))


def epoch_ms(path):
    df = good_rows(3, start_minute=60)
    df["ts"] = df["ts"].astype("int64") // 10**6
    df.to_parquet(path, index=False)


def truncated_parquet(path):
    good_rows(3, start_minute=60).to_parquet(path, index=False)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


@pytest.mark.parametrize(
    "deliver",
    [semicolons, missing_column, gzip_named_csv, epoch_ms, truncated_parquet],
    ids=lambda f: f.__name__,
)
def test_an_hour_whose_only_file_is_rejected_is_an_empty_hour_reporting_the_file(
    refrig_home, deliver
):
    world = LandingWorld()
    deliver(world.landing / "readings_20260101T01.parquet")
    with dg.instance_for_test() as instance:
        result = world.run_hour(instance, H1)
    assert_empty_hour(world, result, H1)
    [rejected] = world.rows("quarantined_readings", H1).itertuples()
    assert rejected.source_file.startswith("readings_20260101T01.")
    assert rejected.row == -1 and rejected.message.startswith(rejected.source_file + ": ")
    assert (
        rejected.source_file in checks(result)["landing_files_readable"].metadata["rejected"].value
    )


def test_the_whole_hourly_job_runs_through_an_hour_without_readings(small_fleet):
    """Scores, alerts and device status of an outage hour materialize too (empty)."""
    from refrig_assets.core.model_config import hourly_model_ids
    from refrig_assets.core.storage import ParquetStore
    from refrig_assets.definitions import defs
    from refrig_assets.defs.ingestion.assets import device_registry

    [outage] = small_fleet.landing_dir.rglob("readings_20260101T02.parquet")
    outage.unlink()
    job = defs.resolve_job_def("hourly_pipeline")
    models = [f"{m}_model" for m in hourly_model_ids()]
    config = {"start_partition": H0, "end_partition": H1}
    with dg.instance_for_test() as instance:
        dg.materialize([device_registry], instance=instance, resources=defs.resources)
        for hour in (H0, H1):
            job.execute_in_process(
                instance=instance,
                partition_key=hour,
                asset_selection=[dg.AssetKey(a) for a in HOURLY],
            )
        defs.resolve_job_def("train_detectors").execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey(m) for m in models],
            run_config={"ops": {m: {"config": config} for m in models}},
        )
        result = job.execute_in_process(instance=instance, partition_key=H2)
    assert result.success
    assert not checks(result)["landing_files_readable"].passed
    store = ParquetStore(small_fleet.data_dir)
    for dataset in ("device_features", "isolation_forest_scores", "device_alerts"):
        assert len(store.read(dataset, H2)) == 0
