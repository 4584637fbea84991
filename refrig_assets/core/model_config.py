"""Detector settings: one YAML file per detector in ``models/``, over ``models/_defaults.yaml``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refrig_assets.core.config import ConfigError, read_yaml
from refrig_assets.core.contracts import load_contract
from refrig_assets.core.settings import MODELS_DIR

DEFAULTS_FILE = "_defaults.yaml"


@dataclass(frozen=True)
class ModelConfig:
    """A detector's resolved configuration."""

    model_id: str
    detector: str
    granularity: str
    schedule: str
    feature_columns: tuple[str, ...]
    hyperparameters: dict[str, Any]
    settings: dict[str, Any]
    path: Path

    @property
    def flag_threshold(self) -> float:
        return float(self.settings["flag_threshold"])

    @property
    def pinned_version(self) -> str | None:
        pinned = self.settings.get("pinned_version")
        return str(pinned) if pinned is not None else None

    def setting(self, dotted: str) -> Any:
        """A setting of the detector (its file over ``models/_defaults.yaml``), by dotted key;
        missing raises :class:`ConfigError` naming the file and the key."""
        node: Any = self.settings
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"{self.path} (over {DEFAULTS_FILE}): {dotted}: missing")
            node = node[part]
        return node

    def hyperparameter(self, name: str) -> Any:
        """One of the detector's ``hyperparameters``; missing raises :class:`ConfigError`."""
        if name not in self.hyperparameters:
            raise ConfigError(f"{self.path}: hyperparameters.{name}: missing")
        return self.hyperparameters[name]

    @property
    def config_hash(self) -> str:
        """Hash of the effective settings (what a PATCH version bump tracks); pin excluded."""
        body = {k: v for k, v in self.settings.items() if k != "pinned_version"}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[
            :12
        ]


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve_feature_columns(spec: dict[str, Any]) -> list[str]:
    """Feature columns named by stats and extras, checked against the device_features contract."""
    contract = load_contract("device_features")
    stats = set(spec.get("stats", []))
    running_stats = set(spec.get("running_stats", []))
    cols = [
        c.name
        for c in contract.columns_with_role("feature")
        if (c.extra["stat"] in stats and not c.extra.get("condition"))
        or (c.extra["stat"] in running_stats and c.extra.get("condition") == "running")
        if not spec.get("sensors") or c.extra["sensor"] in spec["sensors"]
    ]
    for extra in spec.get("extra", []):
        contract.column(extra)  # raises KeyError for a column the contract does not have
        cols.append(extra)
    if not cols:
        raise ValueError(f"feature spec {spec} selects no device_features column")
    return cols


def load_model_config(model_id: str, models_dir: Path | None = None) -> ModelConfig:
    """Load ``models/<model_id>.yaml`` merged over the shared defaults."""
    d = Path(models_dir or MODELS_DIR)
    path = d / f"{model_id}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no detector config {path}")
    # parsed once per version of each file (read per hour and detector on hot paths)
    defaults = read_yaml(d / DEFAULTS_FILE) if (d / DEFAULTS_FILE).exists() else {}
    raw = _merge(defaults, read_yaml(path))
    if raw.get("model_id") != model_id:
        raise ValueError(f"{path}: model_id is {raw.get('model_id')!r}, expected {model_id!r}")
    return ModelConfig(
        model_id=model_id,
        detector=raw["detector"],
        granularity=raw["granularity"],
        schedule=raw["schedule"],
        feature_columns=tuple(resolve_feature_columns(raw["features"])),
        hyperparameters=dict(raw.get("hyperparameters", {})),
        settings=raw,
        path=path,
    )


def all_model_ids(models_dir: Path | None = None) -> list[str]:
    """Every detector configured in ``models/`` (files starting with '_' are shared settings)."""
    d = Path(models_dir or MODELS_DIR)
    return sorted(p.stem for p in d.glob("*.yaml") if not p.name.startswith("_"))


def hourly_model_ids(models_dir: Path | None = None) -> list[str]:
    """The detectors that score every hour (``schedule: hourly``); the daily ones score a whole
    day of a cohort."""
    return [
        m
        for m in all_model_ids(models_dir)
        if load_model_config(m, models_dir).schedule == "hourly"
    ]
