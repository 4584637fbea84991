"""Pipeline: the jobs that drive the graph (hourly readings → alerts, training, the release order,
the device registry) and the hourly schedule."""

import dagster as dg

from refrig_assets.defs.shared.jobs import (
    hourly_pipeline,
    refresh_device_registry,
    release_pipeline,
    train_detectors,
)

hourly_schedule = dg.build_schedule_from_partitioned_job(
    hourly_pipeline,
    minute_of_hour=5,
    name="hourly_pipeline_schedule",
    description="Five minutes past each hour: readings → features → scores → alerts of the hour "
    "just ended (late files refresh their hour through the late_landing_files sensor).",
)

defs = dg.Definitions(
    jobs=[hourly_pipeline, train_detectors, release_pipeline, refresh_device_registry],
    schedules=[hourly_schedule],
)

__all__ = ["defs"]
