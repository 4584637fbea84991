"""Plain statistics for a fleet whose compressors never reach the running threshold.

Features compute the running-conditioned statistics (``<sensor>_running_<stat>``, the duty
cycle) only from readings where the running-state sensor (the one declaring ``running_above``
in ``contracts/sensor_readings.yaml``) is above that threshold, and a detector uses them only
in windows where the compressor ran for at least ``running_share.min`` of the window. A fleet
whose motors draw less than the threshold while they run (a small pump on a 1 A motor) has no
such window: every running-conditioned feature is missing in every training window.

When that holds for a detector's whole training data, the detector trains on the plain
statistics instead (``<sensor>_running_mean`` -> ``<sensor>_mean``, running-state features left
out): the mapping :func:`~refrig_assets.core.fleet_sensors.usable_features` applies to a fleet
without the running-state sensor. The choice and why are kept with the model, so scoring reads
the same columns. A fleet with any usable running window trains as before; a cohort that never
ran while others did is named in the model's notes (its windows are judged without the
running-conditioned features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.core.contracts import Contract, load_contract
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


def is_running_conditioned(feature: str, features: Contract) -> bool:
    """Whether a device_features column is computed only over running readings."""
    try:
        return features.column(feature).extra.get("condition") == "running"
    except KeyError:
        return False


def plain_statistics(names: list[str], features: Contract) -> list[str]:
    """``names`` for a fleet with no running state: each running-conditioned statistic becomes
    the plain one (``<sensor>_running_mean`` -> ``<sensor>_mean``) and features of the running
    state (the duty cycle, starts and runs, defrost) are left out, in order, without repeats."""
    out: list[str] = []
    for name in names:
        try:
            col = features.column(name)
        except KeyError:
            out.append(name)
            continue
        extra = col.extra
        derived = extra.get("derived") or {}
        if extra.get("condition") == "running":
            plain = f"{extra.get('sensor')}_{extra.get('stat')}"
            if plain not in features.column_names:
                continue
            name, derived = plain, features.column(plain).extra.get("derived") or {}
        needs_running = (
            name == "duty_cycle"
            or "running" in name
            or (isinstance(derived, dict) and derived.get("state") in ("running", "defrost"))
        )
        if not needs_running and name not in out:
            out.append(name)
    return out


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

    Plain statistics replace the running-conditioned ones when no scorable training window has
    a usable running-conditioned value (the compressor never ran above its threshold for
    ``running_share.min`` of a window) and the plain columns are in the data; otherwise the
    configured columns, with a note naming any cohort that never ran."""
    contract = load_contract("device_features")
    inputs = feature_columns + context_columns
    conditioned = [c for c in inputs if is_running_conditioned(c, contract)]
    unchanged = RunningChoice(list(feature_columns), list(context_columns), plain=False)
    if not conditioned or not keep.any():
        return unchanged
    usable = running_usable(features, keep, conditioned, share)
    cohorts = _cohorts(features, keep)
    if usable.any():
        idle = sorted(set(cohorts.tolist()) - set(cohorts[usable].tolist()), key=str)
        if not idle:
            return unchanged
        note = (
            f"{_named(idle)}: {_never_ran(features, keep, share)}; its windows are judged "
            "without the running-conditioned features"
        )
        return RunningChoice(list(feature_columns), list(context_columns), False, (note,))
    plain_features = plain_statistics(feature_columns, contract)
    plain_context = [
        c for c in plain_statistics(context_columns, contract) if c not in plain_features
    ]
    if not plain_features or any(c not in features.columns for c in plain_features):
        return unchanged  # nothing to fall back on: training refuses and says why
    dropped = [
        c
        for c in inputs
        if c not in conditioned and c not in plain_features and c not in plain_context
    ]
    note = (
        f"{_named(sorted(set(cohorts.tolist()), key=str))}: {_never_ran(features, keep, share)}; "
        "running-conditioned features replaced by plain statistics"
        f" ({', '.join(_mapping(conditioned, contract))})"
        + (f", {', '.join(dropped)} left out" if dropped else "")
    )
    return RunningChoice(plain_features, plain_context, plain=True, notes=(note,))


def _mapping(conditioned: list[str], contract: Contract) -> list[str]:
    """``<running column> -> <plain column>`` for each running-conditioned column."""
    out = []
    for column in conditioned:
        plain = plain_statistics([column], contract)
        out.append(f"{column} -> {plain[0]}" if plain else f"{column} left out")
    return out


def _cohorts(features: pd.DataFrame, keep: np.ndarray) -> np.ndarray:
    if "cohort" not in features.columns:
        return np.full(int(keep.sum()), "fleet", dtype=object)
    return features["cohort"].to_numpy()[keep].astype(object)


def _named(cohorts: list[Any]) -> str:
    return ", ".join(str(c) for c in cohorts)


def _never_ran(features: pd.DataFrame, keep: np.ndarray, share: dict[str, Any]) -> str:
    """Why no running window: the sensor never above its threshold, or never for long enough."""
    readings = load_contract("sensor_readings")
    declared = readings.running_sensors()
    where = f"{CONTRACTS_DIR.name}/{readings.dataset}.yaml"
    if not declared:
        return "no window in the running state in training"
    sensor = declared[0]
    unit = f" {sensor.unit}" if sensor.unit else ""
    threshold = f"running_above {sensor.extra['running_above']}{unit} ({where})"
    share_column, floor = share.get("column"), float(share.get("min", 0.0) or 0.0)
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
