"""The hourly path's memory budget (``hourly:`` of config/performance.yaml).

Steps hold DuckDB to the budget (beyond it, sorts, joins and windows spill to disk) and the
quality step sizes its device shards with it (:mod:`refrig_assets.quality.shards`), so memory
stays flat however large the fleet. The feature step also sizes its shards by its windows
(:meth:`MemoryBudget.feature_shards_for`), so that DuckDB's limit stays a safety net that its
aggregation never reaches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import duckdb

from refrig_assets.core.config import load_config
from refrig_assets.core.duck import sql_str

# Where DuckDB spills beyond the budget: under the data directory (the partitions' disk).
SPILL_DIR = ".spill"


@dataclass(frozen=True)
class MemoryBudget:
    """How much memory one hourly step may use for its data, and what a reading costs."""

    path: Path
    memory_budget_mb: int
    reading_bytes: int
    # What a feature window costs the feature step (bytes); None: its shards follow the
    # readings alone. load_memory_budget always reads it from the file.
    window_bytes: int | None = None

    def shards_for(self, readings: int) -> int:
        """Shards needed so one shard's working memory fits the budget (at least one)."""
        need = readings * self.reading_bytes
        return max(1, math.ceil(need / (self.memory_budget_mb * 2**20)))

    def feature_shards_for(self, readings: int, windows: float) -> int:
        """Shards the feature step needs for an hour of ``readings`` that make about
        ``windows`` feature windows: as many as the readings need (:meth:`shards_for`), and
        enough that one shard's windows aggregate in memory under the budget (a hash
        aggregate held to a limit it would cross goes to its partitioned, out-of-core form,
        which costs CPU even where the memory is there)."""
        by_readings = self.shards_for(readings)
        if self.window_bytes is None:
            return by_readings
        need = windows * self.window_bytes
        return max(by_readings, math.ceil(need / (self.memory_budget_mb * 2**20)))


def load_memory_budget() -> MemoryBudget:
    """The ``hourly:`` section of config/performance.yaml; errors name the file and the key."""
    config = load_config("performance")
    hourly = config.section("hourly")
    return MemoryBudget(
        path=config.path,
        memory_budget_mb=hourly.number("memory_budget_mb", minimum=256, integer=True),
        reading_bytes=hourly.number("reading_bytes", minimum=1, integer=True),
        window_bytes=hourly.number("window_bytes", minimum=1, integer=True),
    )


def hold_to_budget(
    con: duckdb.DuckDBPyConnection,
    budget: MemoryBudget | None = None,
    spill_dir: Path | None = None,
) -> None:
    """Hold a DuckDB connection to the memory budget: beyond it, sorts, joins and windows
    spill to ``spill_dir`` (DuckDB's default temporary directory when None)."""
    budget = budget or load_memory_budget()
    con.execute(f"SET memory_limit = '{int(budget.memory_budget_mb)}MB'")
    if spill_dir is not None:
        spill_dir.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = {sql_str(str(spill_dir))}")
