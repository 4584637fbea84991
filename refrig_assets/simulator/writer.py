"""Writing a simulated fleet to disk the way devices would deliver it.

One readings file per hour under ``landing_dir/<YYYY-MM-DD>/readings_<YYYYMMDDTHH>.<ext>``, the
device registry and the fault labels. Every file is written under a hidden temporary name in its
target directory and renamed into place, so a watcher never sees a half-written file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.simulator.config import SimulationConfig
from refrig_assets.simulator.fleet import FleetSimulator

FILE_FORMATS = {"parquet": ".parquet", "csv": ".csv"}


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _iso_utc(ts: pd.Series) -> np.ndarray:
    """ISO-8601 strings with a ``Z`` suffix, formatting each distinct instant once."""
    values = ts.to_numpy(dtype="datetime64[ns]")
    unique, inverse = np.unique(values, return_inverse=True)
    text = pd.DatetimeIndex(unique).strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(dtype=object)
    return text[inverse]


def write_frame(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` atomically as CSV (timestamps as ISO-8601 with Z) or Parquet, by suffix."""
    if path.suffix == ".csv":
        out = df.copy()
        for name in out.columns:
            if isinstance(out[name].dtype, pd.DatetimeTZDtype):
                out[name] = _iso_utc(out[name])
        write_atomic(path, lambda tmp: out.to_csv(tmp, index=False))
    else:
        write_atomic(path, lambda tmp: df.to_parquet(tmp, index=False))


def readings_path(landing_dir: Path, hour_start: Any, file_format: str) -> Path:
    """Landing file of the hour starting at ``hour_start``."""
    return (
        Path(landing_dir)
        / f"{hour_start:%Y-%m-%d}"
        / f"readings_{hour_start:%Y%m%dT%H}{FILE_FORMATS[file_format]}"
    )


def simulate_fleet(
    config: SimulationConfig,
    landing_dir: Path,
    registry_path: Path,
    labels_path: Path,
    file_format: str = "parquet",
) -> dict:
    """Simulate ``config`` and write registry, labels and one readings file per hour.

    The registry goes to ``registry_path`` (CSV when it ends in ``.csv``, else Parquet), labels
    to ``labels_path`` (Parquet), readings to the landing layout (``file_format`` "parquet" or
    "csv"). Returns a JSON-friendly summary: devices, sites, hours, start, end, cadence_seconds,
    rows (written), dropped_rows (lost to dropouts), files (paths, in order), file_format,
    registry_path, labels_path, faults (count by type, every type listed).
    """
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format must be one of {sorted(FILE_FORMATS)}, got {file_format!r}")
    sim = FleetSimulator(config)
    registry_path, labels_path = Path(registry_path), Path(labels_path)
    write_frame(sim.registry(), registry_path)
    labels = sim.labels()
    write_atomic(labels_path, lambda tmp: labels.to_parquet(tmp, index=False))

    files: list[str] = []
    rows = 0
    for hour_start, df in sim.hours():
        path = readings_path(Path(landing_dir), hour_start, file_format)
        write_frame(df, path)
        files.append(str(path))
        rows += len(df)
    return {
        "devices": config.devices,
        "sites": config.n_sites,
        "hours": config.hours,
        "start": config.start.isoformat(),
        "end": config.end.isoformat(),
        "cadence_seconds": config.cadence_seconds,
        "rows": rows,
        "dropped_rows": config.devices * config.total_steps - rows,
        "files": files,
        "file_format": file_format,
        "registry_path": str(registry_path),
        "labels_path": str(labels_path),
        "faults": sim.plan.counts(),
    }
