"""Training rows that carry no information, and why: every scored feature missing or constant.

A model fitted on such rows scores every window the same (it would look trained and never
flag), so :meth:`~refrig_assets.detectors.base.Detector.fit` refuses it. The usual cause is a
fleet whose compressors draw less than the contract's running threshold: no window is in the
running state, every running-state feature is missing and the duty cycle is 0. The reason names
the columns and that threshold, read from the contracts, in words a user acts on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.core.fleet_sensors import measurement_columns, reported_measurements
from refrig_assets.core.model_config import ModelConfig
from refrig_assets.core.settings import CONTRACTS_DIR


def uninformative_columns(frame: pd.DataFrame, columns: list[str]) -> tuple[list[str], list[str]]:
    """(missing, constant) columns of the prepared training rows when every one of ``columns``
    is one or the other; ``([], [])`` as soon as one column varies."""
    missing: list[str] = []
    constant: list[str] = []
    for name in columns:
        values = np.asarray(frame[name], dtype=float)
        present = values[~np.isnan(values)]
        if present.size == 0:
            missing.append(name)
        elif present.min() == present.max():
            constant.append(name)
        else:
            return [], []
    return missing, constant


def _is_running_feature(column: str) -> bool:
    return load_contract("device_features").column(column).extra.get("condition") == "running"


def _first_value(features: pd.DataFrame, column: str) -> str:
    """The value a constant column holds, as the features read it (before any log scale)."""
    values = features[column].dropna()
    return f"{values.iloc[0]:g}" if len(values) else "missing"


def uninformative_reason(
    config: ModelConfig,
    features: pd.DataFrame,
    missing: list[str],
    constant: list[str],
    rows: int,
) -> tuple[str, str]:
    """(reason, setting) for training rows whose scored features are all ``missing`` or
    ``constant``: the columns, what they read, and the likely cause with the setting to look
    at. ``features``: the scorable training windows as the features store has them."""
    parts = []
    if missing:
        parts.append(f"every {', '.join(missing)} is missing")
    if constant:
        parts.append(
            " and ".join(f"{c} is {_first_value(features, c)}" for c in constant)
            + " in all of them"
        )
    facts = f"no information to learn from in {rows} scorable training rows: " + "; ".join(parts)
    if any(_is_running_feature(c) for c in missing):
        cause, setting = _running_cause(config, features)
    elif missing:
        cause, setting = unreported_cause(missing)
    else:
        cause = (
            "every training window reads the same value, so any window would score the same "
            "(a stuck sensor, or a training range of idle devices)"
        )
        setting = "features.sensors"
    return f"{facts}: {cause}", setting


def unreported_cause(columns: list[str]) -> tuple[str, str]:
    """(cause, setting) for feature ``columns`` no training row has a value of: the fleet does
    not report their sensors, or its data reports them and the quality rules kept none of their
    readings (every one out of the contract's range: a wrong unit in an import mapping)."""
    readings = load_contract("sensor_readings")
    sensors = [
        c.name
        for c in measurement_columns(readings)
        if any(col == c.name or col.startswith(f"{c.name}_") for col in columns)
    ]
    reported = set(reported_measurements(readings) or [])
    flagged = [s for s in sensors if s in reported]
    if flagged:
        where = f"{CONTRACTS_DIR.name}/{readings.dataset}.yaml"
        return (
            f"the fleet's data reports {', '.join(flagged)} but no training window kept a value "
            "of it: the quality rules flagged its readings (`refrig quality` names the rule; "
            f"every reading outside the range in {where} usually means the wrong unit in an "
            "import mapping)",
            f"{flagged[0]}.range",
        )
    return (
        "no training window has a reading of these sensors: a sensor the fleet does not report "
        "(name the fleet's sensors in REFRIG_SENSORS)",
        "REFRIG_SENSORS",
    )


def _running_cause(config: ModelConfig, features: pd.DataFrame) -> tuple[str, str]:
    """Why the running-state features are missing: the compressor never ran by the contract's
    threshold, or never ran for long enough of a window (``running_share``)."""
    readings = load_contract("sensor_readings")
    declared = readings.running_sensors()
    spec = config.settings.get("running_share") or {}
    share_column, floor = spec.get("column"), float(spec.get("min", 0.0) or 0.0)
    share = (
        features[share_column].max()
        if share_column and share_column in features.columns
        else np.nan
    )
    if declared and not (share > 0):
        sensor = declared[0]
        unit = f" {sensor.unit}" if sensor.unit else ""
        where = f"{CONTRACTS_DIR.name}/{readings.dataset}.yaml"
        return (
            f"no training window had the compressor running ({sensor.name} above "
            f"{sensor.extra['running_above']}{unit}, {where} running_above); if this fleet's "
            f"{sensor.name} stays below that while its machines run, lower that threshold to "
            "what they draw when running",
            f"{sensor.name}.running_above",
        )
    if floor > 0 and share < floor:
        return (
            f"the compressor ran for at most {share:.0%} of any training window, less than "
            f"running_share.min {floor} (models/) that a running-state feature needs",
            "running_share.min",
        )
    return (
        "no training window has a reading of these sensors while the compressor runs (name "
        "the fleet's sensors in REFRIG_SENSORS)",
        "REFRIG_SENSORS",
    )
