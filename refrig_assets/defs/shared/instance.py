"""The Dagster instance settings the project writes: ``$DAGSTER_HOME/dagster.yaml`` for
``make run``, ``make dev`` (``dagster dev``: the UI and the daemon) and the runs they launch.

Besides telemetry and the UI's welcome pop-up (off), the settings name the project's event log:
:class:`HomeSqliteEventLogStorage`, the batched SQLite event log ``refrig pipeline run`` already
uses (``defs/shared/event_log``), over the files Dagster's default SQLite storage keeps under
``$DAGSTER_HOME/history/runs``, with Dagster's event batching on. A run the daemon launches (schedules, sensors, backfills, the
UI's launch button) builds its instance from these settings, so it writes its events as
``refrig pipeline run`` does, into the same files every reader (the UI, the daemon, Dagster's
own storage) reads. Run and schedule storage keep Dagster's defaults.

Usage: ``python -m refrig_assets.defs.shared.instance DAGSTER_HOME`` writes the file when it is
missing or empty (a file someone configured is left as it is).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml
from dagster._serdes import ConfigurableClassData

from refrig_assets.defs.shared.event_log import EVENT_BATCH_SIZE, BatchedSqliteEventLogStorage


def home_event_log_dir() -> str:
    """Where Dagster's default SQLite storage keeps the event logs of ``$DAGSTER_HOME``."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ValueError("DAGSTER_HOME is not set: the event log lives under it")
    return os.path.join(os.path.abspath(os.path.expanduser(home)), "history", "runs", "")


class HomeSqliteEventLogStorage(BatchedSqliteEventLogStorage):
    """The batched SQLite event log over ``$DAGSTER_HOME/history/runs``, resolved when the
    instance is built (configured without a path, so a home that moves keeps working)."""

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> HomeSqliteEventLogStorage:
        # Dagster's event batching on in the process that builds the instance (a run worker
        # the daemon launched, too), as pipeline_instance() does; unless set otherwise.
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
        return cls(home_event_log_dir(), inst_data=inst_data)


def instance_settings() -> dict[str, Any]:
    """The contents of the project's ``dagster.yaml``."""
    return {
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},
        "event_log_storage": {
            # Not __name__: run as ``python -m`` this module is __main__.
            "module": "refrig_assets.defs.shared.instance",
            "class": HomeSqliteEventLogStorage.__name__,
        },
    }


def write_instance_settings(dagster_home: Path) -> bool:
    """Write ``dagster_home/dagster.yaml`` when it is missing or empty; True when written."""
    config = dagster_home / "dagster.yaml"
    if config.exists() and config.read_text().strip():
        return False
    dagster_home.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(instance_settings(), sort_keys=False))
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m refrig_assets.defs.shared.instance DAGSTER_HOME", file=sys.stderr)
        return 2
    write_instance_settings(Path(argv[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
