"""The code quality gate grades measurements with the seed's weights and enforces the coverage floor."""

import json
from dataclasses import replace

import pytest

from tools.quality_gate.grading import (
    GateConfigError,
    complexity_score,
    coverage_score,
    documentation_score,
    grade,
    load_gate_settings,
    render,
    security_score,
)
from tools.quality_gate.measure import (
    function_complexities,
    measure_coverage,
    measure_security,
    public_definitions,
)


@pytest.fixture
def settings():
    return load_gate_settings()


def healthy(settings, coverage_percent=90.0):
    return [
        complexity_score([1, 3, 5, 8], settings.max_function_complexity),
        coverage_score(int(coverage_percent * 10), 1000, settings.coverage_floor),
        documentation_score(9, 10, True, settings.readme_share),
        security_score([], settings.points_per_vulnerability),
    ]


def test_release_settings_hold_the_seed_weights(settings):
    assert settings.weights == {
        "complexity": 25.0,
        "coverage": 35.0,
        "documentation": 15.0,
        "security": 25.0,
    }


def test_a_healthy_code_base_passes_with_its_weighted_grade(settings):
    report = grade(healthy(settings), settings)
    documentation = 0.85 * 90 + 15
    expected = (25 * 100 + 35 * 90 + 15 * documentation + 25 * 100) / 100
    assert report.passed
    assert report.score == pytest.approx(expected)
    assert report.letter == "A"


def test_lowering_coverage_below_the_floor_fails_the_gate_even_with_a_good_grade(settings):
    above = grade(healthy(settings, coverage_percent=settings.coverage_floor + 1), settings)
    below = grade(healthy(settings, coverage_percent=settings.coverage_floor - 1), settings)
    assert above.passed
    assert below.score >= settings.min_score
    assert not below.passed
    assert any("below the floor" in r for r in below.reasons)


def test_a_grade_below_the_minimum_fails(settings):
    strict = replace(settings, min_score=99.0)
    report = grade(healthy(settings), strict)
    assert not report.passed
    assert "below the minimum" in report.reasons[-1]


def test_vulnerabilities_lower_the_security_score():
    score = security_score(["a: X", "b: Y"], 25)
    assert score.score == 50
    assert score.problems == ("a: X", "b: Y")


def test_an_unmeasured_dimension_is_reported_and_its_weight_spread(settings):
    dims = healthy(settings)
    dims[3] = security_score(None, 25, "no network")
    report = grade(dims, settings)
    assert report.weights["security"] == 0
    assert sum(report.weights.values()) == pytest.approx(100)
    text = render(report, settings)
    assert "not measured: no network" in text
    assert "n/m" in text


def test_weights_must_sum_to_100(tmp_path):
    bad = tmp_path / "release.yaml"
    bad.write_text(
        "quality_gate:\n  weights: {complexity: 25, coverage: 35, documentation: 15, security: 30}\n"
        "  min_score: 75\n  coverage_floor: 60\n  max_function_complexity: 10\n"
        "  points_per_vulnerability: 25\n  readme_share: 0.15\n  package: p\n"
        "  letters: {A: 90}\n"
    )
    with pytest.raises(GateConfigError, match="sum to 100"):
        load_gate_settings(bad)


def test_complexity_counts_functions_over_the_limit():
    score = complexity_score([1, 2, 15, 30], 12)
    assert score.score == 50
    assert "2 of 4" in score.detail and "worst 30" in score.detail


def test_complexity_is_measured_with_ruff_mccabe(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "def simple():\n    return 1\n\n\n"
        "def branchy(x):\n    if x:\n        return 1\n    elif x > 2:\n        return 2\n    return 3\n"
    )
    assert sorted(function_complexities(tmp_path, [source])) == [1, 3]


def test_docstring_coverage_counts_public_functions_and_classes():
    source = (
        'def documented():\n    """Yes."""\n\n\ndef bare():\n    pass\n\n\n'
        "def _private():\n    pass\n\n\nclass Thing:\n"
        '    """A thing."""\n\n    def method(self):\n        pass\n'
    )
    assert public_definitions(source) == (2, 4)


def test_coverage_reads_domain_files_from_coverage_json(tmp_path, settings):
    root = tmp_path
    (root / settings.package / "defs").mkdir(parents=True)
    (root / settings.package / "logic.py").write_text("x = 1\n")
    (root / settings.package / "defs" / "wiring.py").write_text("y = 1\n")
    report = root / "coverage.json"
    report.write_text(
        json.dumps(
            {
                "files": {
                    f"{settings.package}/logic.py": {
                        "summary": {"covered_lines": 30, "num_statements": 100}
                    },
                    f"{settings.package}/defs/wiring.py": {
                        "summary": {"covered_lines": 0, "num_statements": 500}
                    },
                }
            }
        )
    )
    wiring_excluded = replace(settings, domain_exclude=(f"{settings.package}/defs/",))
    score = measure_coverage(report, root, wiring_excluded)
    assert score.score == 30
    assert score.problems  # 30 % is below the floor
    assert grade([score], wiring_excluded).passed is False


def test_a_pip_audit_report_that_audited_nothing_is_not_measured(tmp_path, settings):
    report = tmp_path / "audit.json"
    report.write_text(json.dumps({"dependencies": [{"name": "a", "skip_reason": "not found"}]}))
    assert measure_security(report, settings).score is None
    report.write_text(
        json.dumps(
            {
                "dependencies": [
                    {
                        "name": "a",
                        "version": "1",
                        "vulns": [{"id": "PYSEC-1", "fix_versions": ["2"]}],
                    },
                    {"name": "b", "version": "1", "vulns": []},
                ]
            }
        )
    )
    measured = measure_security(report, settings)
    assert measured.score == 100 - settings.points_per_vulnerability
    assert "PYSEC-1" in measured.problems[0]
    assert measure_security(tmp_path / "missing.json", settings).score is None
