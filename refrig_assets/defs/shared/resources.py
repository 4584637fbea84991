"""The one resource every asset uses: where data lives and handles to the stores and engines.

Handles are created on first use and their libraries imported then (MLflow, SQLAlchemy, Spark
take seconds to import), so loading the definitions and running assets that do not need them
stays fast.
"""

import importlib
import threading
from functools import cached_property
from typing import TYPE_CHECKING

import dagster as dg

from refrig_assets.core.settings import Settings, get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.engines import configured_engine

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from refrig_assets.alerts.store import AlertStore
    from refrig_assets.core.model_config import ModelConfig
    from refrig_assets.training.registry import ModelRegistry

_warm_lock = threading.Lock()
_warming: threading.Thread | None = None


class RefrigResource(dg.ConfigurableResource):
    """Locations come from the environment (REFRIG_HOME and friends) unless set here."""

    home: str | None = None

    @cached_property
    def settings(self) -> Settings:
        if self.home:
            import os

            os.environ["REFRIG_HOME"] = self.home
        return get_settings()

    @cached_property
    def store(self) -> ParquetStore:
        return ParquetStore(self.settings.data_dir)

    @cached_property
    def registry(self) -> "ModelRegistry":
        from refrig_assets.training.registry import ModelRegistry

        return ModelRegistry(self.settings.mlflow_tracking_uri, self.settings.mlflow_artifacts_dir)

    @cached_property
    def alerts(self) -> "AlertStore":
        from refrig_assets.alerts.store import AlertStore

        return AlertStore(self.settings.alerts_db_url)

    @property
    def engine(self) -> str:
        """``duckdb`` (embedded, default) or ``spark``, from ``REFRIG_ENGINE``."""
        return configured_engine()

    def warm_up_scoring(self, context: dg.AssetExecutionContext | None = None) -> None:
        """Import what the hourly score assets need (MLflow, the hourly detectors' modules) in a
        background thread, once per process (no store is opened: that stays with its user).

        Quality spends its time in DuckDB, which releases the GIL: the imports (about 1 CPU-s)
        run there instead of at the start of scoring. Given the step's ``context``, only a run
        that goes on to an hourly score asset warms up (a run of quality alone, or a backfill
        of readings, would pay for imports it never uses). Any failure here is left for the
        score assets to meet and report."""
        if context is not None and not self._run_scores(context):
            return
        global _warming
        with _warm_lock:
            if _warming is not None:
                return
            _warming = threading.Thread(target=self._warm, name="warm-up-scoring", daemon=True)
        _warming.start()

    def _hourly_models(self) -> list["ModelConfig"]:
        from refrig_assets.core.model_config import all_model_ids, load_model_config

        configs = [
            load_model_config(m, self.settings.models_dir)
            for m in all_model_ids(self.settings.models_dir)
        ]
        return [c for c in configs if c.schedule == "hourly"]

    def _run_scores(self, context: dg.AssetExecutionContext) -> bool:
        """Whether the step's run materializes an hourly score asset (a run without an asset
        selection runs its whole job, which does)."""
        selection = context.run.asset_selection
        if selection is None:
            return True
        try:
            names = {f"{c.model_id}_scores" for c in self._hourly_models()}
        except Exception:  # noqa: BLE001 - an unreadable models/ file is the score assets' to report
            return True
        return any(key.path[-1] in names for key in selection)

    def _warm(self) -> None:
        from refrig_assets.lifecycle.retraining_policy import detector_module_file

        try:
            for config in self._hourly_models():
                module = detector_module_file(config).removesuffix(".py").replace("/", ".")
                importlib.import_module(f"refrig_assets.{module}")
            importlib.import_module("refrig_assets.training.registry")  # MLflow
        except Exception:  # noqa: BLE001 - scoring imports again and reports the error itself
            pass

    @cached_property
    def spark(self) -> "SparkSession":
        """The Spark session of this process, on ``REFRIG_SPARK_MASTER`` (default ``local[*]``)."""
        from refrig_assets.engines.spark import spark_session

        return spark_session()
