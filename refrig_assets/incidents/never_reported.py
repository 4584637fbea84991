"""Contract sensors no device of the fleet reported: an absent sensor, not a dropout of each
device. Found while nothing names the fleet's sensors; their dropout flags and the sensor
faults only they explained are cleared before the build."""

from __future__ import annotations

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import load_contract, quality_flag_names
from refrig_assets.core.fleet_sensors import ENV as SENSORS_ENV
from refrig_assets.core.fleet_sensors import (
    FROM_CONTRACT,
    fleet_sensor_columns,
    measurements_source,
)
from refrig_assets.incidents.policy import IncidentPolicy
from refrig_assets.incidents.quality_signals import flag_bits, held_flags, silent_windows
from refrig_assets.incidents.signal_frame import DROPOUT_FLAG, UNKNOWN, utc_ns


def never_reported_message(sensors: list[str]) -> str:
    """What an operator is told about contract sensors no device reported."""
    return (
        f"No device reported {', '.join(sensors)} in the windows seen: not a sensor dropout "
        f"of each device. Name the fleet's sensors in {SENSORS_ENV} to declare which it has."
    )


def never_reported_sensors(quality: pd.DataFrame | None, policy: IncidentPolicy) -> list[str]:
    """Sensors of the contract that no device reported in any window of ``quality`` while two
    or more devices reported others, while nothing names the fleet's sensors (no
    ``REFRIG_SENSORS``, no hour's reported sensors recorded yet): the files lack the column (or never fill it), so it is a
    sensor the fleet does not have, not a dropout of each device. A window without a dropout
    flag had every sensor (its ``<sensor>_mean`` may not have been read); a sensor without a
    ``<sensor>_mean`` column cannot be judged. One device alone cannot tell an absent sensor
    from a dropout: nothing is returned."""
    if quality is None or quality.empty:
        return []
    if measurements_source(load_contract("sensor_readings")) != FROM_CONTRACT:
        return []  # named in REFRIG_SENSORS, or learnt from the data: a sensor of the fleet
    if not {"quality_mask", "quality_flags"} & set(quality.columns):
        return []
    sensors = [
        c.name
        for c in fleet_sensor_columns(load_contract("sensor_readings"))
        if f"{c.name}_mean" in quality
    ]
    if not sensors or DROPOUT_FLAG not in quality_flag_names():
        return []
    whole = ~flag_bits(quality, (DROPOUT_FLAG,))[DROPOUT_FLAG]
    if whole.all():
        return []
    live = ~silent_windows(quality, policy)
    never = [s for s in sensors if not (live & (whole | quality[f"{s}_mean"].notna())).any()]
    if not never or quality.loc[live, "device_id"].nunique() < 2:
        return []
    return never


def without_never_reported(quality: pd.DataFrame, never: list[str]) -> pd.DataFrame:
    """``quality`` (a copy) without the dropout flag of the windows in which every sensor but
    the ``never`` reported ones has a value (``<sensor>_mean`` set, where the column exists):
    a window missing a reported sensor throughout stays a dropout; one that lost it for part
    of the window cannot be told from the absent sensor's flag and is cleared."""
    others = [
        c.name
        for c in fleet_sensor_columns(load_contract("sensor_readings"))
        if f"{c.name}_mean" in quality and c.name not in never
    ]
    keep = np.zeros(len(quality), dtype=bool)
    for sensor in others:
        keep |= quality[f"{sensor}_mean"].isna().to_numpy()
    clear = flag_bits(quality, (DROPOUT_FLAG,))[DROPOUT_FLAG] & ~keep
    out = quality.copy()
    if "quality_mask" in out:
        bit = 1 << quality_flag_names().index(DROPOUT_FLAG)
        mask = out["quality_mask"].fillna(0).astype("int64")
        out["quality_mask"] = mask.where(~clear, mask & ~bit)
    if "quality_flags" in out:
        text = out["quality_flags"].fillna("").astype(str)
        cleared = text.str.split(",").map(lambda fs: ",".join(f for f in fs if f != DROPOUT_FLAG))
        out["quality_flags"] = text.where(~clear, cleared)
    return out


def undiagnose_never_reported(
    diagnoses: pd.DataFrame | None, quality: pd.DataFrame, policy: IncidentPolicy
) -> pd.DataFrame | None:
    """``diagnoses`` with the sensor-fault windows that only a never reported sensor's dropout
    explained (``quality`` as :func:`without_never_reported` left it: no dropout flag there,
    and no other sensor-health flag in the evidence) set back to unknown, as a window no
    signature matches: the detectors' alert there is not a sensor fault."""
    if diagnoses is None or diagnoses.empty:
        return diagnoses
    held = held_flags(diagnoses["evidence"])
    hit = diagnoses["cause"].eq(policy.sensor_tickets.cause) & held.str.contains(
        rf"\b{DROPOUT_FLAG}\b", regex=True
    )
    for flag in policy.sensor_tickets.flags:
        if flag != DROPOUT_FLAG:
            hit &= ~held.str.contains(rf"\b{flag}\b", regex=True)
    if not hit.any():
        return diagnoses
    still = quality.loc[
        flag_bits(quality, (DROPOUT_FLAG,))[DROPOUT_FLAG], ["device_id", "window_start"]
    ]
    still = set(zip(still["device_id"].astype(str), utc_ns(still["window_start"]), strict=True))
    rows = diagnoses.loc[hit]
    keys = zip(rows["device_id"].astype(str), utc_ns(rows["window_start"]), strict=True)
    hit.loc[hit] = [k not in still for k in keys]
    out = diagnoses.copy()
    unknown = {"cause": UNKNOWN, "cause_kind": UNKNOWN, "confidence": 0.0, "evidence": "[]"}
    unknown.update(base_severity=None, standalone=False)
    for column, value in unknown.items():
        if column in out:
            out.loc[hit, column] = value
    return out
