"""A throwaway project home driven through the ``refrig`` command, and the accounting of every
landing row: read = clean + quarantined, per file, or it counts as lost."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

START = "2026-01-01T00:00"
HOURS = ["2026-01-01-00:00", "2026-01-01-01:00"]


@dataclass
class Outcome:
    """What a case saw: a verdict, readings lost, and the evidence in a sentence."""

    case: str
    passed: bool
    rows_lost: int
    detail: str
    seconds: float = 0.0


@dataclass
class Home:
    """A project home under a temporary folder, with its own Dagster instance."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="refrig-chaos-")))

    def __post_init__(self) -> None:
        (self.root / "dagster").mkdir(parents=True, exist_ok=True)
        (self.root / "dagster" / "dagster.yaml").touch()

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REFRIG_")}
        env.update(
            REFRIG_HOME=str(self.root),
            DAGSTER_HOME=str(self.root / "dagster"),
            PYTHONWARNINGS="ignore",
            MLFLOW_DISABLE_TELEMETRY="true",
        )
        return env

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def refrig(self, *args: str, env: dict[str, str] | None = None, timeout: int = 600):
        """Run ``refrig ARGS`` in this home; the completed process (output captured)."""
        command = [sys.executable, "-c", "from refrig_assets.cli import main; main()", *args]
        return subprocess.run(
            command, env=env or self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        command = [sys.executable, "-c", "from refrig_assets.cli import main; main()", *args]
        return subprocess.Popen(
            command, env=env or self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )

    def simulate(self, devices: int = 20, hours: int = 2) -> None:
        done = self.refrig(
            "simulate", "--devices", str(devices), "--hours", str(hours), "--format", "csv"
        )
        if done.returncode:
            raise RuntimeError(f"simulate failed: {done.stderr[-400:]}")

    def pipeline(self, hours: int = 2, *extra: str):
        return self.refrig(
            "pipeline", "run", "--start", START, "--hours", str(hours), "--train-hours", "1", *extra
        )

    def hour_file(self, hour: int) -> Path:
        return next(self.landing.rglob(f"*T{hour:02d}.csv"))

    def partition_rows(self, dataset: str) -> dict[str, int]:
        folder = self.data / dataset
        if not folder.exists():
            return {}
        return {
            p.stem: pq.ParquetFile(p).metadata.num_rows
            for p in sorted(folder.glob("*.parquet"))
            if not p.name.startswith(".")
        }

    def rows_lost(self, landing_rows: dict[str, int]) -> int:
        """Landing rows (per file, counted before the run) neither clean nor quarantined."""
        clean = _by_file(self.data / "clean_readings")
        quarantine = _read_all(self.data / "quarantined_readings")
        rejected_files = set()
        quarantined: dict[str, int] = {}
        if len(quarantine):
            # A file-level rejection names no row (null, or -1 for a file that was not parsed).
            whole = quarantine["row"].isna() | (quarantine["row"].fillna(-1) < 0)
            rejected_files = set(quarantine.loc[whole, "source_file"].astype(str))
            quarantined = quarantine[~whole].groupby("source_file").size().to_dict()
        lost = 0
        for name, rows in landing_rows.items():
            if name in rejected_files:
                continue
            lost += max(0, rows - clean.get(name, 0) - quarantined.get(name, 0))
        return lost

    def count_landing_rows(self) -> dict[str, int]:
        """Rows of every readable landing file, keyed like ``source_file`` (relative path)."""
        counts = {}
        for path in sorted(p for p in self.landing.rglob("*") if p.is_file()):
            name = str(path.relative_to(self.landing))
            counts[name] = _file_rows(path)
        return counts


def _file_rows(path: Path) -> int:
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return pq.ParquetFile(path).metadata.num_rows
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt") as fh:
            return max(0, sum(1 for _ in fh) - 1)
    except Exception:  # noqa: BLE001 - an unreadable file has no countable rows
        return 0


def _read_all(folder: Path) -> pd.DataFrame:
    files = sorted(str(p) for p in folder.glob("*.parquet") if not p.name.startswith("."))
    if not files:
        return pd.DataFrame(columns=["source_file", "row"])
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _by_file(folder: Path) -> dict[str, int]:
    files = sorted(str(p) for p in folder.glob("*.parquet") if not p.name.startswith("."))
    if not files:
        return {}
    rows = duckdb.sql(
        f"SELECT source_file, count(*) FROM read_parquet({files!r}) GROUP BY 1"
    ).fetchall()
    return {str(f): int(n) for f, n in rows}
