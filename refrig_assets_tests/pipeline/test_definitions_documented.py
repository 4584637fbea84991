"""Every definition explains itself in the Dagster UI: each asset, asset check, job, schedule and
sensor has a description; each asset an owner and a group; each check on a partitioned asset
reports the partition it checked.

A new definition that fails here says which attribute it lacks and where to set it."""

import pytest

HOW = {
    "description": "pass description=... (assets: the docstring of the decorated function)",
    "owner": 'pass owners=["team:<team>"] on the asset (see the other assets of its domain)',
    "group": "pass group_name=... on the asset (its domain's group)",
    "partition": "declare the check with partitions_def=<the asset's partitions_def> "
    "(refrig_assets.defs.shared.contract_checks.contract_check_spec does), or its evaluations "
    "show no partition",
}


@pytest.fixture(scope="module")
def repository():
    from refrig_assets.definitions import defs

    return defs.get_repository_def()


def _report(kind: str, lacking: dict[str, list[str]]) -> str:
    lines = [f"{kind} without:"]
    for attribute, names in lacking.items():
        if names:
            lines.append(f"  {attribute} ({HOW[attribute]}): {', '.join(sorted(names))}")
    return "\n".join(lines)


def test_every_asset_has_a_description_an_owner_and_a_group(repository):
    graph = repository.asset_graph
    lacking: dict[str, list[str]] = {"description": [], "owner": [], "group": []}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        if not node.description:
            lacking["description"].append(name)
        if not node.owners:
            lacking["owner"].append(name)
        if not node.group_name or node.group_name == "default":
            lacking["group"].append(name)
    assert not any(lacking.values()), _report("assets", lacking)


def test_every_asset_check_has_a_description_and_reports_its_partition(repository):
    graph = repository.asset_graph
    lacking: dict[str, list[str]] = {"description": [], "partition": []}
    for key in graph.asset_check_keys:
        spec = graph.get_check_spec(key)
        name = f"{key.asset_key.to_user_string()}:{key.name}"
        if not spec.description:
            lacking["description"].append(name)
        asset_partitions = graph.get(key.asset_key).partitions_def
        if asset_partitions is not None and spec.partitions_def != asset_partitions:
            lacking["partition"].append(name)
    assert not any(lacking.values()), _report("asset checks", lacking)


def test_every_job_schedule_and_sensor_has_a_description(repository):
    jobs = [j.name for j in repository.get_all_jobs() if not j.name.startswith("__")]
    lacking = {
        "description": [
            *(f"job {j}" for j in jobs if not repository.get_job(j).description),
            *(f"schedule {s.name}" for s in repository.schedule_defs if not s.description),
            *(f"sensor {s.name}" for s in repository.sensor_defs if not s.description),
        ]
    }
    assert not lacking["description"], _report("jobs, schedules and sensors", lacking)
