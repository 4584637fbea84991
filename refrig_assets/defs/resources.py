"""The one resource every asset uses: where data lives and handles to the stores and engines.

Handles are created on first use and their libraries imported then (MLflow, SQLAlchemy, Spark
take seconds to import), so loading the definitions and running assets that do not need them
stays fast.
"""

from functools import cached_property
from typing import TYPE_CHECKING

import dagster as dg

from refrig_assets.engines import configured_engine
from refrig_assets.settings import Settings, get_settings
from refrig_assets.storage import ParquetStore

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from refrig_assets.alerts.store import AlertStore
    from refrig_assets.registry import ModelRegistry


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
        from refrig_assets.registry import ModelRegistry

        return ModelRegistry(self.settings.mlflow_tracking_uri, self.settings.mlflow_artifacts_dir)

    @cached_property
    def alerts(self) -> "AlertStore":
        from refrig_assets.alerts.store import AlertStore

        return AlertStore(self.settings.alerts_db_url)

    @property
    def engine(self) -> str:
        """``duckdb`` (embedded, default) or ``spark``, from ``REFRIG_ENGINE``."""
        return configured_engine()

    @cached_property
    def spark(self) -> "SparkSession":
        """The Spark session of this process, on ``REFRIG_SPARK_MASTER`` (default ``local[*]``)."""
        from refrig_assets.engines.spark import spark_session

        return spark_session()


defs = dg.Definitions(resources={"refrig": RefrigResource()})
