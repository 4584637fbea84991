"""Data contracts: one YAML file per dataset in ``contracts/``, loaded into pandera schemas.

The contract files are the single source of truth for column names, types, physical ranges,
allowed values and freshness SLAs. Code asks a :class:`Contract` for what it needs (the sensor
columns, the range of one column, the feature columns) instead of repeating lists.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa

from refrig_assets.core.config import safe_load_yaml
from refrig_assets.core.settings import CONTRACTS_DIR

PANDAS_DTYPES = {
    "string": "object",
    "timestamp": "datetime64[ns, UTC]",
    "float": "float64",
    "int": "int64",
    "bool": "bool",
}
ARROW_TYPES = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
    "float": "DOUBLE",
    "int": "BIGINT",
    "bool": "BOOLEAN",
}


class ContractError(ValueError):
    """A contract file is malformed or data does not follow it."""


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a dataset, as declared in its contract."""

    name: str
    type: str
    nullable: bool = True
    role: str | None = None
    unit: str | None = None
    range: tuple[float, float] | None = None
    allowed: tuple[str, ...] | None = None
    default: Any = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pandas_dtype(self) -> str:
        if self.type == "bool" and self.nullable:
            return "boolean"
        return PANDAS_DTYPES[self.type]


# Per contract object: its pandera schema, its empty frame and the outcome of an empty frame
# per shape. Kept outside the frozen instance, so a copy of its fields (dataclasses.replace, or
# a contract built from another's __dict__) is a contract of its own with its own memo.
_VALIDATION_MEMOS: dict[int, dict[Any, Any]] = {}


def _validation_memo(contract: Contract) -> dict[Any, Any]:
    key = id(contract)
    memo = _VALIDATION_MEMOS.get(key)
    if memo is None:
        memo = _VALIDATION_MEMOS[key] = {}
        weakref.finalize(contract, _VALIDATION_MEMOS.pop, key, None)
    return memo


@dataclass(frozen=True)
class Contract:
    """A loaded contract: columns in order plus dataset-level settings."""

    dataset: str
    version: int
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    freshness_sla_minutes: int
    settings: dict[str, Any]
    source_hash: str

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.dataset} contract has no column {name!r}")

    def columns_with_role(self, role: str) -> list[ColumnSpec]:
        return [c for c in self.columns if c.role == role]

    def running_sensors(self) -> list[ColumnSpec]:
        """Sensor columns declaring ``running_above`` (above it the machine runs), in order."""
        return [c for c in self.columns_with_role("sensor") if "running_above" in c.extra]

    @property
    def sensor_columns(self) -> list[str]:
        """Numeric sensor columns (role: sensor), in contract order."""
        return [c.name for c in self.columns_with_role("sensor")]

    @property
    def schema_fingerprint(self) -> str:
        """Hash of names and types only: changes exactly when the schema does."""
        shape = [(c.name, c.type) for c in self.columns]
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:12]

    def pandera_schema(self, *, strict: bool = True) -> pa.DataFrameSchema:
        """The contract as a pandera schema (types, nullability, ranges, allowed values)."""
        cols = {}
        for c in self.columns:
            checks = []
            if c.range is not None:
                checks.append(pa.Check.in_range(c.range[0], c.range[1]))
            if c.allowed is not None:
                checks.append(pa.Check.isin(list(c.allowed)))
            dtype = None if c.type in ("string", "timestamp") else c.pandas_dtype
            if c.type == "timestamp":
                # Any resolution (Parquet round-trips to µs), but always tz-aware UTC.
                checks.append(
                    pa.Check(_is_utc_timestamp, element_wise=False, error="UTC timestamp dtype")
                )
            cols[c.name] = pa.Column(dtype, checks=checks, nullable=c.nullable, required=True)
        return pa.DataFrameSchema(
            cols,
            strict=strict,
            unique=list(self.primary_key) if self.primary_key else None,
            name=self.dataset,
        )

    def validate(self, df: pd.DataFrame) -> pd.DataFrame:
        """Failure cases of ``df`` against this contract (empty frame when it conforms).

        Columns: column, check, index, failure_case — pandera's lazy failure table.
        """
        # The schema is built once per contract, and an empty frame's outcome, which depends
        # only on its columns and their types, is found once per shape: an hourly step checks
        # frames that are mostly empty (a small fleet's alerts), often.
        memo = _validation_memo(self)
        shape = tuple((str(c), repr(t)) for c, t in df.dtypes.items()) if df.empty else None
        if shape is not None and shape in memo:
            return memo[shape].copy()
        if "schema" not in memo:
            memo["schema"] = self.pandera_schema()
        try:
            memo["schema"].validate(df, lazy=True)
            failures = pd.DataFrame(
                columns=["schema_context", "column", "check", "index", "failure_case"]
            )
        except pa.errors.SchemaErrors as exc:
            failures = exc.failure_cases
        if shape is not None:
            memo[shape] = failures.copy()
        return failures

    def empty_frame(self) -> pd.DataFrame:
        """An empty frame with this contract's columns and dtypes (the caller's own copy)."""
        # Typed once per contract: building it costs ~30x its copy, and a quiet hour of the
        # hourly chain asks for several.
        memo = _validation_memo(self)
        if "empty_frame" not in memo:
            memo["empty_frame"] = pd.DataFrame(
                {c.name: pd.Series(dtype=c.pandas_dtype) for c in self.columns}
            )
        return memo["empty_frame"].copy()


def _is_utc_timestamp(series: pd.Series) -> bool:
    dtype = series.dtype
    return isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC"


def _column_from_yaml(raw: dict[str, Any]) -> ColumnSpec:
    known = {
        "name",
        "type",
        "nullable",
        "role",
        "unit",
        "range",
        "allowed",
        "default",
        "description",
    }
    if raw.get("type") not in PANDAS_DTYPES:
        raise ContractError(f"column {raw.get('name')!r}: unknown type {raw.get('type')!r}")
    rng = raw.get("range")
    return ColumnSpec(
        name=raw["name"],
        type=raw["type"],
        nullable=bool(raw.get("nullable", True)),
        role=raw.get("role"),
        unit=raw.get("unit"),
        range=(float(rng[0]), float(rng[1])) if rng else None,
        allowed=tuple(raw["allowed"]) if raw.get("allowed") else None,
        default=raw.get("default"),
        description=raw.get("description", ""),
        extra={k: v for k, v in raw.items() if k not in known},
    )


def _expand_per_sensor(
    spec: dict[str, Any], contracts_dir: Path, condition: str | None = None
) -> list[ColumnSpec]:
    source = load_contract(spec["source"], contracts_dir)
    out = []
    for sensor in source.columns_with_role(spec.get("role", "sensor")):
        for stat in spec["stats"]:
            infix = f"_{condition}" if condition else ""
            where = f" while the compressor is {condition}" if condition else ""
            out.append(
                ColumnSpec(
                    name=f"{sensor.name}{infix}_{stat}",
                    type="float",
                    nullable=True,
                    role="feature",
                    unit=sensor.unit,
                    description=f"{stat} of {sensor.name} over the window{where}",
                    extra={"sensor": sensor.name, "stat": stat, "condition": condition},
                )
            )
    return out


@cache
def _load(name: str, contracts_dir: Path) -> Contract:
    path = contracts_dir / f"{name}.yaml"
    if not path.exists():
        raise ContractError(f"no contract file {path}")
    text = path.read_text()
    raw = safe_load_yaml(text)
    if raw.get("dataset") != name:
        raise ContractError(f"{path}: dataset is {raw.get('dataset')!r}, expected {name!r}")
    columns: list[ColumnSpec] = []
    if raw.get("inherit_columns"):
        columns.extend(load_contract(raw["inherit_columns"], contracts_dir).columns)
    columns.extend(_column_from_yaml(c) for c in raw.get("columns", []))
    if raw.get("per_sensor"):
        columns.extend(_expand_per_sensor(raw["per_sensor"], contracts_dir))
    if raw.get("per_sensor_running"):
        columns.extend(_expand_per_sensor(raw["per_sensor_running"], contracts_dir, "running"))
    names = [c.name for c in columns]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ContractError(f"{path}: duplicate columns {sorted(dupes)}")
    reserved = {"dataset", "version", "columns", "primary_key", "freshness_sla_minutes"}
    return Contract(
        dataset=name,
        version=int(raw.get("version", 1)),
        columns=tuple(columns),
        primary_key=tuple(raw.get("primary_key", [])),
        freshness_sla_minutes=int(raw.get("freshness_sla_minutes", 60)),
        settings={k: v for k, v in raw.items() if k not in reserved},
        source_hash=hashlib.sha256(text.encode()).hexdigest()[:12],
    )


def load_contract(name: str, contracts_dir: Path | None = None) -> Contract:
    """Load ``contracts/<name>.yaml`` (cached per directory)."""
    directory = contracts_dir or CONTRACTS_DIR
    # A Path is used as given: building a new one per call parses it again (dozens per request).
    return _load(name, _resolved(directory if isinstance(directory, Path) else Path(directory)))


@cache
def _resolved_absolute(directory: Path) -> Path:
    return directory.resolve()


def _resolved(directory: Path) -> Path:
    # Resolving walks the path with a system call per part; an online request loads contracts
    # dozens of times. A relative directory follows the working directory, so only an absolute
    # one is remembered.
    return _resolved_absolute(directory) if directory.is_absolute() else directory.resolve()


def all_contracts(contracts_dir: Path | None = None) -> dict[str, Contract]:
    """Every contract in the directory, by dataset name."""
    d = Path(contracts_dir or CONTRACTS_DIR)
    return {p.stem: load_contract(p.stem, d) for p in sorted(d.glob("*.yaml"))}


def quality_flag_names(contracts_dir: Path | None = None) -> list[str]:
    """Quality flags in bit order (bit i of quality_mask is the i-th name)."""
    col = load_contract("clean_readings", contracts_dir).column("quality_flags")
    return list(col.extra["allowed_flags"])
