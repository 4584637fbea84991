"""The device registry: read the fleet's reference file and fill defaults from the contract.

Problems a registry file can hide are found, not papered over: a ``device_id`` listed twice is
reported with its rows (the key must be unique), and a cohort too small to be real (usually a
typo) is flagged, moved to the ``unknown`` cohort or refused, as ``config/registry.yaml`` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from refrig_assets.core.config import load_config
from refrig_assets.core.contracts import load_contract

UNKNOWN_COHORT = "unknown"
COHORT_ACTIONS = ("flag", "default", "fail")


@dataclass(frozen=True)
class RegistryPolicy:
    """Which cohorts are known and what happens to devices of the others."""

    known_cohorts: tuple[str, ...]
    min_cohort_devices: int
    unknown_cohorts: str


def load_registry_policy() -> RegistryPolicy:
    """``config/registry.yaml``, checked on load."""
    section = load_config("registry")
    known = section.value("known_cohorts") or []
    if not isinstance(known, list):
        raise section.fail("known_cohorts", "must be a list of cohort names")
    return RegistryPolicy(
        known_cohorts=tuple(str(c) for c in known),
        min_cohort_devices=section.number("min_cohort_devices", minimum=1, integer=True),
        unknown_cohorts=section.choice("unknown_cohorts", COHORT_ACTIONS),
    )


@dataclass(frozen=True)
class RegistryFindings:
    """What is wrong with a registry: duplicated keys and devices of unknown cohorts."""

    duplicates: dict[str, list[int]]
    unknown_cohorts: dict[str, list[str]]

    def messages(self, source: str) -> list[str]:
        """One line per problem, naming the file, the rows or devices, and the rule."""
        lines = [
            f"{source}: device_id {device!r} is on rows {', '.join(map(str, rows))} "
            "(device_id is the registry's key: one row per device)"
            for device, rows in self.duplicates.items()
        ]
        lines += [
            f"{source}: cohort {cohort!r} of {', '.join(devices[:5])}"
            f"{' …' if len(devices) > 5 else ''} ({len(devices)} device(s)) is not a known "
            "cohort (config/registry.yaml)"
            for cohort, devices in self.unknown_cohorts.items()
        ]
        return lines


def registry_findings(registry: pd.DataFrame, policy: RegistryPolicy) -> RegistryFindings:
    """Duplicated ``device_id`` (with 1-based data rows) and devices of unknown cohorts."""
    rows = pd.Series(registry.index + 1, index=registry["device_id"].to_numpy())
    repeated = rows[rows.index.duplicated(keep=False)]
    duplicates = {str(d): sorted(int(r) for r in g) for d, g in repeated.groupby(level=0)}
    listed = registry[registry["cohort"] != UNKNOWN_COHORT]
    sizes = listed.groupby("cohort")["device_id"].nunique()
    if policy.known_cohorts:
        unknown = [c for c in sizes.index if c not in policy.known_cohorts]
    else:
        unknown = [c for c, n in sizes.items() if n < policy.min_cohort_devices]
    cohorts = {
        str(c): sorted(listed.loc[listed["cohort"] == c, "device_id"].astype(str).unique())
        for c in unknown
    }
    return RegistryFindings(duplicates, cohorts)


def apply_cohort_policy(
    registry: pd.DataFrame, findings: RegistryFindings, policy: RegistryPolicy
) -> pd.DataFrame:
    """With ``unknown_cohorts: default``, devices of unknown cohorts join the ``unknown`` one."""
    if policy.unknown_cohorts != "default" or not findings.unknown_cohorts:
        return registry
    out = registry.copy()
    out.loc[out["cohort"].isin(list(findings.unknown_cohorts)), "cohort"] = UNKNOWN_COHORT
    return out


def read_table_file(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file by its suffix."""
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, dtype={"device_id": str, "site_id": str, "cohort": str})
    return pd.read_parquet(path)


def load_device_registry(path: Path, fill_defaults: bool = True) -> pd.DataFrame:
    """The registry in contract shape. Missing optional columns get the contract default
    (``fill_defaults=False``: they stay empty, so a reader can tell a value the file gives from
    one it leaves to the contract)."""
    contract = load_contract("device_registry")
    if not path.exists():
        raise FileNotFoundError(
            f"device registry not found at {path}: put a CSV/Parquet file with columns "
            f"{[c.name for c in contract.columns if not c.nullable and c.name != 'registered']} "
            "there, or set REFRIG_DEVICE_REGISTRY"
        )
    raw = read_table_file(path)
    return conform_registry(raw, contract_source=str(path), fill_defaults=fill_defaults)


def conform_registry(
    raw: pd.DataFrame, contract_source: str = "registry", fill_defaults: bool = True
) -> pd.DataFrame:
    """Contract columns in order, defaults filled (unless ``fill_defaults`` is False),
    ``registered`` True for listed devices."""
    contract = load_contract("device_registry")
    out = pd.DataFrame(index=raw.index)
    for col in contract.columns:
        fill = fill_defaults and col.default is not None
        if col.name in raw.columns:
            out[col.name] = raw[col.name]
        elif col.name == "registered":
            out[col.name] = True
        elif fill:
            out[col.name] = col.default
        elif not col.nullable:
            raise ValueError(f"{contract_source}: required registry column {col.name!r} is missing")
        else:
            out[col.name] = None
        if fill:
            out[col.name] = out[col.name].fillna(col.default)
        if col.type == "float":
            out[col.name] = out[col.name].astype(float)
        elif col.type == "string":
            out[col.name] = out[col.name].astype(str)
        elif col.type == "bool":
            out[col.name] = out[col.name].astype(bool)
    return out.reset_index(drop=True)


def with_unregistered(registry: pd.DataFrame, device_ids: pd.Series) -> pd.DataFrame:
    """Registry plus rows for devices seen in data but not registered (cohort 'unknown')."""
    contract = load_contract("device_registry")
    missing = pd.Index(device_ids.dropna().unique()).difference(registry["device_id"])
    if missing.empty:
        return registry
    extra = pd.DataFrame(
        {"device_id": missing.astype(str), "site_id": "unknown", "cohort": "unknown"}
    )
    extra = conform_registry(extra)
    extra["registered"] = False
    return pd.concat([registry, extra[contract.column_names]], ignore_index=True)
