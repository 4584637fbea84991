"""A small landing zone run through the real Dagster assets: readings → quality → features.

The registry partition is written directly (only its ``device_id`` is read by the quality step),
so a test needs no simulated fleet: a few files in ``<home>/landing`` are enough.
"""

import shutil
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import yaml

from refrig_assets.core.config import CONFIG_DIR
from refrig_assets.core.settings import get_settings
from refrig_assets.core.storage import ParquetStore
from refrig_assets.defs.features.assets import device_features
from refrig_assets.defs.ingestion.assets import device_registry, sensor_readings
from refrig_assets.defs.ingestion.sensors import late_landing_files
from refrig_assets.defs.quality.assets import clean_readings
from refrig_assets.defs.shared.partitions import hourly_partitions
from refrig_assets.defs.shared.resources import RefrigResource
from support.quality_helpers import HOUR

H0, H1, H2 = "2026-01-01-00:00", "2026-01-01-01:00", "2026-01-01-02:00"
HOURLY = ["sensor_readings", "clean_readings", "quarantined_readings", "device_features"]


def landing_graph(home) -> dg.Definitions:
    """The landing → features part of the graph, with the hourly job the late-data sensor
    targets, on the project home ``home``."""
    return dg.Definitions(
        assets=[device_registry, sensor_readings, clean_readings, device_features],
        sensors=[late_landing_files],
        jobs=[
            dg.define_asset_job(
                "hourly_pipeline",
                selection=HOURLY,
                partitions_def=hourly_partitions,
                executor_def=dg.in_process_executor,
            )
        ],
        resources={"refrig": RefrigResource(home=str(home))},
    )


class LandingWorld:
    """A project home with a landing directory, a registry and the hourly part of the graph."""

    def __init__(self, devices=("dev-1", "dev-2")):
        settings = get_settings()
        self.home = settings.home
        self.landing: Path = settings.landing_dir
        self.landing.mkdir(parents=True, exist_ok=True)
        self.store = ParquetStore(settings.data_dir)
        self.store.write("device_registry", None, pd.DataFrame({"device_id": list(devices)}))
        self.defs = landing_graph(self.home)

    def run_hour(self, instance, hour: str, assets=HOURLY) -> dg.ExecuteInProcessResult:
        """Materialize ``assets`` of one hour in one run of the hourly job (it must succeed)."""
        result = self.defs.resolve_job_def("hourly_pipeline").execute_in_process(
            instance=instance,
            partition_key=hour,
            asset_selection=[dg.AssetKey(a) for a in assets],
            raise_on_error=False,
        )
        assert result.success, [
            e.event_specific_data.error.message
            for e in result.all_events
            if e.is_step_failure and e.event_specific_data is not None
        ]
        return result

    def sensor(self, instance) -> dg.SensorResult | dg.SkipReason:
        """One evaluation of the late-data sensor."""
        return late_landing_files(dg.build_sensor_context(instance=instance, definitions=self.defs))

    def rows(self, dataset: str, hour: str) -> pd.DataFrame:
        return self.store.read(dataset, hour)


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """The run's check evaluations by check name."""
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    """The metadata of the run's materialization of ``asset`` (plain values)."""
    [meta] = [
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: getattr(v, "value", v) for k, v in meta.items()}


def hour_start(key: str):
    """The start of an hourly partition key of 2026-01-01."""
    return HOUR + timedelta(hours=int(key[11:13]))


def authoritative_landing(tmp_path: Path, monkeypatch) -> None:
    """Point the test at a copy of the configuration whose landing zone is authoritative
    (``landing.authoritative: true``: what it no longer holds leaves the partitions)."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    body = yaml.safe_load((config / "ingestion.yaml").read_text())
    body["landing"]["authoritative"] = True
    (config / "ingestion.yaml").write_text(yaml.safe_dump(body))
    monkeypatch.setenv("REFRIG_CONFIG_DIR", str(config))
