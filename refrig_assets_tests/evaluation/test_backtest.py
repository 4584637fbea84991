"""Detection quality on a tiny labelled fleet whose numbers can be checked by hand.

Four devices watched for 6 hours (one device-day):
* dev-a: refrigerant leak from 02:00 (lasts to the end) — alerted at 02:45 and 03:15;
* dev-b: compressor overload 03:00–03:20 — never alerted (missed);
* dev-c: stuck sensor 01:00–02:00 (a sensor fault: not an incident) — alerted at 01:30;
* dev-d: healthy — alerted once at 04:15 (a false alert).
"""

import pandas as pd
import pytest

from refrig_assets.evaluation.backtest import GRACE, backtest, score_backtest

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def at(hh_mm: str) -> pd.Timestamp:
    h, m = hh_mm.split(":")
    return T0 + pd.Timedelta(hours=int(h), minutes=int(m))


def window(device: str, start: str, **extra) -> dict:
    return {
        "device_id": device,
        "window_start": at(start),
        "window_end": at(start) + pd.Timedelta("15min"),
        **extra,
    }


LABELS = pd.DataFrame(
    [
        ("dev-a", "refrigerant_leak", "gradual", at("02:00"), at("06:00"), None),
        ("dev-b", "compressor_overload", "acute", at("03:00"), at("03:20"), None),
        ("dev-c", "stuck_sensor", "sensor", at("01:00"), at("02:00"), "pressure_low_side"),
    ],
    columns=["device_id", "fault_type", "category", "onset", "end", "sensor"],
)
ALERTS = pd.DataFrame(
    [
        window("dev-a", "02:30", source="batch"),
        window("dev-a", "03:00", source="batch"),
        window("dev-c", "01:15", source="batch"),
        window("dev-d", "04:00", source="batch"),
    ]
)
DEVICE_HOURS = 4 * 6


@pytest.fixture
def result():
    return backtest(ALERTS, LABELS, DEVICE_HOURS)


def test_recall_and_delay_per_fault_type(result):
    per_type, _ = result
    rows = per_type.set_index("fault_type")
    assert list(rows.index) == ["compressor_overload", "refrigerant_leak"]  # sensor faults aren't
    leak = rows.loc["refrigerant_leak"]
    assert (leak["incidents"], leak["caught"], leak["recall"]) == (1, 1, 1.0)
    assert leak["median_delay_min"] == 45  # first alert window ends 02:45, onset 02:00
    assert leak["true_alerts"] == 2
    overload = rows.loc["compressor_overload"]
    assert (overload["caught"], overload["recall"], overload["true_alerts"]) == (0, 0.0, 0)


def test_precision_and_false_alerts_per_device_day(result):
    _, totals = result
    assert totals["recall"] == 0.5
    assert totals["recall_gradual"] == 1.0 and totals["recall_acute"] == 0.0
    assert totals["alerts"] == 4
    assert totals["precision"] == 0.75  # the stuck-sensor alert is true, dev-d's is not
    assert totals["false_alerts"] == 1
    assert totals["false_alerts_per_1000_device_days"] == 1000.0  # 1 in one device-day


def test_an_alert_just_after_a_fault_ends_is_still_true_but_not_later():
    inside_grace = window("dev-b", "03:35")  # overload ended 03:20; grace is 30 minutes
    after_grace = window("dev-b", "04:00")
    _, totals = backtest(pd.DataFrame([inside_grace, after_grace]), LABELS, DEVICE_HOURS)
    assert GRACE == pd.Timedelta(minutes=30)
    assert totals["precision"] == 0.5


def test_an_alert_beyond_the_horizon_does_not_catch_the_incident():
    late = window("dev-a", "05:00")
    per_type, _ = backtest(pd.DataFrame([late]), LABELS, DEVICE_HOURS, horizon=pd.Timedelta("2h"))
    assert per_type.set_index("fault_type").loc["refrigerant_leak", "caught"] == 0


def test_a_suppressed_repeat_counts_as_detection_but_not_as_an_alert():
    repeat = window("dev-b", "03:00", suppressed=True)  # deduplicated against an earlier alert
    shown = window("dev-d", "04:00", suppressed=False)
    per_type, totals = backtest(pd.DataFrame([repeat, shown]), LABELS, DEVICE_HOURS)
    assert per_type.set_index("fault_type").loc["compressor_overload", "caught"] == 1
    assert totals["alerts"] == 1 and totals["false_alerts"] == 1


def test_no_alerts_at_all_gives_zero_recall_and_no_precision():
    empty = pd.DataFrame(columns=["device_id", "window_start", "window_end"])
    per_type, totals = backtest(empty, LABELS, DEVICE_HOURS)
    assert per_type["caught"].sum() == 0
    assert totals["recall"] == 0.0 and totals["alerts"] == 0
    assert pd.isna(totals["precision"])


def test_per_detector_quality_from_flagged_scores():
    scores = pd.DataFrame(
        [
            window("dev-a", "02:15", model_id="m1", model_version="3", anomaly_flag=True),
            window("dev-d", "04:00", model_id="m1", model_version="3", anomaly_flag=True),
            window("dev-d", "04:15", model_id="m1", model_version="3", anomaly_flag=True),
            window("dev-a", "02:15", model_id="m2", model_version="1", anomaly_flag=False),
        ]
    )
    table = score_backtest(scores, LABELS, DEVICE_HOURS, rows_scored={"m1": 100, "m2": 100})
    m1, m2 = (table.set_index("model_id").loc[m] for m in ("m1", "m2"))
    assert (m1["rows_scored"], m1["rows_flagged"], m1["incidents_caught"]) == (100, 3, 1)
    assert m1["median_delay_min"] == 30
    assert m1["flag_precision"] == pytest.approx(1 / 3)
    assert m1["false_flag_device_hours"] == 1  # two false windows in the same device-hour
    assert m1["false_flags_per_1000_device_days"] == 1000.0
    assert (m2["rows_flagged"], m2["incidents_caught"]) == (0, 0)


def test_flagged_scores_read_across_an_empty_hour(tmp_path):
    """An hour without readings leaves an empty score partition: the backtest still reads the
    detector's flags around it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from refrig_assets.evaluation.backtest import flagged_scores

    folder = tmp_path / "isolation_forest_scores"
    folder.mkdir()
    start = pd.Timestamp("2026-01-01T00:00Z")
    pd.DataFrame(
        {
            "model_id": ["isolation_forest"],
            "model_version": ["1"],
            "device_id": ["d1"],
            "window_start": [start],
            "window_end": [start + pd.Timedelta("15min")],
            "anomaly_flag": [True],
        }
    ).to_parquet(folder / "2026-01-01T00.parquet")
    empty = pa.table(
        {
            "model_id": pa.array([], pa.null()),
            "model_version": pa.array([], pa.null()),
            "device_id": pa.array([], pa.null()),
            "window_start": pa.array([], pa.timestamp("ns", tz="UTC")),
            "window_end": pa.array([], pa.timestamp("ns", tz="UTC")),
            "anomaly_flag": pa.array([], pa.bool_()),
        }
    )
    pq.write_table(empty, folder / "2026-01-01T01.parquet")

    class Store:
        root = tmp_path

    rows, scored = flagged_scores(Store(), "isolation_forest", ["2026-01-01T00", "2026-01-01T01"])
    assert rows["device_id"].tolist() == ["d1"] and scored == 1
