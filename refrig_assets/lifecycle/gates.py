"""Promotion gates: named comparisons of a measured value with a threshold from the policy file.

A rule is one comparison word and a threshold (``{below: 0.05}``); see ``config/lifecycle.yaml``.
Every gate result says what was measured, the rule, and by how much it passed or failed, so a
blocked promotion explains itself.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# word -> (passes(value, threshold), human form)
COMPARISONS = {
    "below": (lambda v, t: v < t, "<"),
    "at_most": (lambda v, t: v <= t, "<="),
    "within": (lambda v, t: abs(v) <= t, "|x| <="),
    "at_least": (lambda v, t: v >= t, ">="),
    "above": (lambda v, t: v > t, ">"),
}
# Measured values are rounded before comparison so a value that is on the edge in decimal
# (0.8 overlap = 80 of 100 devices) is not pushed across it by binary floating point.
DECIMALS = 12

CANARY = "canary"
ABSOLUTE = "absolute"
VS_CHAMPION = "vs_champion"


@dataclass(frozen=True)
class GateResult:
    """One gate: what was measured, the rule applied, and whether it passed."""

    name: str
    kind: str  # canary | absolute | vs_champion
    passed: bool
    value: float | None
    rule: str  # e.g. "< 0.05"
    margin: float | None  # distance to the threshold; negative when failed
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> GateResult:
        return GateResult(**raw)


def parse_rule(rule: dict[str, Any] | None, where: str) -> tuple[str, float] | None:
    """``{below: 0.05}`` -> ("below", 0.05); None when the gate is switched off."""
    if rule is None:
        return None
    if not isinstance(rule, dict) or len(rule) != 1:
        raise ValueError(f"{where}: a rule is one of {sorted(COMPARISONS)} with a threshold")
    ((word, threshold),) = rule.items()
    if word not in COMPARISONS:
        raise ValueError(f"{where}: unknown comparison {word!r} (use {sorted(COMPARISONS)})")
    return word, float(threshold)


def judge(
    name: str, kind: str, value: float | None, rule: dict[str, Any] | None, unit: str = ""
) -> GateResult:
    """Apply one rule to a measured value. A missing value (None/NaN) fails: unmeasured is not
    safe. A rule of None passes as 'not applied'."""
    parsed = parse_rule(rule, name)
    if parsed is None:
        return GateResult(name, kind, True, value, "off", None, f"{name}: not applied")
    word, threshold = parsed
    passes, symbol = COMPARISONS[word]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return GateResult(
            name, kind, False, None, f"{symbol} {threshold:g}", None, f"{name}: not measurable"
        )
    v = round(float(value), DECIMALS)
    passed = bool(passes(v, threshold))
    if word in ("below", "at_most"):
        margin = threshold - v
    elif word == "within":
        margin = threshold - abs(v)
    else:
        margin = v - threshold
    margin = round(margin, DECIMALS)
    verdict = "ok" if passed else f"FAILED by {abs(margin):.4g}{unit}"
    return GateResult(
        name,
        kind,
        passed,
        float(value),
        f"{symbol} {threshold:g}",
        margin if passed else -abs(margin),
        f"{name} = {float(value):.4g}{unit} (must be {symbol} {threshold:g}{unit}): {verdict}",
    )


@dataclass
class GateReport:
    """Every gate for one candidate against one champion."""

    model_id: str
    candidate: str
    champion: str | None
    gates: list[GateResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failed(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def of_kind(self, kind: str) -> list[GateResult]:
        return [g for g in self.gates if g.kind == kind]

    def summary(self) -> str:
        """One line: passed, or which gates failed and by how much."""
        if self.passed:
            return f"all {len(self.gates)} gates passed"
        return "blocked: " + "; ".join(g.detail for g in self.failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "candidate": self.candidate,
            "champion": self.champion,
            "passed": self.passed,
            "gates": [g.to_dict() for g in self.gates],
        }

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> GateReport:
        return GateReport(
            raw["model_id"],
            raw["candidate"],
            raw.get("champion"),
            [GateResult.from_dict(g) for g in raw.get("gates", [])],
        )


def absolute_gates(measured: dict[str, float | None], rules: dict[str, Any]) -> list[GateResult]:
    """(a) The candidate alone against the thresholds of its ``promotion.absolute`` policy.

    ``measured`` holds training_windows, flag_rate, invalid_score_share and, when labels exist,
    recall, precision and false_alerts_per_1000_device_days. Backtest gates whose measurement is
    absent (no labels) are reported as not applied.
    """
    sources = {
        "min_training_windows": "training_windows",
        "max_flag_rate": "flag_rate",
        "invalid_score_share": "invalid_score_share",
        "min_recall": "recall",
        "min_precision": "precision",
        "max_false_alerts_per_1000_device_days": "false_alerts_per_1000_device_days",
    }
    unknown = set(rules) - set(sources)
    if unknown:
        raise ValueError(f"promotion.absolute: unknown gate(s) {sorted(unknown)}")
    results = []
    for gate, source in sources.items():
        rule = rules.get(gate)
        if rule is not None and source not in measured:
            results.append(
                GateResult(
                    gate, ABSOLUTE, True, None, "n/a", None, f"{gate}: no labels, not applied"
                )
            )
            continue
        results.append(judge(gate, ABSOLUTE, measured.get(source), rule))
    return results


def champion_gates(
    candidate: dict[str, float], champion: dict[str, float], tolerances: dict[str, Any]
) -> list[GateResult]:
    """(b) The candidate's backtest against the champion's on the same features and labels:
    recall and precision may be worse by at most the tolerance. Without labels, or when the
    champion's value is undefined (no incidents / no alerts), the gate is not applied."""
    results = []
    for metric in ("recall", "precision"):
        tol = tolerances.get(f"{metric}_tolerance")
        name = f"{metric}_vs_champion"
        champ, cand = champion.get(metric), candidate.get(metric)
        if tol is None or champ is None or math.isnan(champ):
            why = "no labels" if champ is None else "champion's value undefined"
            results.append(
                GateResult(
                    name, VS_CHAMPION, True, None, "n/a", None, f"{name}: {why}, not applied"
                )
            )
            continue
        cand_value = 0.0 if cand is None or math.isnan(cand) else cand
        result = judge(name, VS_CHAMPION, cand_value - champ, {"at_least": -float(tol)})
        results.append(
            GateResult(
                name,
                VS_CHAMPION,
                result.passed,
                result.value,
                result.rule,
                result.margin,
                f"{metric} {cand_value:.3f} vs champion {champ:.3f} "
                f"(may drop by at most {float(tol):g}): "
                + ("ok" if result.passed else f"FAILED by {abs(result.margin or 0):.4g}"),
            )
        )
    return results
