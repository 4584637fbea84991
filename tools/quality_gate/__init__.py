"""Code quality gate: measure complexity, coverage, documentation and security, grade, report."""

from tools.quality_gate.grading import (
    DimensionScore,
    GateSettings,
    GradeReport,
    grade,
    load_gate_settings,
)

__all__ = ["DimensionScore", "GateSettings", "GradeReport", "grade", "load_gate_settings"]
