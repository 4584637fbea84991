"""An unregistered id that equals a registered one but for case is named, once per hour.

``DEV-1`` readings of a device registered as ``dev-1`` are two devices to the pipeline (ids are
exact): the registered device looks silent and the readings score under cohort ``unknown``.
The quality step names the spellings seen of each registered id, in the hour's summary and
the clean_readings metadata, whatever the shards the hour is cleaned in.
"""

from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pytest
from support.quality_helpers import CONTRACT, HOUR, KEY, good_rows, run_hour

from refrig_assets.core.duck import connect
from refrig_assets.core.storage import ParquetStore
from refrig_assets.ingestion.landing.hours import hour_readings
from refrig_assets.ingestion.landing.index import LandingIndex
from refrig_assets.quality.report import summarise
from refrig_assets.quality.shards import clean_hour_in_shards

REGISTERED = ("dev-1", "dev-2", "zz-9")
SEEN = {"DEV-1": "dev-1", "Dev-1": "dev-1", "ZZ-9": "zz-9"}


def _landing(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    frames = [good_rows(3, device=d) for d in ["DEV-1", "Dev-1", "dev-2", "ZZ-9", "other-7"]]
    pd.concat(frames, ignore_index=True).to_parquet(landing / "readings.parquet", index=False)
    return landing


def test_the_spellings_of_a_registered_id_are_named_in_the_hour_s_summary(tmp_path):
    _, result = run_hour(_landing(tmp_path), registered=REGISTERED)
    assert result.case_variants == SEEN
    assert summarise(result)["unregistered_case_variants"] == {
        "dev-1": ["DEV-1", "Dev-1"],
        "zz-9": ["ZZ-9"],
    }
    assert result.flag_counts["UNREGISTERED_DEVICE"] == 12  # ids stay exact


def test_an_hour_without_such_ids_names_none(tmp_path):
    _, result = run_hour(_landing(tmp_path), registered=("DEV-1", "Dev-1", "dev-2", "ZZ-9"))
    assert result.case_variants == {}
    assert summarise(result)["unregistered_case_variants"] == {}


@pytest.mark.parametrize("shards", [1, 3])
def test_every_shard_count_names_the_same_spellings(tmp_path, shards):
    # in device order DEV-1, Dev-1 and ZZ-9 sort before their registered ids: other shards
    store = ParquetStore(tmp_path / "data")
    with connect() as con:
        hour = hour_readings(
            con, _landing(tmp_path), HOUR, HOUR + timedelta(hours=1), KEY, CONTRACT,
            LandingIndex(tmp_path / "index.json"),
        )  # fmt: skip
        store.write_from_duckdb("sensor_readings", KEY, con, hour.sql)
    registry = pa.table({"device_id": pa.array(list(REGISTERED), pa.string())})
    _, result = clean_hour_in_shards(
        connect(), store, KEY, store.path("sensor_readings", KEY), CONTRACT, registry,
        shards=shards,
    )  # fmt: skip
    assert result.case_variants == SEEN
