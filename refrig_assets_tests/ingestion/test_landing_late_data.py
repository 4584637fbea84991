"""Late data: a file that lands after its hour was materialized makes the landing sensor request
that hour again, and the refreshed hour equals a from-scratch run over all files."""

import shutil

import dagster as dg
import pandas as pd
import pytest
from support.landing_world import H0, H1, HOURLY, landing_graph

from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.ingestion.assets import device_registry
from refrig_assets.defs.ingestion.sensors import late_landing_files
from refrig_assets.quality.rules import flag_bit


def run_hour(defs, instance, hour, assets=HOURLY):
    result = defs.resolve_job_def("hourly_pipeline").execute_in_process(
        instance=instance, partition_key=hour, asset_selection=[dg.AssetKey(a) for a in assets]
    )
    assert result.success
    return result


def materialize_registry(defs, instance):
    assert dg.materialize([device_registry], instance=instance, resources=defs.resources).success


@pytest.fixture
def late_file_world(small_fleet):
    """Hours 0 and 1 materialized without five devices' hour-0 readings; then they land."""
    landing = small_fleet.landing_dir
    [hour0] = [p for p in landing.rglob("*.parquet") if p.name.endswith("T00.parquet")]
    readings = pd.read_parquet(hour0)
    late_devices = sorted(readings["device_id"].unique())[:5]
    late = readings["device_id"].isin(late_devices)
    readings[~late].to_parquet(hour0, index=False)
    return small_fleet, readings[late]


def test_a_late_file_refreshes_its_hour_and_equals_a_from_scratch_run(
    late_file_world, tmp_path, monkeypatch
):
    settings, late_rows = late_file_world
    defs = landing_graph(settings.home)
    store = ParquetStore(settings.data_dir)
    with dg.instance_for_test() as instance:
        materialize_registry(defs, instance)
        run_hour(defs, instance, H0)
        run_hour(defs, instance, H1, ["sensor_readings"])  # materialized, and unaffected
        before = store.read("clean_readings", H0)

        context = dg.build_sensor_context(instance=instance, definitions=defs)
        assert isinstance(late_landing_files(context), dg.SkipReason)  # nothing new yet

        late_path = settings.landing_dir / "late" / "readings_late.parquet"
        late_path.parent.mkdir()
        late_rows.to_parquet(late_path, index=False)
        result = late_landing_files(dg.build_sensor_context(instance=instance, definitions=defs))
        [request] = result.run_requests
        assert request.partition_key == H0
        assert sorted(k.to_user_string() for k in request.asset_selection) == sorted(HOURLY)
        assert request.tags["refrig/files_added"] == "late/readings_late.parquet"

        run_hour(
            defs,
            instance,
            request.partition_key,
            [k.to_user_string() for k in request.asset_selection],
        )
        refreshed = {d: store.read(d, H0) for d in HOURLY}
        assert len(refreshed["clean_readings"]) == len(before) + len(late_rows)
        after = late_landing_files(dg.build_sensor_context(instance=instance, definitions=defs))
        assert isinstance(after, dg.SkipReason)  # the hour now reflects its files

    # From scratch: a new home holding every file from the start.
    scratch = tmp_path / "scratch"
    shutil.copytree(settings.landing_dir, scratch / "landing", copy_function=shutil.copy2)
    registry = scratch / "data" / "device_registry" / "all.parquet"
    registry.parent.mkdir(parents=True)
    shutil.copy2(store.path("device_registry"), registry)
    monkeypatch.setenv("REFRIG_HOME", str(scratch))
    with dg.instance_for_test() as instance:
        run_hour(landing_graph(scratch), instance, H0)
    fresh = ParquetStore(get_settings().data_dir)

    late_bit = flag_bit("LATE")
    clean, expected = refreshed["clean_readings"], fresh.read("clean_readings", H0)
    is_late = (clean["quality_mask"] & late_bit) != 0
    assert clean.loc[is_late, "source_file"].unique().tolist() == ["late/readings_late.parquet"]
    assert is_late.sum() == len(late_rows)
    assert not ((expected["quality_mask"] & late_bit) != 0).any()
    # The LATE flag records when a reading arrived; apart from it the data are the same.
    for d in ("clean_readings", "device_features"):
        got, want = without_late(refreshed[d]), without_late(fresh.read(d, H0))
        pd.testing.assert_frame_equal(got, want)
    pd.testing.assert_frame_equal(
        refreshed["quarantined_readings"], fresh.read("quarantined_readings", H0)
    )


def without_late(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["quality_mask"] = out["quality_mask"] & ~flag_bit("LATE")
    flags = out["quality_flags"].str.split(",")
    out["quality_flags"] = flags.apply(lambda f: ",".join(x for x in f if x and x != "LATE"))
    return out
