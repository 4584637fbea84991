"""The device registry: read the fleet's reference file and fill defaults from the contract."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from refrig_assets.core.contracts import load_contract


def read_table_file(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file by its suffix."""
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, dtype={"device_id": str, "site_id": str, "cohort": str})
    return pd.read_parquet(path)


def load_device_registry(path: Path) -> pd.DataFrame:
    """The registry in contract shape. Missing optional columns get the contract default."""
    contract = load_contract("device_registry")
    if not path.exists():
        raise FileNotFoundError(
            f"device registry not found at {path}: put a CSV/Parquet file with columns "
            f"{[c.name for c in contract.columns if not c.nullable and c.name != 'registered']} "
            "there, or set REFRIG_DEVICE_REGISTRY"
        )
    raw = read_table_file(path)
    return conform_registry(raw, contract_source=str(path))


def conform_registry(raw: pd.DataFrame, contract_source: str = "registry") -> pd.DataFrame:
    """Contract columns in order, defaults filled, ``registered`` True for listed devices."""
    contract = load_contract("device_registry")
    out = pd.DataFrame(index=raw.index)
    for col in contract.columns:
        if col.name in raw.columns:
            out[col.name] = raw[col.name]
        elif col.name == "registered":
            out[col.name] = True
        elif col.default is not None:
            out[col.name] = col.default
        elif not col.nullable:
            raise ValueError(f"{contract_source}: required registry column {col.name!r} is missing")
        else:
            out[col.name] = None
        if col.default is not None:
            out[col.name] = out[col.name].fillna(col.default)
        if col.type == "float":
            out[col.name] = out[col.name].astype(float)
        elif col.type == "string":
            out[col.name] = out[col.name].astype(str)
        elif col.type == "bool":
            out[col.name] = out[col.name].astype(bool)
    return out.drop_duplicates("device_id", keep="last").reset_index(drop=True)


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
