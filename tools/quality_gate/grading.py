"""Grade a code base from its measurements: weighted dimensions, coverage floor, pass threshold.

Pure functions: the measurements come in as numbers (see :mod:`tools.quality_gate.measure`),
the thresholds from ``config/release.yaml``. A dimension that could not be measured (``score=None``) is
reported as such and its weight is spread over the measured ones, never replaced by a guess.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DIMENSIONS = ("complexity", "coverage", "documentation", "security")
RELEASE_FILE = "config/release.yaml"


class GateConfigError(ValueError):
    """The release settings file is missing a quality-gate value or holds an invalid one."""


@dataclass(frozen=True)
class GateSettings:
    """Weights and thresholds of the quality gate (``quality_gate`` in ``config/release.yaml``)."""

    weights: dict[str, float]
    min_score: float
    coverage_floor: float
    max_function_complexity: int
    points_per_vulnerability: float
    readme_share: float
    package: str
    domain_exclude: tuple[str, ...]
    letters: dict[str, float]


@dataclass(frozen=True)
class DimensionScore:
    """One graded dimension: a 0-100 score (None when not measured) and what it is based on."""

    name: str
    score: float | None
    detail: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class GradeReport:
    """The weighted grade, its letter, and why the gate passes or fails."""

    dimensions: list[DimensionScore]
    weights: dict[str, float]
    score: float
    letter: str
    passed: bool
    reasons: list[str] = field(default_factory=list)


def project_root() -> Path:
    """The repository root (the folder holding ``config/release.yaml``)."""
    return Path(__file__).resolve().parents[2]


def load_gate_settings(path: str | Path | None = None) -> GateSettings:
    """Read and check the ``quality_gate`` block of ``config/release.yaml`` (or ``REFRIG_RELEASE_FILE``)."""
    file = Path(path or os.environ.get("REFRIG_RELEASE_FILE") or project_root() / RELEASE_FILE)
    try:
        raw: dict[str, Any] = (yaml.safe_load(file.read_text()) or {})["quality_gate"]
    except (OSError, KeyError, TypeError) as exc:
        raise GateConfigError(f"{file}: no readable 'quality_gate' block ({exc})") from exc
    try:
        weights = {name: float(raw["weights"][name]) for name in DIMENSIONS}
        settings = GateSettings(
            weights=weights,
            min_score=float(raw["min_score"]),
            coverage_floor=float(raw["coverage_floor"]),
            max_function_complexity=int(raw["max_function_complexity"]),
            points_per_vulnerability=float(raw["points_per_vulnerability"]),
            readme_share=float(raw["readme_share"]),
            package=str(raw["package"]),
            domain_exclude=tuple(str(p) for p in raw.get("domain_exclude", [])),
            letters={str(k): float(v) for k, v in raw["letters"].items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise GateConfigError(f"{file}: quality_gate.{exc} is missing or invalid") from exc
    if abs(sum(weights.values()) - 100.0) > 1e-6:
        raise GateConfigError(
            f"{file}: quality_gate.weights must sum to 100, not {sum(weights.values())}"
        )
    return settings


def letter_for(score: float, letters: dict[str, float]) -> str:
    """The best letter whose lowest score the grade reaches; ``F`` below all of them."""
    for letter, lowest in sorted(letters.items(), key=lambda kv: -kv[1]):
        if score >= lowest:
            return letter
    return "F"


def complexity_score(complexities: list[int], limit: int) -> DimensionScore:
    """Share of functions whose McCabe complexity stays within ``limit`` (100 = all of them)."""
    if not complexities:
        return DimensionScore("complexity", None, "no functions found")
    over = sorted((c for c in complexities if c > limit), reverse=True)
    score = 100.0 * (len(complexities) - len(over)) / len(complexities)
    detail = f"{len(over)} of {len(complexities)} functions over complexity {limit}"
    if over:
        detail += f" (worst {over[0]})"
    return DimensionScore("complexity", score, detail)


def coverage_score(covered_lines: int, total_lines: int, floor: float) -> DimensionScore:
    """Line coverage of the domain modules, in percent; below ``floor`` is a problem."""
    if total_lines <= 0:
        return DimensionScore("coverage", None, "no coverage data for the domain modules")
    percent = 100.0 * covered_lines / total_lines
    problems = (
        (f"domain coverage {percent:.1f}% is below the floor {floor:.0f}%",)
        if percent < floor
        else ()
    )
    return DimensionScore(
        "coverage", percent, f"{covered_lines}/{total_lines} domain lines covered", problems
    )


def documentation_score(
    documented: int, public: int, readme_present: bool, readme_share: float
) -> DimensionScore:
    """Docstring coverage of public functions and classes, plus ``readme_share`` for a README."""
    doc_part = 100.0 * documented / public if public else 100.0
    score = (1.0 - readme_share) * doc_part + (100.0 * readme_share if readme_present else 0.0)
    readme = "README present" if readme_present else "README missing"
    return DimensionScore(
        "documentation", score, f"{documented}/{public} public definitions documented, {readme}"
    )


def security_score(
    vulnerabilities: list[str] | None, points_each: float, why_not: str = ""
) -> DimensionScore:
    """100 minus ``points_each`` per known vulnerability; None when the audit could not run."""
    if vulnerabilities is None:
        return DimensionScore("security", None, f"not measured: {why_not or 'audit unavailable'}")
    score = max(0.0, 100.0 - points_each * len(vulnerabilities))
    detail = f"{len(vulnerabilities)} known vulnerabilities in dependencies"
    return DimensionScore("security", score, detail, tuple(vulnerabilities))


def grade(dimensions: list[DimensionScore], settings: GateSettings) -> GradeReport:
    """Weight the measured dimensions, apply the coverage floor and the minimum score."""
    measured = [d for d in dimensions if d.score is not None]
    total_weight = sum(settings.weights[d.name] for d in measured)
    weights = {
        d.name: (100.0 * settings.weights[d.name] / total_weight if d.score is not None else 0.0)
        for d in dimensions
    }
    score = sum(weights[d.name] * (d.score or 0.0) for d in measured) / 100.0 if measured else 0.0
    reasons: list[str] = []
    if not measured:
        reasons.append("no dimension could be measured")
    coverage = next((d for d in dimensions if d.name == "coverage"), None)
    if coverage is None or coverage.score is None:
        reasons.append("domain coverage was not measured; the coverage floor cannot be checked")
    elif coverage.problems:
        reasons.extend(coverage.problems)
    if score < settings.min_score:
        reasons.append(f"grade {score:.1f} is below the minimum {settings.min_score:.0f}")
    return GradeReport(
        dimensions=dimensions,
        weights=weights,
        score=score,
        letter=letter_for(score, settings.letters),
        passed=not reasons,
        reasons=reasons,
    )


def render(report: GradeReport, settings: GateSettings) -> str:
    """The one-screen text report printed by ``make check``."""
    lines = ["Code quality grade", "=" * 72]
    lines.append(f"{'dimension':<14}{'weight':>8}{'score':>8}  based on")
    for d in report.dimensions:
        score = f"{d.score:6.1f}" if d.score is not None else "   n/m"
        weight = f"{settings.weights[d.name]:.0f}%"
        if d.score is None or abs(report.weights[d.name] - settings.weights[d.name]) > 0.05:
            weight += f"→{report.weights[d.name]:.0f}%"
        lines.append(f"{d.name:<14}{weight:>8}{score:>8}  {d.detail}")
        lines.extend(f"{'':<32}- {p}" for p in d.problems[:5])
    lines.append("-" * 72)
    lines.append(
        f"grade {report.score:.1f}/100 ({report.letter}); minimum {settings.min_score:.0f}, "
        f"coverage floor {settings.coverage_floor:.0f}%"
    )
    if any(d.score is None for d in report.dimensions):
        lines.append("n/m = not measured; its weight is spread over the measured dimensions")
    lines.append("PASS" if report.passed else "FAIL: " + "; ".join(report.reasons))
    return "\n".join(lines)
