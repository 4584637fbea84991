"""The record of the last passing `make compose-test`: deploy/compose-test.passed.json.

`make compose-test` takes longer than CI allows, so it runs once per change of the deployment
instead. After its smoke test passed, deploy/compose-test.sh writes this record with the
fingerprint (SHA-256) of the deployment files it built and ran; the record is committed. A fast
test (refrig_assets_tests/deployment/test_compose_stamp.py, part of `make test`) fails while
the deployment files differ from the ones the record vouches for.

    python deploy/compose_stamp.py fingerprint [ROOT]
    python deploy/compose_stamp.py write --source DIR --out FILE --expect SHA ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

# What docker-compose builds and runs: images (Dockerfiles, .dockerignore), the stack and its
# overrides, the mounted instance and workspace files.
WATCHED = ("deploy", "docker-compose.yml", "workspace.yaml", ".dockerignore")
STAMP = Path("deploy") / "compose-test.passed.json"


def deployment_files(root: Path) -> list[Path]:
    """The watched files under ``root``, relative to it, sorted; the record itself and Python
    bytecode left out."""
    found: list[Path] = []
    for name in WATCHED:
        path = root / name
        if path.is_file():
            found.append(Path(name))
        elif path.is_dir():
            for file in path.rglob("*"):
                if file.is_file() and "__pycache__" not in file.parts:
                    found.append(file.relative_to(root))
    return sorted(f for f in found if f != STAMP)


def fingerprint(root: Path) -> str:
    """SHA-256 over every watched file's path, executable bit and contents."""
    digest = hashlib.sha256()
    for relative in deployment_files(root):
        path = root / relative
        executable = b"x" if os.access(path, os.X_OK) else b"-"
        digest.update(relative.as_posix().encode() + b"\0" + executable)
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def read_pairs(path: Path) -> dict[str, str]:
    """``name value`` lines (deploy/compose-test.sh's timings and image sizes)."""
    if not path.is_file():
        return {}
    pairs = (line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip())
    return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}


def write(args: argparse.Namespace) -> int:
    """Write the record, unless the files changed while the run was going."""
    source = Path(args.source)
    now = fingerprint(source)
    if now != args.expect:
        print(
            "compose-stamp: deployment files changed during the run; no record written",
            file=sys.stderr,
        )
        return 1
    timings = read_pairs(Path(args.timings))
    record = {
        "fingerprint": now,
        "files": len(deployment_files(source)),
        "commit": args.commit,
        "source": args.source_kind,
        "passed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_s": args.wall_s,
        "stages_s": {name: int(value) for name, value in timings.items()},
        "images": read_pairs(Path(args.images)),
    }
    out = Path(args.out)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("fingerprint", help="print the deployment files' fingerprint")
    show.add_argument("root", nargs="?", default=".")
    record = commands.add_parser("write", help="write the record of a passing run")
    record.add_argument("--source", required=True, help="the tree that was built and run")
    record.add_argument("--expect", required=True, help="its fingerprint when the run began")
    record.add_argument("--out", required=True)
    record.add_argument("--commit", default="")
    record.add_argument("--source-kind", default="worktree")
    record.add_argument("--wall-s", type=int, required=True)
    record.add_argument("--timings", required=True)
    record.add_argument("--images", required=True)
    args = parser.parse_args(argv)
    if args.command == "fingerprint":
        print(fingerprint(Path(args.root)))
        return 0
    return write(args)


if __name__ == "__main__":
    sys.exit(main())
