"""The deployment files are the ones the last passing `make compose-test` built and ran.

`make compose-test` (≈35–55 min) does not fit in CI next to `make test`; it runs once per change
of the deployment instead, and records what passed in deploy/compose-test.passed.json. This fast
check fails when deploy/, docker-compose.yml, workspace.yaml or .dockerignore changed since.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from deploy import compose_stamp

ROOT = Path(__file__).resolve().parents[2]


def test_the_deployment_files_are_those_of_the_last_passing_compose_test():
    if not (ROOT / compose_stamp.STAMP).is_file():
        pytest.skip("no passing `make compose-test` recorded yet (deploy/compose-test.passed.json)")
    record = json.loads((ROOT / compose_stamp.STAMP).read_text())
    assert record["fingerprint"] == compose_stamp.fingerprint(ROOT), (
        "deploy/, docker-compose.yml, workspace.yaml or .dockerignore changed since the last "
        f"passing `make compose-test` (commit {record['commit']}, {record['passed_at']}): "
        "run it (as root) and commit the deploy/compose-test.passed.json it writes"
    )


def test_the_fingerprint_follows_every_deployment_file_but_not_the_record(tmp_path):
    for name in compose_stamp.WATCHED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tmp_path / name)
    original = compose_stamp.fingerprint(tmp_path)

    (tmp_path / compose_stamp.STAMP).write_text("{}\n")
    assert compose_stamp.fingerprint(tmp_path) == original, "the record is not part of it"

    for changed in ("docker-compose.yml", "deploy/dagster.yaml", "deploy/postgres/Dockerfile"):
        path = tmp_path / changed
        kept = path.read_bytes()
        path.write_bytes(kept + b"\n")
        assert compose_stamp.fingerprint(tmp_path) != original, changed
        path.write_bytes(kept)
    assert compose_stamp.fingerprint(tmp_path) == original

    script = tmp_path / "deploy" / "compose-test.sh"
    script.chmod(0o644)
    assert compose_stamp.fingerprint(tmp_path) != original, "the executable bit counts"
    script.chmod(0o755)

    (tmp_path / "deploy" / "new-service.yml").write_text("services: {}\n")
    assert compose_stamp.fingerprint(tmp_path) != original, "a new file counts"
