"""The NaN-storm rule: a landing file whose readings miss most of their sensor values.

A file whose readings in an hour miss more than ``max_missing_share`` of their sensor values
(``landing.nan_storm`` in contracts/sensor_readings.yaml) is a broken export: all its rows in
the hour are quarantined. The share counts the sensors the hour's readings report at all (a
value in any file): a fleet that has no pressure sensor sends no pressure, and that is not a
storm, whether or not ``REFRIG_SENSORS`` names the fleet's sensors. When no sensor reports a
value in the hour, every sensor counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def storm_files(
    counts: Mapping[str, tuple[int, Sequence[int]]], sensors: Sequence[str], rule: Mapping
) -> dict[str, float]:
    """Files breaking ``rule`` and their share of missing values.

    ``counts``: per file, its rows and its missing values of each of ``sensors`` (in order)."""
    if not sensors:
        return {}
    reported = [
        i for i in range(len(sensors)) if any(rows > miss[i] for rows, miss in counts.values())
    ] or list(range(len(sensors)))
    limit, least = float(rule["max_missing_share"]), int(rule["min_rows"])
    out = {}
    for file, (rows, miss) in counts.items():
        share = sum(miss[i] for i in reported) / (rows * len(reported)) if rows else 0.0
        if rows >= least and share > limit:
            out[file] = share
    return out
