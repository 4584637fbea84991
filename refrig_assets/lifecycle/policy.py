"""The lifecycle policy file ``config/lifecycle.yaml`` and per-detector overrides.

A detector's own ``models/<id>.yaml`` may override, under its ``promotion:`` key, the
``absolute`` thresholds, the ``vs_champion`` tolerances and (as ``promotion.canary`` and
``promotion.rollout``) the canary and progressive rollout settings for itself; everything else
is fleet-wide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from refrig_assets.core.config import ConfigError, policy_file, read_yaml
from refrig_assets.core.settings import MODELS_DIR

# Where the policy lived before config/ (read for one release, with a warning).
LEGACY_FILE = "_lifecycle.yaml"
SECTIONS = ("canary", "promotion", "rollout", "staleness", "pause", "fallback")
# Sections a detector may override under its own ``promotion:`` key.
NESTED_OVERRIDES = ("canary", "rollout")


class PolicyError(ConfigError):
    """The lifecycle policy file is missing a setting or holds an invalid one."""


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def policy_path(models_dir: Path | None = None) -> Path:
    """``config/lifecycle.yaml`` (or a ``_lifecycle.yaml`` left in ``models_dir``)."""
    return policy_file("lifecycle", Path(models_dir or MODELS_DIR) / LEGACY_FILE)


def load_policy(models_dir: Path | None = None, model_id: str | None = None) -> dict[str, Any]:
    """The lifecycle policy; with ``model_id``, merged with that detector's ``promotion:`` block."""
    path = policy_path(models_dir)
    if not path.exists():
        raise PolicyError(f"no lifecycle policy file {path}")
    raw = read_yaml(path)  # a copy, parsed once per version of the file
    missing = [s for s in SECTIONS if s not in raw]
    if missing:
        raise PolicyError(f"{path}: missing section(s) {missing}")
    raw["path"] = str(path)
    if model_id is None:
        return raw
    model_file = Path(models_dir or MODELS_DIR) / f"{model_id}.yaml"
    model_raw = read_yaml(model_file) if model_file.exists() else None
    override = dict((model_raw or {}).get("promotion") or {})
    nested = {s: override.pop(s, None) or {} for s in NESTED_OVERRIDES}
    unknown = set(override) - set(raw["promotion"])
    if unknown:
        raise PolicyError(
            f"{model_file}: promotion overrides may only set "
            f"{sorted([*raw['promotion'], *NESTED_OVERRIDES])}, not {sorted(unknown)}"
        )
    raw["promotion"] = _merge(raw["promotion"], override)
    for section, values in nested.items():
        raw[section] = _merge(raw[section], values)
    return raw


def setting(policy: dict[str, Any], dotted: str) -> Any:
    """One setting by dotted name; a clear error naming the file when it is absent."""
    node: Any = policy
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise PolicyError(
                f"{policy.get('path', 'config/lifecycle.yaml')}: missing setting {dotted!r}"
            )
        node = node[part]
    return node
