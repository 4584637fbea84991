"""Plain statistics for a fleet whose compressors never reach the running threshold.

Features compute the running-conditioned statistics (``<sensor>_running_<stat>``, the duty
cycle) only from readings where the running-state sensor (the one declaring ``running_above``
in ``contracts/sensor_readings.yaml``) is above that threshold, and a detector uses them only
in windows where the compressor ran for at least ``running_share.min`` of the window. A fleet
whose motors draw less than the threshold while they run (a small pump on a 1 A motor) has no
such window: every running-conditioned feature is missing in every training window.

When that holds for most devices of every cohort in a detector's training data, the detector
trains on the plain statistics instead (``<sensor>_running_mean`` -> ``<sensor>_mean``,
running-state features left out): the mapping
:func:`~refrig_assets.core.fleet_sensors.usable_features` applies to a fleet without the
running-state sensor. The choice and why are kept with the model, so scoring reads the same
columns. A cohort that never ran while others did keeps the configured columns, but its windows
read the plain statistic in each running-conditioned column, and the model's notes name it. A
fleet whose cohorts run trains as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import Contract, load_contract
from refrig_assets.core.fleet_sensors import usable_features
from refrig_assets.core.settings import CONTRACTS_DIR


@dataclass(frozen=True)
class RunningChoice:
    """What a detector trains on given its training data's running state: the columns (plain
    statistics where the running state never occurred, else the configured ones) and notes
    saying why, for the model's description and the run's summary."""

    feature_columns: list[str]
    context_columns: list[str]
    plain: bool
    notes: tuple[str, ...] = ()
    # Cohorts that never ran beside cohorts that did: in their windows each running-conditioned
    # column holds its plain statistic (``plain_of``); running-state features are missing.
    plain_cohorts: frozenset = frozenset()
    plain_of: tuple[tuple[str, str], ...] = ()


def is_running_conditioned(feature: str, features: Contract) -> bool:
    """Whether a device_features column is computed only over running readings."""
    try:
        return features.column(feature).extra.get("condition") == "running"
    except KeyError:
        return False


def plain_statistics(names: list[str], features: Contract) -> list[str]:
    """``names`` for a fleet with no running state: each running-conditioned statistic becomes
    the plain one (``<sensor>_running_mean`` -> ``<sensor>_mean``) and features of the running
    state (the duty cycle, starts and runs, defrost) are left out, in order, without repeats
    (:func:`~refrig_assets.core.fleet_sensors.usable_features`' mapping)."""
    return usable_features(names, features, running_state=False)


def running_usable(
    features: pd.DataFrame, keep: np.ndarray, conditioned: list[str], share: dict[str, Any]
) -> np.ndarray:
    """Per window kept (``keep``): whether any of the running-conditioned columns has a value
    the detector may use (present, and the window ran for ``running_share.min`` of it)."""
    usable = np.zeros(int(keep.sum()), dtype=bool)
    for column in conditioned:
        usable |= ~np.isnan(np.asarray(features[column], dtype=float)[keep])
    share_column, floor = share.get("column"), float(share.get("min", 0.0) or 0.0)
    if share_column and floor > 0 and share_column in features.columns:
        ran = np.asarray(features[share_column], dtype=float)[keep] >= floor
        usable &= ran
    return usable


def choose_running_columns(
    features: pd.DataFrame,
    keep: np.ndarray,
    feature_columns: list[str],
    context_columns: list[str],
    share: dict[str, Any],
) -> RunningChoice:
    """The columns a detector trains on, given its scorable training windows (``keep``).

    A cohort *never runs* when most of its devices (more than half) have no scorable training
    window with a usable running-conditioned value (the compressor above its threshold for
    ``running_share.min`` of the window): one device whose fault drove the current over the
    threshold does not make a cohort of small motors a running one. When every cohort never
    runs, plain statistics replace the running-conditioned columns; when only some do, the
    model keeps the configured columns and those cohorts' windows read their plain statistics
    in them (``plain_cohorts``, ``plain_of``). Either needs the plain columns in the data;
    otherwise (and when every cohort runs) the configured columns as they are."""
    contract = load_contract("device_features")
    inputs = feature_columns + context_columns
    conditioned = [c for c in inputs if is_running_conditioned(c, contract)]
    unchanged = RunningChoice(list(feature_columns), list(context_columns), plain=False)
    if not conditioned or not keep.any():
        return unchanged
    usable = running_usable(features, keep, conditioned, share)
    cohorts = _cohorts(features, keep)
    devices = features["device_id"].to_numpy()[keep]
    ran = pd.Series(usable).groupby([cohorts, devices]).any()
    devices_ran = ran.groupby(level=0).agg(["sum", "size"])
    idle = sorted(
        (c for c, (k, n) in devices_ran.iterrows() if k * 2 < n),
        key=str,
    )
    if not idle:
        return unchanged
    in_idle = keep.copy()
    in_idle[keep] = np.isin(cohorts, idle)
    ran_in_idle = int(devices_ran.loc[idle, "sum"].sum())
    of_devices = int(devices_ran.loc[idle, "size"].sum())
    why = f"{_named(idle)}: {_never_ran(features, in_idle, share, ran_in_idle, of_devices)}"
    pairs = _plain_pairs(conditioned, contract)
    state = [c for c in running_state_features(inputs, contract) if c not in conditioned]
    if len(idle) < len(devices_ran):
        if not pairs or any(p not in features.columns for _, p in pairs):
            note = f"{why}; its windows are judged without the running-conditioned features"
            return RunningChoice(list(feature_columns), list(context_columns), False, (note,))
        note = (
            f"{why}; in its windows running-conditioned features read the plain statistics"
            f" ({', '.join(_mapping(conditioned, contract))})"
            + (f", {', '.join(state)} missing" if state else "")
        )
        return RunningChoice(
            list(feature_columns),
            list(context_columns),
            False,
            (note,),
            plain_cohorts=frozenset(idle),
            plain_of=tuple(pairs),
        )
    plain_features = plain_statistics(feature_columns, contract)
    plain_context = [
        c for c in plain_statistics(context_columns, contract) if c not in plain_features
    ]
    if not plain_features or any(c not in features.columns for c in plain_features):
        return unchanged  # nothing to fall back on: training refuses and says why
    note = (
        f"{why}; running-conditioned features replaced by plain statistics"
        f" ({', '.join(_mapping(conditioned, contract))})"
        + (f", {', '.join(state)} left out" if state else "")
    )
    return RunningChoice(plain_features, plain_context, plain=True, notes=(note,))


def running_state_features(names: list[str], contract: Contract) -> list[str]:
    """The features of ``names`` that only the running state gives (``duty_cycle``, starts and
    runs; running-conditioned statistics among them): what :func:`plain_statistics` leaves out
    or replaces."""
    kept = set(plain_statistics(names, contract))
    return [n for n in names if n not in kept]


def _plain_pairs(conditioned: list[str], contract: Contract) -> list[tuple[str, str]]:
    """(running-conditioned column, its plain statistic) where there is one."""
    pairs = []
    for column in conditioned:
        plain = plain_statistics([column], contract)
        if plain:
            pairs.append((column, plain[0]))
    return pairs


def _mapping(conditioned: list[str], contract: Contract) -> list[str]:
    """``<running column> -> <plain column>`` for each running-conditioned column."""
    plain = dict(_plain_pairs(conditioned, contract))
    return [f"{c} -> {plain[c]}" if c in plain else f"{c} left out" for c in conditioned]


def _cohorts(features: pd.DataFrame, keep: np.ndarray) -> np.ndarray:
    if "cohort" not in features.columns:
        return np.full(int(keep.sum()), "fleet", dtype=object)
    return features["cohort"].to_numpy()[keep].astype(object)


def _named(cohorts: list[Any]) -> str:
    return ", ".join(str(c) for c in cohorts)


def _never_ran(
    features: pd.DataFrame, keep: np.ndarray, share: dict[str, Any], ran: int, devices: int
) -> str:
    """Why no running window (in ``keep``): the sensor never above its threshold, never for
    long enough, or only on ``ran`` of the ``devices``."""
    readings = load_contract("sensor_readings")
    declared = readings.running_sensors()
    where = f"{CONTRACTS_DIR.name}/{readings.dataset}.yaml"
    if not declared:
        return "no window in the running state in training"
    sensor = declared[0]
    unit = f" {sensor.unit}" if sensor.unit else ""
    threshold = f"running_above {sensor.extra['running_above']}{unit} ({where})"
    share_column, floor = share.get("column"), float(share.get("min", 0.0) or 0.0)
    if ran:
        return (
            f"{sensor.name} above {threshold} for running_share.min {floor} of a window on "
            f"only {ran} of {devices} devices in training"
        )
    most = (
        float(np.nanmax(np.asarray(features[share_column], dtype=float)[keep], initial=0.0))
        if share_column and share_column in features.columns
        else 0.0
    )
    if most > 0 and floor > 0:
        return (
            f"{sensor.name} above {threshold} for at most {most:.0%} of any training window, "
            f"less than running_share.min {floor}"
        )
    return f"{sensor.name} never above {threshold} in training"
