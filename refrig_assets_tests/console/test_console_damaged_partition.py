"""A damaged partition file leaves a gap in a device's page, not a server error (the page of
every device over that hour answered 500 before)."""

from __future__ import annotations

import logging

import pandas as pd

from refrig_assets.console.history import read_device_rows
from refrig_assets.core.storage import ParquetStore


def hour_of_windows(start: str, device: str = "dev-1") -> pd.DataFrame:
    starts = pd.date_range(start, periods=4, freq="15min", tz="UTC")
    return pd.DataFrame(
        {
            "device_id": device,
            "window_start": starts,
            "window_end": starts + pd.Timedelta(minutes=15),
            "duty_cycle": [0.1, 0.2, 0.3, 0.4],
        }
    )


def test_an_unreadable_hour_is_left_out_and_named_in_the_log(tmp_path, caplog):
    folder = tmp_path / "device_features"
    folder.mkdir()
    hour_of_windows("2026-01-01T00:00").to_parquet(folder / "2026-01-01T00.parquet")
    hour_of_windows("2026-01-01T02:00").to_parquet(folder / "2026-01-01T02.parquet")
    damaged = folder / "2026-01-01T01.parquet"
    hour_of_windows("2026-01-01T01:00").to_parquet(damaged)
    damaged.write_bytes(damaged.read_bytes()[:300])
    store = ParquetStore(tmp_path)
    start, end = pd.Timestamp("2026-01-01T00:00Z"), pd.Timestamp("2026-01-01T03:00Z")

    with caplog.at_level(logging.WARNING):
        rows = read_device_rows(store, "device_features", "dev-1", start, end)

    assert rows["window_start"].dt.hour.tolist() == [0, 0, 0, 0, 2, 2, 2, 2]
    assert rows["window_start"].is_monotonic_increasing
    assert str(damaged) in caplog.text


def test_readable_hours_are_read_as_before(tmp_path):
    folder = tmp_path / "device_features"
    folder.mkdir()
    for hour in ("00", "01"):
        frame = pd.concat(
            [
                hour_of_windows(f"2026-01-01T{hour}:00"),
                hour_of_windows(f"2026-01-01T{hour}:00", "x"),
            ]
        )
        frame.to_parquet(folder / f"2026-01-01T{hour}.parquet")
    store = ParquetStore(tmp_path)
    start, end = pd.Timestamp("2026-01-01T00:30Z"), pd.Timestamp("2026-01-01T02:00Z")

    rows = read_device_rows(store, "device_features", "dev-1", start, end)

    assert len(rows) == 6 and set(rows["device_id"]) == {"dev-1"}
