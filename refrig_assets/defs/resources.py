"""The one resource every asset uses: where data lives and handles to the stores."""

from functools import cached_property

import dagster as dg

from refrig_assets.alerts.store import AlertStore
from refrig_assets.registry import ModelRegistry
from refrig_assets.settings import Settings, get_settings
from refrig_assets.storage import ParquetStore


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
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.settings.mlflow_tracking_uri, self.settings.mlflow_artifacts_dir)

    @cached_property
    def alerts(self) -> AlertStore:
        return AlertStore(self.settings.alerts_db_url)


defs = dg.Definitions(resources={"refrig": RefrigResource()})
