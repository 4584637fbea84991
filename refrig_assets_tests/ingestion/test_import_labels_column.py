"""A public labelled dataset carries its labels in the readings' own rows (an `anomaly` column
of 0/1). The import noted the column as extra and dropped it, leaving the user to rebuild point
labels with the device ids and UTC times the import made (a folder-and-file device id, a
Moscow local time). A mapping's `labels: {column: anomaly}` writes them, and `refrig evaluate
--labels` reads the folder of them."""

import pandas as pd
from typer.testing import CliRunner

from refrig_assets.cli import app
from refrig_assets.core.settings import PROJECT_ROOT
from refrig_assets.evaluation.labelled import read_labels

HEADER = "datetime;Current;anomaly;changepoint"


def _experiment(path, start, anomalies):
    t0 = pd.Timestamp(start)
    lines = [HEADER] + [
        f"{(t0 + pd.Timedelta(seconds=i)):%Y-%m-%d %H:%M:%S};1.3{i};{a};0.0"
        for i, a in enumerate(anomalies)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def test_a_labels_column_becomes_point_labels_of_the_imported_readings(refrig_home, tmp_path):
    rig = (PROJECT_ROOT / "examples" / "mappings" / "1hz_test_rig.yaml").read_text()
    mapping = tmp_path / "labelled.yaml"
    mapping.write_text(rig + "labels: {column: anomaly}\n")
    data = tmp_path / "data"
    _experiment(data / "valve1" / "0.csv", "2026-03-09 10:14:33", ["0.0", "1.0", "1.0"])
    _experiment(data / "valve2" / "0.csv", "2026-03-09 10:20:00", ["0.0", "x"])
    result = CliRunner().invoke(app, ["import", str(data), "--mapping", str(mapping)])
    assert result.exit_code == 0, result.output
    folder = refrig_home / "data" / "import_labels"
    assert sorted(p.name for p in folder.iterdir()) == ["valve1_0.parquet", "valve2_0.parquet"]
    labels = read_labels(folder)
    assert labels.kind == "points"
    got = labels.frame.assign(ts=labels.frame["ts"].dt.strftime("%H:%M:%S"))
    assert got.values.tolist() == [
        ["rig-valve1-0", "07:14:33", False],
        ["rig-valve1-0", "07:14:34", True],
        ["rig-valve1-0", "07:14:35", True],
        ["rig-valve2-0", "07:20:00", False],
    ]
    # The labels column is no extra column any more; an unreadable label is named, the
    # reading kept.
    notes = pd.read_parquet(refrig_home / "data" / "import_quarantine" / "valve2_0.parquet")
    assert "anomaly" not in set(notes.loc[notes["rule"] == "extra_column", "column"])
    bad = notes[notes["rule"] == "unparsable_value"]
    assert bad[["row", "column", "value"]].values.tolist() == [[1, "anomaly", "x"]]
    readings = pd.concat(
        pd.read_parquet(p) for p in (refrig_home / "landing" / "imports").rglob("*.parquet")
    )
    assert len(readings) == 5
    # Imported again without labels, the folder holds no labels of the earlier import.
    (tmp_path / "plain.yaml").write_text(rig)
    again = CliRunner().invoke(
        app, ["import", str(data), "--mapping", str(tmp_path / "plain.yaml")]
    )
    assert again.exit_code == 0, again.output
    assert list(folder.iterdir()) == []


def test_labels_of_a_long_file_are_one_per_device_and_time(tmp_path):
    from refrig_assets.ingestion.mapping import convert_frame, load_mapping

    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "layout: long\n"
        "device_id: {column: device}\n"
        "timestamp: {column: ts}\n"
        "long: {sensor_column: sensor, value_column: value}\n"
        "labels: {column: state, true_values: [fault], false_values: [ok]}\n"
        "sensors:\n"
        "  T: {to: temperature_evaporator}\n"
        "  I: {to: current_compressor}\n"
    )
    frame = pd.DataFrame(
        {
            "device": ["d1", "d1", "d1", "d1"],
            "ts": ["2026-01-01T00:00:00Z"] * 2 + ["2026-01-01T00:01:00Z"] * 2,
            "sensor": ["T", "I", "T", "I"],
            "value": ["-18", "5", "-17", "6"],
            "state": ["ok", "ok", "ok", "fault"],
        }
    )
    out = convert_frame(frame, load_mapping(mapping), "x.csv")
    assert out.labels is not None
    assert out.labels["anomaly"].tolist() == [False, True]
    assert len(out.readings) == 2
