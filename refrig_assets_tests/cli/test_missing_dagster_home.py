"""`refrig pipeline run` with DAGSTER_HOME pointing at a folder that does not exist yet (a new
home, as docs/own-fleet-data.md has you export it): the instance is created there with the
project's settings, instead of the run failing on Dagster's "is not a directory" error."""

import yaml

from refrig_assets.cli.runner import _project_instance
from refrig_assets.defs.shared.instance import instance_settings


def test_a_dagster_home_that_does_not_exist_yet_is_created_with_the_project_settings(
    refrig_home, tmp_path, monkeypatch
):
    home = tmp_path / "new" / "dagster"
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    instance = _project_instance()

    assert instance.root_directory == str(home)
    assert yaml.safe_load((home / "dagster.yaml").read_text()) == instance_settings()
    instance.dispose()


def test_an_empty_dagster_home_reads_as_unset(refrig_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", "")

    instance = _project_instance()

    assert instance.root_directory == str(refrig_home / "dagster")
    instance.dispose()
