"""Where the project keeps its files and which services it talks to.

Everything is derived from environment variables with embedded defaults, so a fresh clone runs
with no server started by hand: data and state live under ``REFRIG_HOME`` (``.refrig/`` in the
project root by default).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = PROJECT_ROOT / "contracts"
MODELS_DIR = PROJECT_ROOT / "models"


@dataclass(frozen=True)
class Settings:
    """Resolved locations and service URLs for one process."""

    home: Path
    landing_dir: Path
    data_dir: Path
    registry_path: Path
    labels_path: Path
    alerts_db_url: str
    mlflow_tracking_uri: str
    mlflow_artifacts_dir: Path
    contracts_dir: Path
    models_dir: Path
    cadence_seconds: int | None
    partition_start: str

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME", self.home / "dagster"))


def get_settings() -> Settings:
    """Read the environment now (tests change it between calls)."""
    home = Path(os.environ.get("REFRIG_HOME", PROJECT_ROOT / ".refrig")).resolve()
    landing = Path(os.environ.get("REFRIG_LANDING_DIR", home / "landing")).resolve()
    mlflow_dir = home / "mlflow"
    return Settings(
        home=home,
        landing_dir=landing,
        data_dir=Path(os.environ.get("REFRIG_DATA_DIR", home / "data")).resolve(),
        registry_path=Path(
            os.environ.get("REFRIG_DEVICE_REGISTRY", home / "reference" / "device_registry.csv")
        ).resolve(),
        labels_path=Path(os.environ.get("REFRIG_LABELS", home / "reference" / "labels.parquet")),
        alerts_db_url=os.environ.get("REFRIG_ALERTS_DB_URL", f"sqlite:///{home / 'alerts.db'}"),
        mlflow_tracking_uri=os.environ.get(
            "MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_dir / 'mlflow.db'}"
        ),
        mlflow_artifacts_dir=mlflow_dir / "artifacts",
        contracts_dir=Path(os.environ.get("REFRIG_CONTRACTS_DIR", CONTRACTS_DIR)),
        models_dir=Path(os.environ.get("REFRIG_MODELS_DIR", MODELS_DIR)),
        cadence_seconds=cadence_override(),
        partition_start=os.environ.get("REFRIG_PARTITION_START", "2025-01-01-00:00"),
    )


def cadence_override() -> int | None:
    """``REFRIG_CADENCE_SECONDS`` (the fleet's cadence set by hand), read now; None if unset.
    :func:`get_settings` carries it too; this reads it without resolving every path (a
    service request asks for the cadence several times)."""
    cadence = os.environ.get("REFRIG_CADENCE_SECONDS", "").strip()
    if not cadence:
        return None
    try:
        seconds = int(cadence)
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise ValueError(f"REFRIG_CADENCE_SECONDS must be whole seconds above 0, got {cadence!r}")
    return seconds


def git_commit() -> str:
    """The project's short git commit ("" outside a git checkout)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
