"""Canary comparison: candidate and champion scores on the same windows (seed 001 criteria).

Four measurements, each judged by a rule from the ``canary.criteria`` policy:

* ``mean_abs_score_diff`` — mean |candidate − champion| over the windows both scored;
* ``contamination_rate_change`` — candidate flag rate − champion flag rate on those windows;
* ``top_k_overlap`` — share of the champion's top-K devices (by highest score) that are also in
  the candidate's top K;
* ``score_kl_divergence`` — KL(candidate ‖ champion) of the score histograms.

Canary scores never become alerts: this module only compares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from refrig_assets.lifecycle.gates import CANARY, GateResult, judge
from refrig_assets.scoring.summary import score_counts

KEY = ["device_id", "window_start"]
CRITERIA = (
    "mean_abs_score_diff",
    "contamination_rate_change",
    "top_k_overlap",
    "score_kl_divergence",
)


def score_histogram(scores: np.ndarray, bins: int) -> np.ndarray:
    """Share of scores in each of ``bins`` equal bins over [0, 1]."""
    return _shares(score_counts(scores, bins))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    if total == 0:
        raise ValueError("cannot build a histogram of no scores")
    return counts / total


def kl_divergence(current: np.ndarray, reference: np.ndarray, bins: int, epsilon: float) -> float:
    """KL(current ‖ reference) of two score samples; empty bins are floored at ``epsilon``."""
    return histogram_kl(score_counts(current, bins), score_counts(reference, bins), epsilon)


def histogram_kl(current: np.ndarray, reference: np.ndarray, epsilon: float) -> float:
    """KL(current ‖ reference) of two histograms of counts (:func:`score_counts`)."""
    p = np.maximum(_shares(current), epsilon)
    q = np.maximum(_shares(reference), epsilon)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def top_k(scores: pd.DataFrame, k: int) -> list[str]:
    """The ``k`` devices with the highest score (ties broken by device id, so it is stable)."""
    best = scores.groupby("device_id")["anomaly_score"].max().reset_index()
    best = best.sort_values(["anomaly_score", "device_id"], ascending=[False, True])
    return best["device_id"].head(k).tolist()


def top_k_size(devices: int, settings: dict[str, Any]) -> int:
    """K for a fleet of ``devices``: ``top_k``, capped at a share of the devices (at least 1)."""
    share = settings.get("top_k_max_share_of_devices")
    k = int(settings["top_k"])
    if share is not None:
        k = min(k, max(1, math.floor(devices * float(share))))
    return max(1, min(k, devices))


@dataclass
class CanaryResult:
    """Joined scores and the four criteria."""

    joined: pd.DataFrame
    metrics: dict[str, float]
    gates: list[GateResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)


def compare_scores(
    candidate: pd.DataFrame, champion: pd.DataFrame, settings: dict[str, Any]
) -> CanaryResult:
    """Judge ``candidate`` against ``champion`` (both in the model_scores shape) on the windows
    both scored. ``settings`` is the ``canary`` section of the policy."""
    cols = [*KEY, "anomaly_score", "anomaly_flag"]
    joined = candidate[cols].merge(champion[cols], on=KEY, suffixes=("_candidate", "_champion"))
    n = len(joined)
    devices = int(joined["device_id"].nunique()) if n else 0
    metrics: dict[str, float] = {"windows": float(n), "devices": float(devices)}
    min_windows = int(settings["min_windows"])
    criteria = settings["criteria"]
    unknown = set(criteria) - set(CRITERIA)
    if unknown:
        raise ValueError(f"canary.criteria: unknown criterion {sorted(unknown)}")
    if n < min_windows:
        gates = [
            GateResult(
                c,
                CANARY,
                False,
                None,
                "n/a",
                None,
                f"{c}: only {n} windows scored by both versions (need {min_windows})",
            )
            for c in CRITERIA
        ]
        return CanaryResult(joined, metrics, gates)
    cand, champ = joined["anomaly_score_candidate"], joined["anomaly_score_champion"]
    k = top_k_size(devices, settings)
    cand_top = top_k(joined.rename(columns={"anomaly_score_candidate": "anomaly_score"}), k)
    champ_top = top_k(joined.rename(columns={"anomaly_score_champion": "anomaly_score"}), k)
    flagged_cand = int(joined["anomaly_flag_candidate"].astype(bool).sum())
    flagged_champ = int(joined["anomaly_flag_champion"].astype(bool).sum())
    metrics |= {
        "mean_abs_score_diff": float(np.mean(np.abs(cand - champ))),
        # From counts on the same windows, so 2 more flags in 100 windows is exactly 0.02.
        "contamination_rate_change": (flagged_cand - flagged_champ) / n,
        "top_k_overlap": len(set(cand_top) & set(champ_top)) / k,
        "score_kl_divergence": kl_divergence(
            cand.to_numpy(),
            champ.to_numpy(),
            int(settings["histogram_bins"]),
            float(settings["kl_epsilon"]),
        ),
        "top_k": float(k),
        "candidate_flag_rate": flagged_cand / n,
        "champion_flag_rate": flagged_champ / n,
        "candidate_score_mean": float(cand.mean()),
        "champion_score_mean": float(champ.mean()),
    }
    gates = [judge(c, CANARY, metrics[c], criteria.get(c)) for c in CRITERIA]
    return CanaryResult(joined, metrics, gates)


def canary_markdown(result: CanaryResult, bins: int = 10) -> str:
    """The criteria and a side-by-side score histogram as a Markdown table."""
    lines = ["| criterion | value | rule | result |", "|---|---|---|---|"]
    for g in result.gates:
        value = "n/a" if g.value is None else f"{g.value:.4f}"
        lines.append(f"| {g.name} | {value} | {g.rule} | {'pass' if g.passed else '**FAIL**'} |")
    if len(result.joined):
        edges = np.linspace(0, 1, bins + 1)
        cand = score_histogram(result.joined["anomaly_score_candidate"].to_numpy(), bins)
        champ = score_histogram(result.joined["anomaly_score_champion"].to_numpy(), bins)
        lines += ["", "| score | champion | candidate |", "|---|---|---|"]
        for lo, hi, a, b in zip(edges[:-1], edges[1:], champ, cand, strict=True):
            lines.append(f"| {lo:.1f}–{hi:.1f} | {a:.1%} | {b:.1%} |")
    return "\n".join(lines)


def canary_plot(result: CanaryResult, path: Path, title: str) -> Path | None:
    """Score histograms of both versions and candidate-vs-champion scatter as a PNG (None when
    matplotlib is not installed or there is nothing to plot)."""
    if result.joined.empty:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    j = result.joined
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    bins = np.linspace(0, 1, 21)
    left.hist(j["anomaly_score_champion"], bins=bins, alpha=0.6, label="champion")
    left.hist(j["anomaly_score_candidate"], bins=bins, alpha=0.6, label="candidate")
    left.set_yscale("log")
    left.set_xlabel("anomaly score")
    left.set_ylabel("windows")
    left.legend()
    right.scatter(j["anomaly_score_champion"], j["anomaly_score_candidate"], s=4, alpha=0.4)
    right.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    right.set_xlabel("champion score")
    right.set_ylabel("candidate score")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
