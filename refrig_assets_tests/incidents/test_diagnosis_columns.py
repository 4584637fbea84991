"""The incident step reads only the device_features columns the diagnosis uses
(:meth:`HourDiagnosis.columns`, from the signature table): every window gets the same cause,
confidence, severity and evidence, and the same defrost state is stored, as from every column."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from refrig_assets.core.contracts import load_contract, quality_flag_names
from refrig_assets.core.storage import ParquetStore
from refrig_assets.incidents.causes import HourDiagnosis
from refrig_assets.incidents.signatures import load_signatures
from tools.benchmarks.scoring import START, synthetic_features

DEVICES, HOURS = 24, 4


def _store(root) -> tuple[ParquetStore, str]:
    """Four feature hours of a fleet with leaks, door streaks, sensor faults and defrosts; the
    key of the last hour."""
    store = ParquetStore(root / "data")
    features = synthetic_features(DEVICES, HOURS, seed=5)
    last = features["window_start"] >= pd.Timestamp(START) + pd.Timedelta(hours=HOURS - 1)
    devices = features["device_id"]
    leak = last & devices.isin(["dev-000002", "dev-000007"])
    features.loc[leak, "pressure_low_side_running_mean"] *= 0.6
    features.loc[leak, "duty_cycle"] = 0.95
    features.loc[last & devices.eq("dev-000004"), "door_open_longest_minutes"] = 30.0
    stuck = last & devices.isin(["dev-000009", "dev-000015"])
    features.loc[stuck, "quality_mask"] = 1 << quality_flag_names().index("STUCK_SENSOR")
    features.loc[stuck, "quality_flags"] = "STUCK_SENSOR"
    features.loc[devices.eq("dev-000011"), "defrost_minutes"] = 0.0
    features.loc[devices.isin(["dev-000020", "dev-000021"]), "current_compressor_mean"] = np.nan
    ids = sorted(devices.unique())
    cohorts = features.groupby("device_id")["cohort"].first().reindex(ids).to_numpy()
    store.write("device_registry", None, pd.DataFrame({"device_id": ids, "cohort": cohorts}))
    for h in range(HOURS):
        hour = pd.Timestamp(START) + pd.Timedelta(hours=h)
        part = features[features["window_start"].dt.floor("h") == hour]
        store.write("device_features", hour.strftime("%Y-%m-%d-%H:%M"), part.drop(columns="cohort"))
    return store, hour.strftime("%Y-%m-%d-%H:%M")


def _diagnose(store: ParquetStore, key: str, pruned: bool):
    diagnosis = HourDiagnosis(store, key)
    names = pq.ParquetFile(store.path("device_features", key)).schema_arrow.names
    columns = diagnosis.columns(names) if pruned else None
    out = diagnosis(store.read("device_features", key, columns=columns))
    diagnosis.finish()
    state = pd.read_parquet(next((store.root / "cause_state").glob("*.parquet")))
    return out, state, columns


def test_the_diagnosis_columns_diagnose_as_every_column(tmp_path):
    store, key = _store(tmp_path / "all")
    every, every_state, _ = _diagnose(store, key, pruned=False)
    store, key = _store(tmp_path / "pruned")
    pruned, pruned_state, columns = _diagnose(store, key, pruned=True)
    assert len(columns) < len(load_contract("device_features").column_names) / 2
    assert every["cause"].ne("unknown").any()  # the comparison covers real diagnoses
    assert {"refrigerant_leak", "sensor_fault"} <= set(every["cause"])
    pd.testing.assert_frame_equal(pruned, every)
    pd.testing.assert_frame_equal(pruned_state, every_state)


def test_the_columns_are_those_of_the_signature_table_the_file_has():
    table = load_signatures()
    names = load_contract("device_features").column_names
    columns = HourDiagnosis.__new__(HourDiagnosis)
    columns.table = table
    chosen = columns.columns(names)
    features = {f for sig in table for f in sig.features}
    assert features & set(names) <= set(chosen)
    assert chosen == [c for c in names if c in chosen]  # the file's order
    assert columns.columns(["device_id", "window_start", "unrelated"]) == [
        "device_id",
        "window_start",
    ]


def test_the_hours_required_features_found_batch_by_batch_are_those_of_the_whole_hour(
    tmp_path, monkeypatch
):
    """A sensor only a few devices in the middle of the hour have still counts for the whole
    hour, and a requirement no window meets is not found, however the hour is cut into
    batches."""
    import refrig_assets.incidents.causes as causes

    store, key = _store(tmp_path)
    frame = store.read("device_features", key)
    others = ~frame["device_id"].isin(["dev-000010", "dev-000011"])
    frame.loc[others, "current_compressor_max"] = np.nan  # only two devices have it
    frame["door_open_longest_minutes"] = np.nan  # no window has it
    store.write("device_features", key, frame)
    whole = HourDiagnosis(store, key).available
    assert "current_compressor_max" in whole
    assert "door_open_longest_minutes" not in whole
    monkeypatch.setattr(causes, "REQUIREMENT_BATCH_ROWS", 7)
    assert HourDiagnosis(store, key).available == whole
