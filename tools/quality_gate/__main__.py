"""``python -m tools.quality_gate``: print the one-screen grade, exit 1 when the gate fails."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.quality_gate.grading import grade, load_gate_settings, project_root, render
from tools.quality_gate.measure import (
    measure_complexity,
    measure_coverage,
    measure_documentation,
    measure_security,
)


def main(argv: list[str] | None = None) -> int:
    """Measure, grade and print; the exit status says whether the gate passed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--coverage-json", type=Path, required=True)
    parser.add_argument("--audit-json", type=Path, default=None)
    parser.add_argument("--settings", type=Path, default=None)
    args = parser.parse_args(argv)
    root = project_root()
    settings = load_gate_settings(args.settings)
    dimensions = [
        measure_complexity(root, settings),
        measure_coverage(args.coverage_json.resolve(), root, settings),
        measure_documentation(root, settings),
        measure_security(args.audit_json, settings),
    ]
    report = grade(dimensions, settings)
    print(render(report, settings))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
