"""Maintenance windows: declared per device or site, alerts inside them suppressed (kept, marked,
with the reason), and their feature windows left out of training. Real SQLite database."""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from support.operator_world import (
    BACKENDS,
    T0,
    Clock,
    alert_frame,
    db_snapshot,
    drop_all,
    fresh_store,
    operations,
)

from refrig_assets.core.contracts import load_contract
from refrig_assets.operations.maintenance import (
    MaintenanceCalendar,
    MaintenanceError,
    WindowCancelled,
    exclude_maintenance,
    maintenance_mask,
)
from refrig_assets.operations.suppression import (
    SuppressionLog,
    apply_operator_suppression,
    restore_stored_alerts,
    suppress_stored_alerts,
)

QUARTER = timedelta(minutes=15)


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    s = fresh_store(request.param, tmp_path)
    yield s
    drop_all(s)
    s.close()


@pytest.fixture
def calendar(store, tmp_path):
    return MaintenanceCalendar(store, clock=Clock(), settings=operations(tmp_path))


def windows_frame(rows):
    """Feature-like rows: (device_id, site_id, window_start)."""
    frame = pd.DataFrame(rows, columns=["device_id", "site_id", "window_start"])
    frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True)
    frame["window_end"] = frame["window_start"] + QUARTER
    return frame


# -- declaring windows -----------------------------------------------------------------------


def test_windows_are_declared_listed_and_cancelled(calendar):
    w = calendar.add("device", "dev-1", T0, T0 + timedelta(hours=2), "compressor swap", "ana")
    calendar.add(
        "site",
        "site-A",
        T0 + timedelta(days=1),
        T0 + timedelta(days=1, hours=3),
        "power work",
        "bo",
    )
    assert w["created_by"] == "ana" and w["starts_at"] == T0
    assert calendar.windows(device_id="dev-1")["id"].tolist() == [w["id"]]
    assert calendar.windows(device_id="dev-1", site_id="site-A")["reason"].tolist() == [
        "compressor swap",
        "power work",
    ]
    assert (
        len(
            calendar.windows(
                overlapping=(T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=5))
            )
        )
        == 1
    )
    cancelled = calendar.cancel(w["id"], "bo")
    assert cancelled["cancelled_by"] == "bo"
    assert calendar.windows(device_id="dev-1").empty
    assert len(calendar.windows(device_id="dev-1", include_cancelled=True)) == 1
    with pytest.raises(WindowCancelled, match="already cancelled by bo"):
        calendar.cancel(w["id"], "ana")


@pytest.mark.parametrize(
    "args, message",
    [
        (("fleet", "x", T0, T0 + QUARTER, "r"), "scope must be one of device, site"),
        (("device", " ", T0, T0 + QUARTER, "r"), "needs the device id"),
        (("device", "d", T0, T0, "r"), "must be after starts_at"),
        (
            ("device", "d", T0, T0 + timedelta(days=15), "r"),
            "longer than maintenance.max_window_days",
        ),
        (("device", "d", "not a time", T0, "r"), "ISO 8601"),
        (("device", "d", T0, T0 + QUARTER, "  "), "a reason is required"),
    ],
)
def test_invalid_windows_are_refused_and_nothing_is_stored(calendar, store, args, message):
    calendar.windows()  # tables exist
    before = db_snapshot(store.url)
    with pytest.raises(MaintenanceError, match=message):
        calendar.add(*args, actor="ana")
    assert db_snapshot(store.url) == before


def test_naive_times_are_utc(calendar):
    w = calendar.add("device", "d", "2026-03-02T10:00", "2026-03-02T12:00+01:00", "r", "ana")
    assert w["starts_at"] == pd.Timestamp("2026-03-02T10:00", tz="UTC")
    assert w["ends_at"] == pd.Timestamp("2026-03-02T11:00", tz="UTC")


def test_a_file_of_windows_is_imported_all_or_nothing(calendar, store, tmp_path):
    good = tmp_path / "windows.csv"
    good.write_text(
        "device_id,site_id,starts_at,ends_at,reason\n"
        "dev-1,,2026-03-02T08:00Z,2026-03-02T10:00Z,coil cleaning\n"
        ",site-B,2026-03-03T08:00Z,2026-03-03T12:00Z,electrical work\n"
    )
    result = calendar.import_file(good, "planner")
    assert [(w["scope"], w["target"]) for w in result["added"]] == [
        ("device", "dev-1"),
        ("site", "site-B"),
    ]
    again = calendar.import_file(good, "planner")
    assert again == {"added": [], "skipped": 2}

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "windows:\n"
        "  - {device_id: dev-2, starts_at: 2026-03-04T08:00Z, ends_at: 2026-03-04T09:00Z, reason: ok}\n"
        "  - {device_id: dev-3, starts_at: 2026-03-04T08:00Z, ends_at: 2026-03-04T07:00Z, reason: typo}\n"
        "  - {starts_at: 2026-03-04T08:00Z, ends_at: 2026-03-04T09:00Z}\n"
    )
    before = db_snapshot(store.url)
    with pytest.raises(MaintenanceError) as error:
        calendar.import_file(bad, "planner")
    assert f"{bad} row 2: ends_at" in str(error.value)
    assert f"{bad} row 3: missing scope/target (or device_id/site_id), reason" in str(error.value)
    assert db_snapshot(store.url) == before


# -- the mask training uses ------------------------------------------------------------------


def test_maintenance_mask_marks_overlapping_windows_of_the_device_or_its_site(calendar):
    calendar.add("device", "dev-1", T0, T0 + timedelta(hours=1), "swap", "ana")
    calendar.add("site", "site-B", T0 + timedelta(hours=2), T0 + timedelta(hours=3), "power", "ana")
    cancelled = calendar.add("device", "dev-3", T0, T0 + timedelta(hours=5), "oops", "ana")
    calendar.cancel(cancelled["id"], "ana")
    features = windows_frame(
        [
            ("dev-1", "site-A", T0 - QUARTER),  # ends exactly when maintenance starts: kept
            ("dev-1", "site-A", T0),  # inside
            ("dev-1", "site-A", T0 + timedelta(minutes=50)),  # overlaps the end
            ("dev-1", "site-A", T0 + timedelta(hours=1)),  # starts when it ends: kept
            ("dev-2", "site-A", T0),  # another device of another site
            ("dev-3", "site-B", T0 + timedelta(hours=2, minutes=30)),  # its site's window
            ("dev-3", "site-B", T0),  # only a cancelled window
        ]
    )
    mask = maintenance_mask(features, calendar.windows(include_cancelled=True))
    assert mask.tolist() == [False, True, True, False, False, True, False]


def test_site_windows_need_to_know_each_devices_site(calendar):
    calendar.add("site", "site-B", T0, T0 + timedelta(hours=1), "power", "ana")
    features = windows_frame([("dev-3", None, T0)]).drop(columns="site_id")
    with pytest.raises(MaintenanceError, match="pass the device registry"):
        maintenance_mask(features, calendar.windows())
    registry = pd.DataFrame({"device_id": ["dev-3"], "site_id": ["site-B"]})
    assert maintenance_mask(features, calendar.windows(), registry).tolist() == [True]


def synthetic_features(devices=3, windows=96, seed=1):
    """Contract-complete device_features rows with plausible, steady values."""
    contract = load_contract("device_features")
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-02-01", tz="UTC")
    rows = []
    for d in range(devices):
        for w in range(windows):
            row = {}
            for c in contract.columns:
                if c.type == "float":
                    low, high = c.range if c.range else (0.0, 1.0)
                    row[c.name] = float(low + (high - low) * (0.4 + 0.03 * rng.standard_normal()))
                elif c.type == "int":
                    row[c.name] = 15
                elif c.type == "string":
                    row[c.name] = ""
            row.update(
                device_id=f"dev-{d}",
                window_start=start + w * QUARTER,
                window_end=start + (w + 1) * QUARTER,
                sensor_completeness=1.0,
                quality_mask=0,
                cohort="display_case",
            )
            rows.append(row)
    return pd.DataFrame(rows)


def test_the_statistical_baseline_is_not_learned_from_maintenance_windows(store, calendar):
    """A device opened up for four hours reads nothing like itself; training on the fleet minus
    the declared window gives exactly the model trained without those hours."""
    from refrig_assets.core.model_config import load_model_config
    from refrig_assets.training.fit import train_detector

    features = synthetic_features()
    start = pd.Timestamp("2026-02-01T08:00", tz="UTC")
    inside = (features["device_id"] == "dev-0") & features["window_start"].between(
        start, start + timedelta(hours=4), inclusive="left"
    )
    wild = features.copy()
    sensors = [c for c in load_model_config("statistical_baseline").feature_columns if c in wild]
    wild.loc[inside, sensors] = wild.loc[inside, sensors] * 0.2  # technician at work
    calendar.add(
        "device", "dev-0", start, start + timedelta(hours=4), "refrigerant recharge", "ana"
    )

    config = load_model_config("statistical_baseline")
    kept = exclude_maintenance(wild, store.url)
    assert len(kept) == len(wild) - int(inside.sum()) and inside.sum() == 16
    _, with_mask, _ = train_detector(config, kept, "p", "r")
    clean, without_window, _ = train_detector(config, features[~inside], "p", "r")
    _, naive, _ = train_detector(config, wild, "p", "r")
    assert with_mask.training_data_hash == without_window.training_data_hash
    assert naive.training_data_hash != without_window.training_data_hash
    assert with_mask.training_rows == without_window.training_rows


# -- alerts inside windows -------------------------------------------------------------------


def batch(rows):
    return alert_frame(
        [
            {"device_id": d, "site_id": s, "window_start": w, "severity": "MEDIUM",
             "max_score": 0.86, "top_contributors": c}
            for d, s, w, c in rows
        ]
    )  # fmt: skip


def test_alerts_inside_a_window_are_suppressed_with_the_reason_and_kept(store, calendar):
    w = calendar.add(
        "site", "site-A", T0, T0 + timedelta(hours=2), "defrost heater replacement", "ana"
    )
    alerts = batch(
        [
            ("dev-1", "site-A", T0 + QUARTER, "temperature_evaporator"),
            ("dev-2", "site-A", T0 + timedelta(hours=3), "temperature_evaporator"),
            ("dev-3", "site-B", T0 + QUARTER, "temperature_evaporator"),
        ]
    )
    out = apply_operator_suppression(alerts, store, settings=calendar.settings)
    assert out["alert_id"].tolist() == alerts["alert_id"].tolist()
    assert out["suppressed"].tolist() == [True, False, False]
    reason = SuppressionLog(store).reason(alerts["alert_id"].iat[0])
    assert reason["kind"] == "maintenance" and reason["ref"] == str(w["id"])
    assert (
        "defrost heater replacement" in reason["reason"] and "declared by ana" in reason["reason"]
    )
    assert SuppressionLog(store).reason(alerts["alert_id"].iat[1]) is None


def test_the_first_alert_after_a_window_is_not_a_repeat_of_one_inside_it(store, calendar):
    calendar.add("device", "dev-1", T0, T0 + timedelta(hours=1), "compressor swap", "ana")
    contributor = "current_compressor"
    alerts = batch(
        [
            ("dev-1", "site-A", T0 + QUARTER, contributor),
            ("dev-1", "site-A", T0 + timedelta(hours=1, minutes=15), contributor),
        ]
    )
    # generate_alerts marked the second as a repeat of the first (same device and contributor
    # within the dedup window); with the first one suppressed by maintenance, it must show.
    alerts["suppressed"] = [False, True]
    out = apply_operator_suppression(alerts, store, settings=calendar.settings)
    assert out["suppressed"].tolist() == [True, False]


def test_declaring_a_window_later_suppresses_stored_alerts_and_cancelling_restores_them(
    store, calendar
):
    alerts = batch(
        [
            ("dev-1", "site-A", T0, "duty_cycle"),
            ("dev-1", "site-A", T0 + timedelta(hours=6), "duty_cycle"),
        ]
    )
    store.upsert(alerts)
    window = calendar.add(
        "device", "dev-1", T0 - QUARTER, T0 + timedelta(hours=1), "door fix", "ana"
    )
    assert suppress_stored_alerts(store, window) == [alerts["alert_id"].iat[0]]
    assert store.get(alerts["alert_id"].iat[0])["suppressed"] is True
    assert store.get(alerts["alert_id"].iat[1])["suppressed"] is False
    assert store.list()["alert_id"].tolist() == [alerts["alert_id"].iat[1]]
    window = calendar.cancel(window["id"], "bo")
    assert restore_stored_alerts(store, window) == [alerts["alert_id"].iat[0]]
    assert store.get(alerts["alert_id"].iat[0])["suppressed"] is False
    assert SuppressionLog(store).reasons().empty
