"""The Evidently data-drift report (HTML) of current feature windows against a reference.

The report's PSI is the project's (:func:`refrig_assets.monitoring.drift.psi`: reference-quantile
bins, a bin for missing values), registered with Evidently as a stat test, so the figure in the
report and the one in ``feature_drift`` are one PSI, not two with different binnings. A header
names the day, the model versions it serves, the reference (training) hours and the hours
compared.

Evidently takes several seconds to import, so it is imported inside the function. The HTML is
written next to its final path and renamed into place, like every other output.
"""

from __future__ import annotations

import html
import os
import re
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from refrig_assets.monitoring.drift import psi, sample_rows
from refrig_assets.monitoring.settings import DriftSettings

# Evidently hands a stat test each column without its missing values; the project's PSI counts
# them (a bin of their own: a sensor dropout is drift). While a report runs, the columns as
# sampled, missing values included, are here for the stat test to use.
_SAMPLED: ContextVar[dict[str, tuple[pd.Series, pd.Series]] | None] = ContextVar(
    "sampled", default=None
)


@dataclass(frozen=True)
class ReportHeader:
    """What a drift report compares: shown at its top."""

    day: str
    models: tuple[tuple[str, str], ...]  # (model_id, version) served by these inputs
    reference_hours: str
    current_hours: str

    def html(self, settings: DriftSettings) -> str:
        models = ", ".join(f"{m} v{v}" for m, v in self.models)
        rows = [
            ("Day", self.day),
            ("Models (production versions)", models),
            ("Reference: training hours", self.reference_hours),
            ("Current: feature hours compared", self.current_hours),
            (
                "PSI",
                f"the project's: {settings.psi_bins} reference-quantile bins plus a missing-value "
                f"bin; moderate ≥ {settings.psi_moderate:g}, significant > "
                f"{settings.psi_significant:g}",
            ),
        ]
        cells = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
            f"<td>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        return (
            "<section id='refrig-drift-header' style='font-family:sans-serif;margin:1em'>"
            f"<h1>Feature drift {html.escape(self.day)}</h1><table>{cells}</table></section>"
        )


def project_psi_method(settings: DriftSettings) -> str:
    """The name under which the project's PSI (with these bins and epsilon) is registered as
    an Evidently stat test (registered on first use)."""
    from evidently.legacy.calculations.stattests.registry import (
        StatTest,
        get_registered_stattest,
        register_stattest,
    )
    from evidently.legacy.core import ColumnType

    name = f"refrig_psi_{settings.psi_bins}_{settings.psi_epsilon:g}"
    try:
        get_registered_stattest(name, ColumnType.Numerical)
        return name
    except Exception:  # noqa: BLE001 - Evidently raises a plain error for an unknown name
        pass

    def project_psi(reference_data, current_data, feature_type, threshold):
        reference_data, current_data = (_SAMPLED.get() or {}).get(
            str(reference_data.name), (reference_data, current_data)
        )
        value = psi(reference_data, current_data, settings.psi_bins, settings.psi_epsilon)
        return value, value >= threshold

    register_stattest(
        StatTest(
            name=name,
            display_name=f"PSI ({settings.psi_bins} reference-quantile bins)",
            allowed_feature_types=[ColumnType.Numerical],
            default_threshold=settings.psi_moderate,
        ),
        project_psi,
    )
    return name


def write_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    path: Path,
    settings: DriftSettings,
    header: ReportHeader | None = None,
) -> dict[str, float]:
    """Write Evidently's drift report to ``path`` with the project's PSI and ``header`` on top;
    returns the report's PSI per feature.

    Both sides are sampled to ``settings.report_max_rows`` rows, so on larger inputs the
    report's figures may differ slightly from ``feature_drift``'s (sampled to
    ``current_max_rows``/``reference_max_rows``); the binning is the same.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    # Evidently refuses a column with no value on either side (a sensor the fleet lacks, an
    # hour without readings); such a column has no drift to report.
    columns = [c for c in features if current[c].notna().any() and reference[c].notna().any()]
    if not columns:
        top = header.html(settings) if header else ""
        _write_atomically(
            Path(path),
            f"<html><body>{top}<p>No feature has values in both the reference and the current "
            "windows: nothing to compare.</p></body></html>",
        )
        return {}
    definition = DataDefinition(numerical_columns=columns)

    def sampled(frame: pd.DataFrame) -> pd.DataFrame:
        return sample_rows(frame[columns], settings.report_max_rows, settings.sample_seed).astype(
            "float64"
        )

    report = Report(
        [DataDriftPreset(method=project_psi_method(settings), threshold=settings.psi_moderate)],
        include_tests=True,
    )
    ref_sample, cur_sample = sampled(reference), sampled(current)
    token = _SAMPLED.set({c: (ref_sample[c], cur_sample[c]) for c in columns})
    try:
        snapshot = report.run(
            current_data=Dataset.from_pandas(cur_sample, data_definition=definition),
            reference_data=Dataset.from_pandas(ref_sample, data_definition=definition),
        )
    finally:
        _SAMPLED.reset(token)
    page = snapshot.get_html_str(as_iframe=False)
    if header is not None:
        page = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + header.html(settings), page, count=1)
    _write_atomically(Path(path), page)
    return _psi_by_column(snapshot.dict()["metrics"])


def _write_atomically(path: Path, html: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.{uuid.uuid4().hex}.tmp.html"
    try:
        tmp.write_text(html)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _psi_by_column(metrics: list[dict]) -> dict[str, float]:
    out = {}
    for metric in metrics:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift") and "column" in config:
            out[str(config["column"])] = float(metric["value"])
    return out
