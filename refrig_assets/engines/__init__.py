"""Where feature windows and scoring run: the embedded engine (DuckDB, default) or Apache Spark.

Both engines read and write the same Parquet layout (:class:`refrig_assets.core.storage.ParquetStore`)
and run the same definitions: the feature SQL of :func:`refrig_assets.features.windows.feature_sql` and
the detectors' own ``score``. Which one runs is configuration, not code:

* ``REFRIG_ENGINE`` — ``duckdb`` (default: one machine, no service) or ``spark``;
* ``REFRIG_SPARK_MASTER`` — the Spark master URL (default ``local[*]``; ``spark://host:7077``
  for a standalone cluster, whose workers must see the data directory at the same path).
"""

from __future__ import annotations

import os

ENGINE_ENV = "REFRIG_ENGINE"
SPARK_MASTER_ENV = "REFRIG_SPARK_MASTER"
ENGINES = ("duckdb", "spark")
DEFAULT_SPARK_MASTER = "local[*]"


def configured_engine() -> str:
    """The engine named by ``REFRIG_ENGINE`` (``duckdb`` when unset)."""
    name = os.environ.get(ENGINE_ENV, "").strip().lower() or "duckdb"
    if name not in ENGINES:
        raise ValueError(f"{ENGINE_ENV}={name!r} is not an engine; choose one of {list(ENGINES)}")
    return name


def spark_master() -> str:
    """The Spark master URL named by ``REFRIG_SPARK_MASTER`` (``local[*]`` when unset)."""
    return os.environ.get(SPARK_MASTER_ENV, "").strip() or DEFAULT_SPARK_MASTER
