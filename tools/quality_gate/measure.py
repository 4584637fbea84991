"""Measure the code base for the quality gate: complexity, coverage, docstrings, dependency audit.

Each function reads the output of a real tool (ruff's McCabe rule, coverage.py's JSON report,
pip-audit's JSON report) or the source itself (``ast``) and returns a
:class:`~tools.quality_gate.grading.DimensionScore`.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from tools.quality_gate.grading import (
    DimensionScore,
    GateSettings,
    complexity_score,
    coverage_score,
    documentation_score,
    security_score,
)

_COMPLEXITY = re.compile(r"is too complex \((\d+) > \d+\)")


def domain_files(root: Path, settings: GateSettings) -> list[Path]:
    """Python files of the package that hold domain logic (``domain_exclude`` left out)."""
    files = []
    for path in sorted((root / settings.package).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if not any(rel.startswith(prefix) for prefix in settings.domain_exclude):
            files.append(path)
    return files


def function_complexities(root: Path, files: list[Path]) -> list[int]:
    """McCabe complexity of every function in ``files``, via ruff's C901 rule with limit 0."""
    ruff = Path(sys.executable).with_name("ruff")
    proc = subprocess.run(
        [str(ruff), "check", "--no-cache", "--select", "C901", "--output-format", "json"]
        + ["--config", "lint.mccabe.max-complexity=0", *map(str, files)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"ruff failed measuring complexity: {proc.stderr.strip()}")
    return [
        int(m.group(1))
        for item in json.loads(proc.stdout or "[]")
        if (m := _COMPLEXITY.search(item.get("message", "")))
    ]


def measure_complexity(root: Path, settings: GateSettings) -> DimensionScore:
    """Complexity dimension over the domain modules."""
    complexities = function_complexities(root, domain_files(root, settings))
    return complexity_score(complexities, settings.max_function_complexity)


def measure_coverage(coverage_json: Path, root: Path, settings: GateSettings) -> DimensionScore:
    """Line coverage of the domain modules from coverage.py's ``coverage.json``."""
    if not coverage_json.exists():
        return DimensionScore("coverage", None, f"not measured: {coverage_json} not found")
    files = json.loads(coverage_json.read_text()).get("files", {})
    domain = {p.relative_to(root).as_posix() for p in domain_files(root, settings)}
    covered = total = 0
    for name, data in files.items():
        rel = (
            Path(name).resolve().relative_to(root).as_posix() if Path(name).is_absolute() else name
        )
        if rel in domain:
            covered += int(data["summary"]["covered_lines"])
            total += int(data["summary"]["num_statements"])
    return coverage_score(covered, total, settings.coverage_floor)


def public_definitions(source: str) -> tuple[int, int]:
    """(documented, public) counts of module-level and class-level public functions and classes."""
    tree = ast.parse(source)
    documented = public = 0
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    nodes = [n for n in tree.body if isinstance(n, defs)]
    for cls in [n for n in nodes if isinstance(n, ast.ClassDef)]:
        nodes.extend(n for n in cls.body if isinstance(n, defs))
    for node in nodes:
        if node.name.startswith("_"):
            continue
        public += 1
        documented += ast.get_docstring(node) is not None
    return documented, public


def measure_documentation(root: Path, settings: GateSettings) -> DimensionScore:
    """Docstring coverage of public definitions in the domain modules, and a README at the root."""
    documented = public = 0
    for path in domain_files(root, settings):
        d, p = public_definitions(path.read_text())
        documented += d
        public += p
    readme = (root / "README.md").exists()
    return documentation_score(documented, public, readme, settings.readme_share)


def measure_security(audit_json: Path | None, settings: GateSettings) -> DimensionScore:
    """Known vulnerabilities from pip-audit's JSON report; not measured when nothing was audited."""
    if audit_json is None or not audit_json.exists():
        return security_score(
            None, settings.points_per_vulnerability, "pip-audit report missing (no network?)"
        )
    deps = json.loads(audit_json.read_text()).get("dependencies", [])
    audited = [d for d in deps if "vulns" in d]
    if not audited:
        why = f"0 of {len(deps)} dependencies could be audited (package index answered none)"
        return security_score(None, settings.points_per_vulnerability, why)
    vulns = [
        f"{d['name']} {d.get('version', '')}: {v.get('id')} (fix: {', '.join(v.get('fix_versions') or []) or 'none'})"
        for d in audited
        for v in d["vulns"]
    ]
    score = security_score(vulns, settings.points_per_vulnerability)
    skipped = len(deps) - len(audited)
    detail = score.detail + f" ({len(audited)} audited, {skipped} skipped)"
    return DimensionScore(score.name, score.score, detail, score.problems)
