"""The device registry: read the fleet's reference file and fill defaults from the contract.

Problems a registry file can hide are found, not papered over: a ``device_id`` listed twice is
reported with its rows (the key must be unique), and a cohort too small to be real (usually a
typo) is flagged, moved to the ``unknown`` cohort or refused, as ``config/registry.yaml`` says.
Text is read without surrounding blanks (``"dev-1 "`` is ``dev-1``, as readings name it); a
row without a ``device_id`` is left out and named; a device without a ``site_id`` is at the
``unknown`` site, which no site-wide event spans (a blank cell read as one site ``nan`` joined
every such device into one site); a threshold that is not a number is refused with its row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from refrig_assets.core.config import load_config
from refrig_assets.core.contracts import load_contract

UNKNOWN_COHORT = "unknown"
# The site of a device whose site is not known: site-wide events leave it out.
UNKNOWN_SITE = "unknown"
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
    """What is wrong with a registry: duplicated keys, devices of unknown cohorts, rows
    without a device (1-based data rows, left out) and devices without a site."""

    duplicates: dict[str, list[int]]
    unknown_cohorts: dict[str, list[str]]
    without_device: list[int] = field(default_factory=list)
    without_site: list[str] = field(default_factory=list)

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
        if self.without_device:
            rows = self.without_device
            lines.append(
                f"{source}: row(s) {', '.join(map(str, rows[:10]))}{' …' if len(rows) > 10 else ''}"
                " have no device_id and are left out"
            )
        if self.without_site:
            devices = self.without_site
            lines.append(
                f"{source}: {', '.join(devices[:5])}{' …' if len(devices) > 5 else ''} "
                f"({len(devices)} device(s)) have no site_id: each is at the {UNKNOWN_SITE!r} "
                "site, which no site-wide event spans"
            )
        return lines


def registry_findings(registry: pd.DataFrame, policy: RegistryPolicy) -> RegistryFindings:
    """Duplicated ``device_id`` (with 1-based data rows), devices of unknown cohorts, rows left
    out for want of a device and devices without a site (see :func:`conform_registry`)."""
    numbers = registry.attrs.get("rows")
    if numbers is None or len(numbers) != len(registry):  # a frame not read by conform_registry
        numbers = registry.index.to_numpy() + 1
    rows = pd.Series(numbers, index=registry["device_id"].to_numpy())
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
    return RegistryFindings(
        duplicates,
        cohorts,
        list(registry.attrs.get("without_device", [])),
        list(registry.attrs.get("without_site", [])),
    )


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
        try:
            return pd.read_csv(path, dtype={"device_id": str, "site_id": str, "cohort": str})
        except pd.errors.ParserError as exc:  # a ragged line: pandas names no file
            raise ValueError(f"{path}: {str(exc).strip()}") from None
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
    ``registered`` True for listed devices. Text without surrounding blanks; rows without a
    ``device_id`` left out and a blank ``site_id`` read as :data:`UNKNOWN_SITE`, both named in
    ``attrs`` (``without_device``: 1-based data rows, ``without_site``: devices)."""
    contract = load_contract("device_registry")
    raw = raw.reset_index(drop=True)
    text = {c.name for c in contract.columns if c.type == "string"}
    raw = raw.assign(**{c: _stripped(raw[c]) for c in raw.columns if c in text})
    without_device: list[int] = []
    if "device_id" in raw.columns:
        blank = raw["device_id"].isna()
        without_device = [int(i) + 1 for i in raw.index[blank]]
        raw = raw[~blank]
    # The file's data rows, kept only when rows were left out (else they are the index + 1):
    # pandas copies a frame's attrs into every frame derived from it.
    rows = [int(i) + 1 for i in raw.index] if without_device else None
    raw = raw.reset_index(drop=True)
    without_site: list[str] = []
    if "site_id" in raw.columns:
        blank = raw["site_id"].isna()
        if "device_id" in raw.columns:
            without_site = raw.loc[blank, "device_id"].astype(str).tolist()
        raw = raw.assign(site_id=raw["site_id"].where(~blank, UNKNOWN_SITE))
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
            raise ValueError(
                f"{contract_source}: required registry column {col.name!r} is missing"
                + _one_column_hint(raw)
            )
        else:
            out[col.name] = None
        if fill:
            out[col.name] = out[col.name].fillna(col.default)
        if col.type == "float":
            out[col.name] = _numbers(out[col.name], col.name, contract_source)
        elif col.type == "string":
            out[col.name] = out[col.name].astype(str)
        elif col.type == "bool":
            out[col.name] = out[col.name].astype(bool)
    out = out.reset_index(drop=True)
    out.attrs.update(without_device=without_device, without_site=without_site)
    if rows is not None:
        out.attrs["rows"] = rows
    return out


def _one_column_hint(raw: pd.DataFrame) -> str:
    """A file read as one column was written with another separator (``;``, a tab)."""
    if len(raw.columns) != 1:
        return ""
    return f" (the file has one column, {str(raw.columns[0])!r}: the registry is comma-separated)"


def _stripped(values: pd.Series) -> pd.Series:
    """Text without surrounding blanks; blank text is missing."""
    if not (values.dtype == object or pd.api.types.is_string_dtype(values)):
        return values
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        text = values.str.strip()  # text and missing values only: no value is lost
        return text.where(text.ne("") & text.notna(), None)
    text = values.map(lambda v: v.strip() if isinstance(v, str) else v)
    return text.where(text.map(lambda v: not (isinstance(v, str) and v == "")), None)


def _numbers(values: pd.Series, column: str, source: str) -> pd.Series:
    """A threshold column as floats; a value that is not a number is refused with its row."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    bad = numbers.isna() & values.notna()
    if bad.any():
        row = int(values.index[bad][0]) + 1
        raise ValueError(
            f"{source}: column {column!r} row {row}: {values[bad].iloc[0]!r} is not a number "
            f"({int(bad.sum())} such value(s))"
        )
    return numbers


def with_unregistered(registry: pd.DataFrame, device_ids: pd.Series) -> pd.DataFrame:
    """Registry plus rows for devices seen in data but not registered (cohort 'unknown')."""
    contract = load_contract("device_registry")
    missing = pd.Index(device_ids.dropna().unique()).difference(registry["device_id"])
    if missing.empty:
        return registry
    extra = pd.DataFrame(
        {"device_id": missing.astype(str), "site_id": UNKNOWN_SITE, "cohort": UNKNOWN_COHORT}
    )
    extra = conform_registry(extra)
    extra["registered"] = False
    return pd.concat([registry, extra[contract.column_names]], ignore_index=True)
