"""The Evidently data-drift report (HTML) of current feature windows against a reference.

Evidently takes several seconds to import, so it is imported inside the function. The HTML is
written next to its final path and renamed into place, like every other output.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from refrig_assets.monitoring.drift import sample_rows
from refrig_assets.monitoring.settings import DriftSettings


def write_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    path: Path,
    settings: DriftSettings,
) -> dict[str, float]:
    """Write Evidently's PSI drift report to ``path``; returns Evidently's PSI per feature.

    Both sides are sampled to ``settings.report_max_rows`` rows: the report is for reading, the
    numbers the project acts on come from :mod:`refrig_assets.monitoring.drift`.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    # Evidently refuses a column with no value on either side (a sensor the fleet lacks, an
    # hour without readings); such a column has no drift to report.
    columns = [c for c in features if current[c].notna().any() and reference[c].notna().any()]
    if not columns:
        _write_atomically(
            Path(path),
            "<html><body><p>No feature has values in both the reference and the current "
            "windows: nothing to compare.</p></body></html>",
        )
        return {}
    definition = DataDefinition(numerical_columns=columns)

    def dataset(frame: pd.DataFrame):
        sample = sample_rows(frame[columns], settings.report_max_rows, settings.sample_seed)
        return Dataset.from_pandas(sample.astype("float64"), data_definition=definition)

    report = Report(
        [DataDriftPreset(method="psi", threshold=settings.psi_moderate)], include_tests=True
    )
    snapshot = report.run(current_data=dataset(current), reference_data=dataset(reference))
    _write_atomically(Path(path), snapshot.get_html_str(as_iframe=False))
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
