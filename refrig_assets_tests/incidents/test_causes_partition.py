"""diagnose_partition: cohorts from the stored registry, baselines from the hours before the
partition (kept for the next hours), hours since the last defrost carried from hour to hour."""

import json

import pandas as pd
from support.cause_world import COHORT, HEALTHY, START, healthy_window, history

from refrig_assets.core.storage import ParquetStore
from refrig_assets.incidents.causes import diagnose_partition
from refrig_assets.incidents.causes_store import BASELINES, STATE, CauseStore


def _store_with_history(tmp_path, hours=24):
    store = ParquetStore(tmp_path / "data")
    frame = history(windows=hours * 4).drop(columns=["cohort"])
    stamps = frame["window_start"].dt.strftime("%Y-%m-%dT%H")
    for stem, part in frame.groupby(stamps):
        store.write("device_features", stem, part)
    devices = sorted(frame["device_id"].unique())
    store.write("device_registry", None, pd.DataFrame({"device_id": devices, "cohort": COHORT}))
    return store


def _hour(hour, **values):
    rows = []
    for q in range(4):
        row = healthy_window(**values)
        row.pop("cohort"), row.pop("hours_since_defrost")
        row["window_start"] = hour + pd.Timedelta(minutes=15 * q)
        row["window_end"] = row["window_start"] + pd.Timedelta(minutes=15)
        rows.append(row)
    return pd.DataFrame(rows)


def test_a_partition_is_diagnosed_against_the_hours_before_it(tmp_path):
    store = _store_with_history(tmp_path)
    hour = START + pd.Timedelta(hours=24)
    low = HEALTHY["pressure_low_side_running_mean"][0] * 0.8
    features = _hour(hour, pressure_low_side_running_mean=low, duty_cycle=0.9)
    out = diagnose_partition(store, "2026-01-02-00:00", features)
    assert len(out) == 4
    assert set(out["cause"]) == {"refrigerant_leak"}
    evidence = json.loads(out["evidence"].iloc[0])
    assert any(e["reference"] == "device" for e in evidence)
    # The baselines were kept for the next hours; the defrost state for the next hour.
    assert (store.root / BASELINES / "2026-01-02T00.parquet").exists()
    assert (store.root / STATE / "2026-01-02T00.parquet").exists()


def test_the_next_hour_reuses_the_kept_baselines(tmp_path):
    store = _store_with_history(tmp_path)
    table_hour = START + pd.Timedelta(hours=24)
    diagnose_partition(store, "2026-01-02-00:00", _hour(table_hour))
    diagnose_partition(store, "2026-01-02-01:00", _hour(table_hour + pd.Timedelta(hours=1)))
    assert sorted(p.stem for p in (store.root / BASELINES).glob("*.parquet")) == ["2026-01-02T00"]


def test_hours_since_defrost_run_on_from_the_last_defrost(tmp_path):
    store = _store_with_history(tmp_path)
    hour = START + pd.Timedelta(hours=24)
    from refrig_assets.incidents.signatures import load_signatures

    frame = CauseStore(store).with_derived("2026-01-02-00:00", _hour(hour), load_signatures())
    # History defrosts (every 7 h from window 5) ended last at window 89 = 22:30.
    last = START + pd.Timedelta(minutes=15 * 90)
    expected = [
        (hour + pd.Timedelta(minutes=15 * (q + 1)) - last) / pd.Timedelta(hours=1) for q in range(4)
    ]
    assert frame["hours_since_defrost"].tolist() == expected
    # A defrost in this hour restarts the count from its window's end.
    defrosting = _hour(hour + pd.Timedelta(hours=1))
    defrosting.loc[1, "defrost_minutes"] = 10.0
    frame = CauseStore(store).with_derived("2026-01-02-01:00", defrosting, load_signatures())
    assert frame["hours_since_defrost"].tolist() == [2.75, 0.0, 0.25, 0.5]


def test_a_device_that_stops_defrosting_is_a_defrost_failure(tmp_path):
    store = _store_with_history(tmp_path)
    out = None
    for h in range(24, 38):
        hour = START + pd.Timedelta(hours=h)
        # The coil ices up: its running temperature falls.
        icing = HEALTHY["temperature_evaporator_running_mean"][0] - 1.0
        features = _hour(hour, temperature_evaporator_running_mean=icing)
        out = diagnose_partition(store, hour.strftime("%Y-%m-%d-%H:00"), features)
    # Last defrost ended 22:30; usual interval 6 h; 1.5 x 6 h = 9 h later is 07:30.
    assert out is not None
    assert set(out["cause"]) == {"defrost_failure"}


def test_a_sensor_fault_hides_no_defrost_so_the_count_restarts(tmp_path):
    from refrig_assets.incidents.signatures import load_signatures
    from refrig_assets.quality.rules import quality_flag_names

    store = _store_with_history(tmp_path)
    hour = START + pd.Timedelta(hours=24)
    stuck = _hour(hour)
    stuck.loc[2, "quality_mask"] = 1 << quality_flag_names().index("STUCK_SENSOR")
    frame = CauseStore(store).with_derived("2026-01-02-00:00", stuck, load_signatures())
    assert frame["hours_since_defrost"].tolist()[2:] == [0.0, 0.25]
