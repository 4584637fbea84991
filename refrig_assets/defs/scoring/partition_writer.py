"""Writing a score partition piece by piece: check each piece, append it, rename at the end.

Pieces (runs of hours, see :mod:`refrig_assets.scoring.runs`) are validated against the
model_scores contract (:func:`~refrig_assets.scoring.conformance.checked_table`) and appended
to a temporary file of the partition (:meth:`ParquetStore.writer`); only counters and
histograms of them are kept (:class:`~refrig_assets.scoring.summary.ScoreSummary`). The
partition replaces the previous one only when every piece passed and the score distribution
does not hold the model: bad scores are never written, and a crash leaves the last good
partition.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from refrig_assets.core.contracts import load_contract
from refrig_assets.defs.scoring.holds import distribution_hold, reference_written
from refrig_assets.defs.shared.contract_checks import contract_failures_result
from refrig_assets.defs.shared.resources import RefrigResource
from refrig_assets.lifecycle.policy import load_policy
from refrig_assets.scoring.conformance import FAILURE_COLUMNS, checked_table
from refrig_assets.scoring.summary import ScoreSummary

# A piece's keys must come after the previous pieces' (else a key could repeat across pieces,
# which the per-piece contract check cannot see): either a new run of hours (every window start
# after the earlier pieces') or the next device shard of the same run (every device id after the
# run's earlier pieces', every window start after the earlier runs').
ORDER_CHECK = "window_start after the previous runs"


@dataclass
class WrittenScores:
    """What writing one score partition did."""

    check: dg.AssetCheckResult
    summary: ScoreSummary
    windows_in: int
    path: Path | None
    hold: dg.MaterializeResult | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        """The score asset's metadata about the rows (from counters, not from the rows)."""
        s = self.summary
        return {
            "windows_in": self.windows_in,
            "windows_scored": s.windows,
            "flag_rate": s.flag_rate,
            "score_p50": s.quantile(0.5),
            "score_p99": s.quantile(0.99),
            "flagged_devices": s.flagged_devices,
            "written": self.path is not None,
            "path": str(self.path),
        }


def write_score_partition(
    context: dg.AssetExecutionContext,
    refrig: RefrigResource,
    asset: str,
    model_id: str,
    version: str,
    pieces: Iterable[tuple[pd.DataFrame, pd.DataFrame]],
    since: pd.Timestamp,
) -> WrittenScores:
    """Check and append each (input window starts, scores) piece to ``asset``'s partition.

    A piece failing the contract stops writing (nothing is renamed, the last good partition
    stays); the remaining pieces are still scored and checked, so the check reports every
    failure. Failure row numbers count from the partition's first row."""
    contract = load_contract("model_scores")
    bins = int(load_policy(refrig.settings.models_dir)["canary"]["histogram_bins"])
    summary = ScoreSummary(bins)
    failures: list[pd.DataFrame] = []
    windows_in = rows = 0
    order = _PieceOrder()
    hold = None
    with refrig.store.writer(asset, context.partition_key) as out:
        for starts, scores in pieces:
            windows_in += int((starts["window_start"] >= since).sum())
            scores.index = pd.RangeIndex(rows, rows + len(scores))
            rows += len(scores)
            # The conforming piece comes back as the Arrow table written (converted once).
            table, bad = checked_table(contract, scores)
            if len(scores):
                early = order.early(scores)
                if early.any():
                    bad = pd.concat([bad, _order_failures(scores, early)], ignore_index=True)
            summary.add(scores)
            if len(bad):
                failures.append(bad)
                out.discard()
            elif len(scores) and not failures:
                out.write(scores if table is None else table)
            del starts, scores, table  # not held while the next piece is scored
        if not failures:
            if out.rows == 0:
                out.write(contract.empty_frame())
            hold = distribution_hold(context, refrig, asset, model_id, version, summary)
            if hold is not None:
                out.discard()  # scores diverged from this version's previous ones: model paused
    written = out.final if not failures and hold is None else None
    if written is not None:  # the distribution hold of the next hours compares with it
        reference_written(context, refrig, asset)
    check = contract_failures_result(
        asset,
        contract,
        rows,
        pd.concat(failures, ignore_index=True)
        if failures
        else pd.DataFrame(columns=FAILURE_COLUMNS),
    )
    return WrittenScores(check, summary, windows_in, written, hold)


class _PieceOrder:
    """Whether each piece's keys come after the earlier pieces' (see ``ORDER_CHECK``)."""

    def __init__(self) -> None:
        self.latest = None  # newest window start of all pieces so far
        self.run_floor = None  # newest window start before the current run
        self.run_device = None  # largest device id of the current run

    def early(self, scores: pd.DataFrame) -> pd.Series:
        """Rows of ``scores`` whose key could repeat an earlier piece's; then counts it in."""
        starts, devices = scores["window_start"], scores["device_id"].astype(str)
        if self.latest is None or starts.min() > self.latest:  # a new run
            early = pd.Series(False, index=scores.index)
            self.run_floor, self.run_device = self.latest, None
        else:  # the next device shard of the current run
            early = devices <= self.run_device if self.run_device is not None else starts.isna()
            if self.run_floor is not None:
                early |= starts <= self.run_floor
        newest, last = starts.max(), devices.max()
        self.latest = newest if self.latest is None else max(self.latest, newest)
        self.run_device = last if self.run_device is None else max(self.run_device, last)
        return early


def _order_failures(scores: pd.DataFrame, early: pd.Series) -> pd.DataFrame:
    """Failure rows (pandera's layout) for windows that do not come after earlier pieces."""
    rows = scores.loc[early, "window_start"]
    return pd.DataFrame(
        {
            "schema_context": "Column",
            "column": "window_start",
            "check": ORDER_CHECK,
            "index": rows.index,
            "failure_case": rows.astype(str).to_numpy(),
        }
    )
