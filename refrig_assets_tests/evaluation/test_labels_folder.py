"""`refrig evaluate --labels <folder>` (the point labels `refrig import` writes, one file per
source) reads the files as one; a folder mixing point and interval labels is refused naming
each file's shape, instead of failing on the other shape's empty times."""

import pandas as pd
import pytest

from refrig_assets.evaluation.labelled import LabelsError, read_labels


def test_a_folder_of_point_labels_reads_as_one(tmp_path):
    pd.DataFrame(
        {"device_id": ["b"], "ts": [pd.Timestamp("2026-01-01T00:01Z")], "anomaly": [True]}
    ).to_parquet(tmp_path / "b.parquet")
    (tmp_path / "a.csv").write_text("device_id,ts,anomaly\na,2026-01-01T00:00:00Z,0\n")
    (tmp_path / ".hidden.csv").write_text("not,labels\n")
    labels = read_labels(tmp_path)
    assert labels.kind == "points"
    assert labels.frame[["device_id", "anomaly"]].values.tolist() == [["a", False], ["b", True]]


def test_a_folder_mixing_points_and_intervals_is_refused_by_file(tmp_path):
    (tmp_path / "points.csv").write_text("device_id,ts,anomaly\na,2026-01-01T00:00:00Z,1\n")
    (tmp_path / "faults.csv").write_text(
        "device_id,start,end\na,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z\n"
    )
    with pytest.raises(LabelsError, match="faults.csv: intervals; points.csv: points"):
        read_labels(tmp_path)


def test_an_empty_folder_is_refused(tmp_path):
    with pytest.raises(LabelsError, match="no CSV or Parquet labels file"):
        read_labels(tmp_path)
