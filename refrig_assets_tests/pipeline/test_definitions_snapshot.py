"""Every asset key, check, job, schedule and sensor of the Definitions, against a committed
snapshot: a rename or a lost definition is never silent.

After an intended change, regenerate with ``REFRIG_UPDATE_SNAPSHOT=1 pytest -k snapshot`` and
review the diff of ``definitions_snapshot.json``."""

import json
import os
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def definitions_inventory() -> dict[str, list[str]]:
    from refrig_assets.definitions import defs

    repo = defs.get_repository_def()
    graph = repo.asset_graph
    return {
        "assets": sorted(key.to_user_string() for key in graph.get_all_asset_keys()),
        "asset_checks": sorted(
            f"{key.asset_key.to_user_string()}:{key.name}" for key in graph.asset_check_keys
        ),
        "jobs": sorted(job.name for job in repo.get_all_jobs() if not job.name.startswith("__")),
        "schedules": sorted(s.name for s in repo.schedule_defs),
        "sensors": sorted(s.name for s in repo.sensor_defs),
    }


def test_definitions_match_the_committed_snapshot():
    inventory = definitions_inventory()
    if os.environ.get("REFRIG_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(inventory, indent=2) + "\n")
    assert inventory == json.loads(SNAPSHOT.read_text())
