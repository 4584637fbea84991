"""Conditional retraining: retrain a detector only when what it was trained from has changed.

What a trained version depends on is summarised by a :class:`TrainingFingerprint`:

- ``training_code``: a hash of the source files its training runs through — the detector's own
  module plus the shared training code listed in ``config/release.yaml`` (``retraining.shared_training_code``).
  Any other module may change freely without a retrain;
- ``config_hash``: the hash of its effective ``models/`` settings (``ModelConfig.config_hash``);
- ``dataset_version``: a content hash of the feature partitions of its training range.

:func:`decide_retraining` compares the fingerprint of the production version's training with the
current one and with pending drift requests, and says whether to retrain and why, in words an
operator can read. No Dagster here: the asset check and sensor in ``defs/lifecycle`` call it.
"""

from __future__ import annotations

import ast
import hashlib
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from refrig_assets.core.config import config_path
from refrig_assets.core.model_config import ModelConfig

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class TrainingFingerprint:
    """The versions of code, configuration and data that a training run used."""

    training_code: str
    config_hash: str
    dataset_version: str | None

    def as_metadata(self) -> dict[str, str]:
        """Keys recorded on a training materialization (read back by :meth:`from_metadata`)."""
        return {
            "training_code_version": self.training_code,
            "config_hash": self.config_hash,
            "dataset_version": self.dataset_version or "",
        }

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> TrainingFingerprint | None:
        """The fingerprint recorded by a training run; None for runs that did not record one."""
        if "training_code_version" not in metadata:
            return None
        dataset = str(metadata.get("dataset_version") or "") or None
        return cls(str(metadata["training_code_version"]), str(metadata["config_hash"]), dataset)


@dataclass(frozen=True)
class RetrainingDecision:
    """Whether a detector must be retrained, with one reason per changed input."""

    model_id: str
    retrain: bool
    reasons: tuple[str, ...]

    @property
    def summary(self) -> str:
        """One line for the UI: 'stale because ...' or 'current'."""
        if not self.retrain:
            return f"{self.model_id} is current: training code, models/ config and data unchanged"
        return f"{self.model_id} is stale because " + "; ".join(self.reasons)


def shared_training_code(release_file: Path | None = None) -> list[str]:
    """Package-relative source files all training runs through (``config/release.yaml``)."""
    file = Path(release_file or os.environ.get("REFRIG_RELEASE_FILE") or config_path("release"))
    try:
        listed = yaml.safe_load(file.read_text())["retraining"]["shared_training_code"]
    except (OSError, KeyError, TypeError) as exc:
        raise ValueError(f"{file}: no retraining.shared_training_code list ({exc})") from exc
    return [str(p) for p in listed]


def detector_module_file(config: ModelConfig) -> str:
    """Package-relative path of the module defining ``config``'s detector class.

    Found by reading the detector modules' source (a ``@register_detector`` class whose ``kind``
    is the configured detector), so building the Definitions does not import torch or sklearn;
    a detector registered any other way is found by importing the modules.
    """
    import refrig_assets.detectors as package

    found = _declared_detector_modules(package.__path__[0]).get(config.detector)
    if found:
        return found
    from refrig_assets.detectors.base import DETECTORS, load_detector_modules

    load_detector_modules()
    try:
        module = DETECTORS[config.detector].__module__
    except KeyError:
        raise ValueError(f"{config.path}: unknown detector {config.detector!r}") from None
    return "/".join(module.split(".")[1:]) + ".py"


@cache
def _declared_detector_modules(package_dir: str) -> dict[str, str]:
    """Detector kind → ``detectors/<module>.py`` for the classes declared in the package source."""
    found: dict[str, str] = {}
    for path in sorted(Path(package_dir).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ClassDef) and (kind := _registered_kind(node)):
                found.setdefault(kind, f"detectors/{path.name}")
    return found


def _registered_kind(node: ast.ClassDef) -> str | None:
    """The ``kind = "..."`` of a ``@register_detector`` class definition (None for others)."""
    decorated = any(
        (isinstance(d, ast.Name) and d.id == "register_detector")
        or (isinstance(d, ast.Attribute) and d.attr == "register_detector")
        for d in node.decorator_list
    )
    if not decorated:
        return None
    for stmt in node.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
        value = getattr(stmt, "value", None)
        if (
            any(isinstance(t, ast.Name) and t.id == "kind" for t in targets)
            and isinstance(value, ast.Constant)
            and isinstance(value.value, str)
        ):
            return value.value
    return None


def training_code_files(config: ModelConfig, package_root: Path | None = None) -> list[Path]:
    """The source files whose change means ``config``'s detector must be retrained."""
    root = Path(package_root or PACKAGE_ROOT)
    names = sorted({detector_module_file(config), *shared_training_code()})
    files = [root / name for name in names]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise ValueError(f"training code files not found: {', '.join(missing)}")
    return files


def training_code_version(config: ModelConfig, package_root: Path | None = None) -> str:
    """Hash of the training code files (names and contents): stable across unrelated edits."""
    root = Path(package_root or PACKAGE_ROOT)
    digest = hashlib.sha256()
    for path in training_code_files(config, root):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def asset_code_version(config: ModelConfig, package_root: Path | None = None) -> str:
    """The Dagster ``code_version`` of a training asset: training code and models/ config."""
    return f"code-{training_code_version(config, package_root)}.config-{config.config_hash}"


def dataset_version(files: list[Path]) -> str | None:
    """Content hash of training partition files (name and bytes, in name order); None if none."""
    if not files:
        return None
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        digest.update(path.name.encode())
        digest.update(b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:12]


def current_fingerprint(
    config: ModelConfig, training_files: list[Path], package_root: Path | None = None
) -> TrainingFingerprint:
    """The fingerprint a training of ``config`` on ``training_files`` would have now."""
    return TrainingFingerprint(
        training_code=training_code_version(config, package_root),
        config_hash=config.config_hash,
        dataset_version=dataset_version(training_files),
    )


def decide_retraining(
    model_id: str,
    current: TrainingFingerprint,
    last: TrainingFingerprint | None,
    drift_requests: list[str] | tuple[str, ...] = (),
) -> RetrainingDecision:
    """Retrain when the training code, the models/ config or the dataset changed, or drift asked.

    ``last`` is the fingerprint of the last training (None: never trained, or trained before
    fingerprints were recorded); ``drift_requests`` are the reasons of drift requests recorded
    since that training.
    """
    reasons: list[str] = []
    if last is None:
        reasons.append("no training with a recorded fingerprint yet")
    else:
        if current.training_code != last.training_code:
            reasons.append(
                f"training code changed ({last.training_code} → {current.training_code})"
            )
        if current.config_hash != last.config_hash:
            reasons.append(f"models/ config changed ({last.config_hash} → {current.config_hash})")
        if (
            current.dataset_version is not None
            and last.dataset_version is not None
            and current.dataset_version != last.dataset_version
        ):
            reasons.append(
                f"training dataset changed ({last.dataset_version} → {current.dataset_version})"
            )
    reasons.extend(f"drift asked for it: {reason}" for reason in drift_requests)
    return RetrainingDecision(model_id, bool(reasons), tuple(reasons))


def training_range_files(store_root: Path, training_partitions: str) -> list[Path]:
    """Feature partition files inside a recorded ``first..last`` training range."""
    if ".." not in training_partitions:
        return []
    first, last = training_partitions.split("..", 1)
    folder = Path(store_root) / "device_features"
    return [p for p in sorted(folder.glob("*.parquet")) if first <= p.stem <= last]
