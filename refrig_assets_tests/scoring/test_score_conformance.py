"""A piece of scores is checked on the Arrow table that gets written: whatever the piece, the
failures are exactly pandera's (Contract.validate), a conforming piece comes back as the table
pandas would have converted (none when Arrow cannot convert it: writing the frame raises as
before), and a broken one is not written."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.model_config import load_model_config
from refrig_assets.detectors.base import build_detector
from refrig_assets.scoring.conformance import checked_table, conforms
from refrig_assets.scoring.score import score_windows
from tools.benchmarks.scoring import START, synthetic_features

CONTRACT = load_contract("model_scores")


def valid() -> pd.DataFrame:
    """Conforming model_scores rows of four devices, four windows each, in key order."""
    starts = pd.Timestamp("2026-01-01 02:00", tz="UTC") + pd.to_timedelta(
        np.arange(4) * 15, unit="min"
    )
    frame = pd.DataFrame(
        {
            "device_id": np.repeat([f"dev-{i}" for i in range(4)], 4),
            "window_start": np.tile(starts, 4),
        }
    )
    frame["window_end"] = frame["window_start"] + pd.Timedelta(minutes=15)
    frame["model_id"] = "m"
    frame["model_version"] = "1"
    frame["granularity"] = "cohort"
    frame["anomaly_score"] = np.linspace(0.0, 1.0, len(frame))
    frame["anomaly_flag"] = frame["anomaly_score"] >= 0.8
    frame["top_contributors"] = "pressure_low_side"
    frame["contributor_detail"] = "pressure_low_side 1.0σ below"
    frame["confidence"] = 1.0
    frame["scored_at"] = pd.Timestamp("2026-01-02", tz="UTC")
    return frame[CONTRACT.column_names]


def changed(column: str, row: int, value) -> pd.DataFrame:
    frame = valid()
    values = frame[column].astype(object).to_numpy()
    values[row] = value
    frame[column] = pd.Series(values, index=frame.index).infer_objects()
    return frame


CASES = {
    "valid": valid,
    "empty": lambda: valid().iloc[:0],
    "score NaN": lambda: changed("anomaly_score", 3, np.nan),
    "score above range": lambda: changed("anomaly_score", 3, 1.5),
    "score infinite": lambda: changed("anomaly_score", 0, np.inf),
    "confidence below range": lambda: changed("confidence", 5, -0.1),
    "granularity not allowed": lambda: changed("granularity", 1, "region"),
    "device id missing": lambda: changed("device_id", 2, None),
    "contributor NaN": lambda: changed("top_contributors", 7, np.nan),
    "contributor a number": lambda: changed("contributor_detail", 7, 3),
    "contributors all numbers": lambda: valid().assign(top_contributors=1),
    "naive window start": lambda: valid().assign(
        window_start=valid()["window_start"].dt.tz_localize(None)
    ),
    "window start not UTC": lambda: valid().assign(
        window_start=valid()["window_start"].dt.tz_convert("Europe/Berlin")
    ),
    "window end missing": lambda: changed("window_end", 4, pd.NaT),
    "confidence float32": lambda: valid().assign(confidence=np.float32(1.0)),
    "confidence nullable Float64": lambda: valid().astype({"confidence": "Float64"}),
    "flag as objects": lambda: valid().astype({"anomaly_flag": object}),
    "extra column": lambda: valid().assign(note="x"),
    "missing column": lambda: valid().drop(columns=["confidence"]),
    "repeated key": lambda: pd.concat([valid(), valid().iloc[[5]]], ignore_index=True),
    "unique keys out of order": lambda: valid().sample(frac=1.0, random_state=1),
    "two models interleaved": lambda: pd.concat(
        [valid(), valid().assign(model_id="n")], ignore_index=True
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_failures_are_exactly_pandera_s_and_only_conforming_pieces_are_written(case):
    frame = CASES[case]()
    table, failures = checked_table(CONTRACT, frame)
    expected = CONTRACT.validate(frame)
    pd.testing.assert_frame_equal(failures, expected)
    if not expected.empty:
        assert table is None
    if table is not None:
        assert table.equals(pa.Table.from_pandas(frame, preserve_index=False))
    elif expected.empty:  # conforms, but Arrow cannot convert it: the writer raises as before
        with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
            pa.Table.from_pandas(frame, preserve_index=False)


def test_broken_pieces_are_not_shown_to_conform():
    for case in CASES:
        frame = CASES[case]()
        if CONTRACT.validate(frame).empty:
            continue
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            continue
        assert not conforms(CONTRACT, frame, table), case


def test_a_detector_s_scores_conform_without_pandera():
    frame = synthetic_features(devices=60, hours=3, seed=2)
    detector = build_detector(load_model_config("dbscan_cohort"))
    detector.fit(frame[frame["window_start"] < pd.Timestamp(START) + pd.Timedelta(hours=2)])
    scores = score_windows(detector, "1", frame, START)
    assert len(scores) > 0
    assert conforms(CONTRACT, scores, pa.Table.from_pandas(scores, preserve_index=False))
