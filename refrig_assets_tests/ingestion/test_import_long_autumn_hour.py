"""The hour the autumn change repeats, in a long source: told per device and sensor.

A long export has one row per device, time and sensor, so each time of a device comes once per
sensor. Told by the device's rows alone, those rows look like the clock repeating a time again
and again, and every reading of the repeated hour was quarantined as ``unparsable_value`` (two
hours of every multi-sensor device, every year). Each sensor's rows of a device go back once,
as a wide source's rows do.
"""

from pathlib import Path

import pandas as pd

from refrig_assets.ingestion.mapping import import_file, load_mapping

LONG = (
    "layout: long\n"
    "device_id: {column: device}\n"
    "timestamp: {column: ts, timezone: Europe/Berlin}\n"
    "long: {sensor_column: sensor, value_column: value}\n"
    "sensors:\n"
    "  temp: {to: temperature_evaporator}\n"
    "  amps: {to: current_compressor}\n"
)


def test_each_sensor_of_a_device_goes_back_once_in_the_repeated_hour(tmp_path: Path):
    wall = ["01:30", "02:00", "02:30", "02:00", "02:30", "03:00"]  # back once, at the change
    lines = ["device,ts,sensor,value"]
    for i, t in enumerate(wall):
        lines += [f"d1,2026-10-25 {t}:00,temp,{i}", f"d1,2026-10-25 {t}:00,amps,{10 + i}"]
    lines += ["h1,2026-10-25 02:00:00,temp,7", "h1,2026-10-25 02:00:00,temp,8"]  # hourly
    source = tmp_path / "long.csv"
    source.write_text("\n".join(lines) + "\n")
    (tmp_path / "m.yaml").write_text(LONG)
    result = import_file(
        source, load_mapping(tmp_path / "m.yaml"), tmp_path / "landing", tmp_path / "q"
    )
    assert result.quarantined == {}
    files = sorted((tmp_path / "landing").rglob("*.parquet"))
    got = pd.concat([pd.read_parquet(f) for f in files]).set_index(["device_id", "ts"])
    utc = {(d, f"{t:%H:%M}"): v for (d, t), v in got["temperature_evaporator"].items()}
    assert utc == {
        ("d1", "23:30"): 0.0,
        ("d1", "00:00"): 1.0,
        ("d1", "00:30"): 2.0,
        ("d1", "01:00"): 3.0,
        ("d1", "01:30"): 4.0,
        ("d1", "02:00"): 5.0,
        ("h1", "00:00"): 7.0,
        ("h1", "01:00"): 8.0,
    }
    amps = got["current_compressor"].dropna()
    assert amps.tolist() == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
