"""A device's sensor_completeness is measured against its own sensor kit: a data logger that
reports only its coil temperature in a fleet whose other devices report every sensor is
complete, not silent (completeness under silent_completeness_below) and not unscorable."""

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.fleet_sensors import measurement_columns, record_hour_measurements
from refrig_assets.core.settings import get_settings
from refrig_assets.features.windows import feature_sql
from refrig_assets.serving.window_features import window_features

READINGS = load_contract("sensor_readings")
EVERY = [c.name for c in measurement_columns(READINGS)]


def test_a_data_logger_is_complete_against_its_own_kit(refrig_home, monkeypatch, tmp_path):
    monkeypatch.delenv("REFRIG_SENSORS", raising=False)
    ts = pd.date_range("2026-01-01", periods=15, freq="1min", tz="UTC")
    rows = []
    for device, kit in [("full", set(EVERY)), ("logger", {"temperature_evaporator", "door_open"})]:
        for t in ts:
            row = {"device_id": device, "ts": t}
            for name in EVERY:
                value = False if name == "door_open" else 1.0 + t.minute * 0.01
                row[name] = value if name in kit else None
            rows.append(row)
    clean = pd.DataFrame(rows)
    path = tmp_path / "typed.parquet"
    pq.write_table(pa.Table.from_pandas(clean, preserve_index=False), path)
    record_hour_measurements(get_settings().data_dir, path, "2026-01-01-00:00", READINGS)
    con = duckdb.connect()
    con.register("clean", clean.assign(quality_mask=0, quality_flags=""))
    out = con.execute(feature_sql("clean", window_min=15, cadence_seconds=60)).df()
    completeness = out.set_index("device_id")["sensor_completeness"].to_dict()
    assert completeness == {"full": 1.0, "logger": 1.0}
    # The serving path's windows (a request's few devices) measure it the same way.
    served_rows = clean.assign(ts=clean["ts"].astype("datetime64[us, UTC]"), quality_mask=0)
    table = pa.Table.from_pandas(served_rows.assign(quality_flags=""), preserve_index=False)
    served = window_features(table, cadence_seconds=60)
    assert served["sensor_completeness"].to_pylist() == [1.0, 1.0]
