"""Operational policy: one YAML file per topic in ``config/``, read by one typed loader.

``config/alerts.yaml`` (severity, SLA, dedup, reconciliation, escalation), ``streaming.yaml``
(threshold rules), ``lifecycle.yaml`` (canary, gates, rollout, staleness), ``monitoring.yaml``
(drift, retraining, health rules), ``operations.yaml`` (console, maintenance, feedback, work
orders) and ``release.yaml`` (quality gate, shared training code). Schemas stay in
``contracts/`` and detector settings in ``models/``.

Every setting has its one default in these files, never in code: a loader asks a
:class:`Section` for a value of a given type, and a missing or mistyped key raises
:class:`ConfigError` naming the file and the key. ``REFRIG_CONFIG_DIR`` points to another folder
(a deployment's own policy, or a test's).

Policy used to live in ``contracts/device_alerts.yaml``, ``contracts/device_registry.yaml`` and
``models/_<topic>.yaml``. For one release those places are still read when they hold policy,
with a :class:`DeprecationWarning` saying where it moved.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from refrig_assets.core.settings import PROJECT_ROOT

CONFIG_DIR = PROJECT_ROOT / "config"


class ConfigError(ValueError):
    """A configuration file is missing, malformed, or lacks or mistypes a key."""


def config_dir() -> Path:
    """The policy folder in use: ``REFRIG_CONFIG_DIR`` or ``config/`` of the project."""
    return Path(os.environ.get("REFRIG_CONFIG_DIR") or CONFIG_DIR)


def config_path(topic: str) -> Path:
    """``<config dir>/<topic>.yaml``."""
    return config_dir() / f"{topic}.yaml"


# libyaml's parser where PyYAML was built with it: the same safe constructors (same values and
# types), parsed ~8x faster — every process reads the contracts and a dozen policy files.
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load_yaml(text: str) -> Any:
    """``yaml.safe_load`` of ``text``, with the C parser when available."""
    return yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from ``path`` (errors name the file); a copy the caller may change."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    return copy.deepcopy(_parsed(str(path), stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=64)
def _parsed(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """Parsed once per version of the file (policy is read on hot paths, e.g. per alert)."""
    try:
        raw = safe_load_yaml(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return raw


def deprecated_location(old: Path | str, new: Path, keys: Iterable[str] = ()) -> None:
    """Warn that policy was read from ``old`` (optionally only ``keys`` of it)."""
    what = f"{', '.join(keys)} in {old}" if keys else str(old)
    warnings.warn(
        f"{what}: policy now lives in {new}; the old location is read for this release only",
        DeprecationWarning,
        stacklevel=3,
    )


@dataclass(frozen=True)
class Section:
    """Typed access to one mapping of a configuration file; errors name file and dotted key."""

    path: Path
    raw: dict[str, Any]
    prefix: str = ""

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def fail(self, name: str, rule: str) -> ConfigError:
        return ConfigError(f"{self.path}: {self.key(name)}: {rule}")

    def has(self, name: str) -> bool:
        return name in self.raw

    def value(self, name: str) -> Any:
        if name not in self.raw:
            raise self.fail(name, "missing")
        return self.raw[name]

    def section(self, name: str) -> Section:
        raw = self.value(name)
        if not isinstance(raw, dict):
            raise self.fail(name, "must be a mapping")
        return Section(self.path, raw, f"{self.key(name)}.")

    def number(
        self,
        name: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        integer: bool = False,
    ) -> Any:
        raw = self.value(name)
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise self.fail(name, f"must be a number, not {raw!r}")
        if integer and not float(raw).is_integer():
            raise self.fail(name, f"must be a whole number, not {raw!r}")
        if minimum is not None and raw < minimum:
            raise self.fail(name, f"must be at least {minimum:g}, not {raw!r}")
        if maximum is not None and raw > maximum:
            raise self.fail(name, f"must be at most {maximum:g}, not {raw!r}")
        return int(raw) if integer else float(raw)

    def flag(self, name: str) -> bool:
        raw = self.value(name)
        if not isinstance(raw, bool):
            raise self.fail(name, f"must be true or false, not {raw!r}")
        return raw

    def text(self, name: str) -> str:
        raw = self.value(name)
        if not isinstance(raw, str) or not raw:
            raise self.fail(name, f"must be a non-empty text, not {raw!r}")
        return raw

    def optional_text(self, name: str) -> str | None:
        raw = self.value(name)
        if raw is not None and not isinstance(raw, str):
            raise self.fail(name, f"must be a text or null, not {raw!r}")
        return raw or None

    def choice(self, name: str, allowed: Iterable[str]) -> str:
        allowed = tuple(allowed)
        raw = self.value(name)
        if raw not in allowed:
            raise self.fail(name, f"must be one of {', '.join(allowed)}, not {raw!r}")
        return str(raw)

    def items(self, name: str) -> list[Any]:
        raw = self.value(name)
        if not isinstance(raw, list) or not raw:
            raise self.fail(name, "must be a non-empty list")
        return raw

    def numbers_by_key(self, name: str, keys: Iterable[str] | None = None) -> dict[str, float]:
        """A mapping of names to non-negative numbers, holding every one of ``keys`` if given."""
        sub = self.section(name)
        wanted = tuple(keys) if keys is not None else tuple(sub.raw)
        return {k: sub.number(k, minimum=0.0) for k in wanted}


def policy_file(topic: str, legacy: Path | None = None) -> Path:
    """``config/<topic>.yaml``, or ``legacy`` (with a deprecation warning) while it exists."""
    if legacy is not None and legacy.exists():
        deprecated_location(legacy, config_path(topic))
        return legacy
    return config_path(topic)


def load_config(topic: str) -> Section:
    """The whole of ``config/<topic>.yaml`` as a :class:`Section`."""
    path = config_path(topic)
    return Section(path, read_yaml(path))
