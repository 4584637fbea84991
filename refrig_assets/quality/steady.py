"""Sensor values a healthy device may hold for long: never a stuck sensor.

Two declarations of a sensor column in contracts/sensor_readings.yaml make a value steady:

- ``steady_values``: values listed one by one (0 A while the compressor is off);
- ``running_above``: the threshold above which the machine runs. At or below it the machine is
  stopped, and the sensor reads an idle value: 0 A, or the flat draw of a controller, a
  crankcase heater or a meter's offset, whatever it is on this fleet. A current repeating a value
  above it is a running compressor whose reading does not move: that is still a stuck sensor.
"""

from __future__ import annotations

import numpy as np

from refrig_assets.core.contracts import ColumnSpec


def steady_sql(column: ColumnSpec, value: str) -> str | None:
    """SQL: the expression ``value`` of ``column`` is a steady value (None: the column has
    none). A NULL value is not steady."""
    terms = []
    listed = column.extra.get("steady_values") or []
    if listed:
        terms.append(f"{value} IN ({', '.join(str(float(v)) for v in listed)})")
    if "running_above" in column.extra:
        terms.append(f"{value} <= {float(column.extra['running_above'])}")
    return " OR ".join(terms) or None


def steady_mask(column: ColumnSpec, values: np.ndarray) -> np.ndarray:
    """Which of ``values`` (floats of ``column``, NaN where missing) are steady values."""
    steady = np.zeros(len(values), bool)
    for v in column.extra.get("steady_values") or []:
        steady |= values == float(v)
    if "running_above" in column.extra:
        steady |= values <= float(column.extra["running_above"])
    return steady
