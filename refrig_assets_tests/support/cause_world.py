"""A small world for the probable-cause tests: healthy devices with known baselines."""

import pandas as pd

START = pd.Timestamp("2026-01-01T00:00Z")
COHORT = "reach_in_cooler"
# A healthy device: every feature's usual value and its usual window-to-window swing.
HEALTHY = {
    "reading_count": (15.0, 0.0),
    "sensor_completeness": (1.0, 0.0),
    "duty_cycle": (0.5, 0.1),
    "temperature_evaporator_mean": (-5.0, 0.5),
    "temperature_evaporator_slope": (0.0, 0.05),
    "temperature_evaporator_running_mean": (-8.0, 0.3),
    "pressure_low_side_running_mean": (270.0, 3.0),
    "pressure_high_side_running_mean": (1400.0, 15.0),
    "current_compressor_mean": (3.5, 0.3),
    "current_compressor_min": (0.05, 0.002),
    "current_compressor_max": (7.0, 0.1),
    "current_compressor_running_mean": (7.0, 0.1),
    "current_compressor_idle_max": (0.06, 0.002),
    "vibration_compressor_idle_max": (0.7, 0.02),
    "compressor_idle_longest_minutes": (8.0, 2.0),
    "vibration_compressor_min": (0.6, 0.02),
    "vibration_compressor_max": (2.2, 0.1),
    "vibration_compressor_running_mean": (2.0, 0.05),
    "evaporator_ambient_difference": (-27.0, 1.0),
    "condenser_ambient_difference": (12.0, 0.3),
    "compressor_starts_per_hour": (4.0, 1.0),
    "compressor_run_minutes_mean": (8.0, 1.0),
    "door_open_longest_minutes": (1.0, 0.5),
    "defrost_minutes": (0.0, 0.0),
    "defrost_longest_minutes": (0.0, 0.0),
}
DEFROST_EVERY_WINDOWS = 28  # one defrost per 7 h


def history(devices=tuple(f"dev-{i}" for i in range(1, 7)), windows=96):
    """A day of windows per device alternating around the healthy values (so each feature's
    device median is its healthy value and its spread known)."""
    rows = []
    for d in devices:
        for w in range(windows):
            sign = 1.0 if w % 2 else -1.0
            row = {f: c + sign * x for f, (c, x) in HEALTHY.items()}
            row["defrost_count"] = int(w % DEFROST_EVERY_WINDOWS == 5)
            row["defrost_minutes"] = 10.0 * row["defrost_count"]
            row.update(
                device_id=d,
                cohort=COHORT,
                window_start=START + pd.Timedelta(minutes=15 * w),
                window_end=START + pd.Timedelta(minutes=15 * (w + 1)),
                quality_mask=0,
                quality_flags="",
            )
            rows.append(row)
    return pd.DataFrame(rows)


def healthy_window(device="dev-1", **values):
    row = {f: c for f, (c, _) in HEALTHY.items()}
    row.update(
        device_id=device,
        cohort=COHORT,
        window_start=START + pd.Timedelta(days=1),
        window_end=START + pd.Timedelta(days=1, minutes=15),
        quality_mask=0,
        quality_flags="",
        defrost_count=0,
        hours_since_defrost=1.0,
    )
    row.update(values)
    return row
