"""Code location of the docker-compose smoke test (deploy/compose.loopback.yml mounts it into the
user_code container): the project's definitions plus one schedule that ticks every minute.

The hourly schedule ticks once an hour; this one lets the smoke test see "the next scheduled run"
after a restart within a minute, through the same daemon, run queue and code server. Every tick
requests the hour in ``REFRIG_SCHEDULED_PARTITION`` (a partition the test has landed data for).
"""

import os

import dagster as dg

import refrig_assets.definitions as project

SCHEDULE_NAME = "compose_test_every_minute"


@dg.schedule(
    name=SCHEDULE_NAME,
    cron_schedule="* * * * *",
    job_name="hourly_pipeline",
    description="Smoke test only: the hourly pipeline for one landed hour, every minute.",
)
def every_minute(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """One run of the hourly pipeline for the configured hour on each tick."""
    return dg.RunRequest(partition_key=os.environ["REFRIG_SCHEDULED_PARTITION"])


# One Definitions object at module scope (Dagster refuses two): the project's, imported by module.
defs = dg.Definitions.merge(project.defs, dg.Definitions(schedules=[every_minute]))
