"""The incident step's frames at fleet size are built without copying the hour: the silent
sensors' means joined to the dropout devices' windows only, and the registry's cohorts read
once for every device shard. Both give exactly what the plain joins give."""

import pandas as pd
from support.incident_world import feature_window

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.fleet_sensors import fleet_sensor_columns
from refrig_assets.core.storage import ParquetStore
from refrig_assets.incidents.hourly import quality_columns, with_dropout_sensors
from refrig_assets.incidents.policy import incident_policy

KEY = "2026-01-01-00:00"


def means(value: float | None) -> dict[str, float | None]:
    """Every fleet sensor's ``<sensor>_mean`` set to ``value``."""
    return {f"{c.name}_mean": value for c in fleet_sensor_columns(load_contract("sensor_readings"))}


def test_dropout_means_equal_a_left_join_on_the_whole_hour(tmp_path):
    store = ParquetStore(tmp_path)
    # Dropout devices D1 and D3 sit between healthy devices, in the file and in the frame.
    rows = []
    for i in range(4):
        rows.append({**means(2.0), **feature_window("D0", i)})
        rows.append(
            {
                **means(float(i)),
                **feature_window("D1", i, flags="SENSOR_DROPOUT"),
                "pressure_high_side_mean": None,
            }
        )
        rows.append({**means(3.0), **feature_window("D2", i)})
        rows.append({**means(10.0 + i), **feature_window("D3", i, flags="SENSOR_DROPOUT")})
    store.write(
        "device_features",
        KEY,
        pd.DataFrame(rows).assign(
            compressor_idle_longest_minutes=0.0,
            current_compressor_idle_max=0.0,
            defrost_minutes=0.0,
        ),
    )
    quality = store.read("device_features", KEY, quality_columns(incident_policy()))
    quality = quality.sample(frac=1.0, random_state=3).reset_index(drop=True)

    out = with_dropout_sensors(store, quality, [KEY])

    added = [c for c in out.columns if c not in quality.columns]
    whole = store.read("device_features", KEY, ["device_id", "window_start", *added])
    whole = whole[whole["device_id"].isin(["D1", "D3"])]
    expected = quality.merge(whole, on=["device_id", "window_start"], how="left")
    assert added
    pd.testing.assert_frame_equal(out, expected)
    # Healthy devices get no means; the dropout devices get theirs, window by window.
    assert out.loc[out["device_id"].isin(["D0", "D2"]), added].isna().all().all()
    d3 = out[out["device_id"].eq("D3")].sort_values("window_start")
    assert d3[added[0]].tolist() == [10.0, 11.0, 12.0, 13.0]
