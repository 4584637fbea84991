"""Landing zones have retention policies: a file archived, moved away or an unmounted landing
directory changes nothing that was ingested. Only ``landing.authoritative: true`` in
``config/ingestion.yaml`` makes removals change the hours' partitions."""

import shutil

import dagster as dg
import pytest
from support.landing_world import H0, H1, HOURLY, LandingWorld, authoritative_landing
from support.quality_helpers import good_rows

pytestmark = pytest.mark.fault_injection


def deliver(world: LandingWorld, hour: int, device="dev-1", name=None):
    name = name or f"readings_20260101T{hour:02d}_{device}.parquet"
    good_rows(3, device=device, start_minute=60 * hour).to_parquet(world.landing / name)


@pytest.fixture
def ingested(refrig_home):
    """Hours 00 and 01 ingested from their files, down to the features."""
    world = LandingWorld()
    deliver(world, 0)
    deliver(world, 1)
    with dg.instance_for_test() as instance:
        for hour in (H0, H1):
            world.run_hour(instance, hour)
        yield world, instance


def kept(world: LandingWorld) -> dict:
    return {h: {d: len(world.rows(d, h)) for d in HOURLY} for h in (H0, H1)}


def test_archived_files_trigger_nothing_and_a_rerun_keeps_what_was_ingested(ingested, tmp_path):
    world, instance = ingested
    before = kept(world)
    archive = tmp_path / "archive"
    archive.mkdir()
    for path in list(world.landing.iterdir()):
        shutil.move(path, archive / path.name)
    assert isinstance(world.sensor(instance), dg.SkipReason)
    for hour in (H0, H1):
        world.run_hour(instance, hour)
    assert kept(world) == before
    assert before[H0]["clean_readings"] == 3
    assert isinstance(world.sensor(instance), dg.SkipReason)


def test_an_unmounted_or_emptied_landing_directory_changes_nothing(ingested, tmp_path):
    world, instance = ingested
    before = kept(world)
    world.landing.rename(tmp_path / "unmounted")
    assert isinstance(world.sensor(instance), dg.SkipReason)
    world.run_hour(instance, H1)
    world.landing.mkdir()
    assert isinstance(world.sensor(instance), dg.SkipReason)
    world.run_hour(instance, H0)
    assert kept(world) == before


def test_a_late_file_after_archiving_adds_to_what_was_ingested(ingested):
    world, instance = ingested
    (world.landing / "readings_20260101T00_dev-1.parquet").unlink()
    deliver(world, 0, device="dev-2")
    [request] = world.sensor(instance).run_requests
    assert request.partition_key == H0
    assert request.tags["refrig/files_added"] == "readings_20260101T00_dev-2.parquet"
    assert request.tags["refrig/files_removed"] == ""
    world.run_hour(instance, H0)
    clean = world.rows("clean_readings", H0)
    assert clean.groupby("device_id").size().to_dict() == {"dev-1": 3, "dev-2": 3}
    assert isinstance(world.sensor(instance), dg.SkipReason)


def test_an_authoritative_landing_zone_removes_what_was_removed(ingested, tmp_path, monkeypatch):
    world, instance = ingested
    authoritative_landing(tmp_path, monkeypatch)
    (world.landing / "readings_20260101T00_dev-1.parquet").unlink()
    [request] = world.sensor(instance).run_requests
    assert request.partition_key == H0
    assert request.tags["refrig/files_removed"] == "readings_20260101T00_dev-1.parquet"
    world.run_hour(instance, H0)
    assert len(world.rows("clean_readings", H0)) == 0
    assert len(world.rows("clean_readings", H1)) == 3
