"""Autoencoder per cohort (torch): reconstruction error of device-relative residuals.

Each device type gets a small fully connected autoencoder that learns how its devices' residuals
(features relative to each device's own baseline, adjusted for the context features; see
:class:`~refrig_assets.detectors.normalise.DeviceResiduals`) move together in normal operation.
A window the network cannot reconstruct is anomalous: the raw score is the root mean square of
the per-feature reconstruction errors (each in units of its typical training error), and those
per-feature errors are the contributors. Training is deterministic: a fixed seed, one thread,
double-precision CPU arithmetic and a seeded shuffle.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import torch
from torch import nn

from refrig_assets.detectors.base import Detector, register_detector
from refrig_assets.detectors.normalise import DeviceResiduals, robust_scale

FLEET = "__fleet__"
# Rows per forward pass when reconstructing: a pass's activations then stay in the CPU's cache
# (one pass over a run of a large fleet costs about 1.5× the CPU). Each row's reconstruction
# is the same whatever the batch it is in.
INFERENCE_BATCH_ROWS = 8192


@contextlib.contextmanager
def deterministic_torch(seed: int):
    """Seeded, single-threaded torch inside the block (thread count restored afterwards).

    On the CPU the operations used here (dense layers, tanh, Adam) are deterministic once the
    thread count is fixed, so ``torch.use_deterministic_algorithms`` (which costs seconds of
    imports) is not needed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def build_network(n_inputs: int, hidden: list[int]) -> nn.Sequential:
    """Symmetric MLP autoencoder: n → hidden... → code → ...hidden → n (tanh between)."""
    sizes = [n_inputs, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.Tanh()]
    back = sizes[::-1]
    for i, (a, b) in enumerate(zip(back[:-1], back[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(back) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers).double()


@register_detector
class AutoencoderDetector(Detector):
    """One autoencoder per cohort (and one for the fleet, for unknown cohorts)."""

    kind = "autoencoder"

    def _inputs(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Residuals with missing values at 0, and the observed mask."""
        r = self.residuals.residuals(frame, self.fitting)
        observed = np.isfinite(r)
        return np.nan_to_num(r, nan=0.0, copy=False), observed  # r is a new array: no copy

    def _train(self, x: np.ndarray, mask: np.ndarray, seed: int) -> nn.Sequential:
        net = build_network(x.shape[1], [int(h) for h in self.config.hyperparameter("hidden")])
        optimiser = torch.optim.Adam(
            net.parameters(), lr=float(self.config.hyperparameter("learning_rate"))
        )
        loss_fn = nn.HuberLoss(
            reduction="none", delta=float(self.config.hyperparameter("huber_delta"))
        )
        clip = float(self.config.hyperparameter("input_clip"))
        xt = torch.from_numpy(np.clip(x, -clip, clip))
        mt = torch.from_numpy(mask.astype(np.float64))
        batch = int(self.config.hyperparameter("batch_size"))
        generator = torch.Generator().manual_seed(seed)
        for _ in range(int(self.config.hyperparameter("epochs"))):
            for idx in torch.randperm(len(xt), generator=generator).split(batch):
                optimiser.zero_grad()
                err = loss_fn(net(xt[idx]), xt[idx]) * mt[idx]
                (err.sum() / mt[idx].sum().clamp(min=1.0)).backward()
                optimiser.step()
        return net.eval()

    def _reconstruct(self, net: nn.Sequential, x: np.ndarray) -> np.ndarray:
        """The network's output for the rows of ``x``, in batches of ``INFERENCE_BATCH_ROWS``."""
        out = np.empty_like(x)
        with torch.inference_mode():
            inputs, outputs = torch.from_numpy(x), torch.from_numpy(out)
            for start in range(0, len(x), INFERENCE_BATCH_ROWS):
                part = slice(start, start + INFERENCE_BATCH_ROWS)
                outputs[part] = net(inputs[part])
        return out

    def fit_raw(self, frame: pd.DataFrame) -> np.ndarray:
        seed = int(self.config.hyperparameter("random_state"))
        self.residuals = DeviceResiduals(
            int(self.config.hyperparameter("min_device_windows")),
            float(self.config.hyperparameter("covariance_shrinkage")),
        ).fit(frame, self.input_columns, len(self.feature_columns))
        x, mask = self._inputs(frame)
        cohorts = frame["cohort"].to_numpy()
        min_rows = int(self.config.hyperparameter("min_cohort_rows"))
        self.networks: dict[str, nn.Sequential] = {}
        self.error_scale: dict[str, np.ndarray] = {}
        with deterministic_torch(seed):
            groups = [(FLEET, np.ones(len(x), dtype=bool))]
            groups += [(c, cohorts == c) for c in sorted(pd.unique(cohorts))]
            for name, rows in groups:
                if rows.sum() < min_rows and name != FLEET:
                    continue
                net = self._train(x[rows], mask[rows], seed)
                err = np.where(mask[rows], x[rows] - self._reconstruct(net, x[rows]), np.nan)
                self.networks[name] = net
                self.error_scale[name] = robust_scale(err, floor=1e-3)
        raw, _, _ = self.raw_scores(frame)
        return raw

    def raw_scores(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        x, mask = self._inputs(frame)
        codes, cohorts = pd.factorize(frame["cohort"].to_numpy())
        # The errors overwrite the inputs: on a day of a large fleet every extra array of
        # rows × features costs more than the arithmetic on it.
        errors = x
        with deterministic_torch(int(self.config.hyperparameter("random_state"))):
            whole = len(cohorts) == 1 and bool((codes == 0).all())  # one cohort, every row
            for code, cohort in enumerate(cohorts):
                name = cohort if cohort in self.networks else FLEET
                rows = None if whole else np.flatnonzero(codes == code)
                part = x if rows is None else x[rows]
                part -= self._reconstruct(self.networks[name], part)
                part /= self.error_scale[name]
                if rows is not None:
                    errors[rows] = part
        # Rows of no cohort (missing) and missing features have no error.
        np.copyto(errors, 0.0, where=~mask | (codes < 0)[:, None])
        observed = np.maximum(mask.sum(axis=1), 1)
        raw = np.sqrt((errors**2).sum(axis=1) / observed)
        template = "reconstructed {value}× its usual error, {direction} the expected value"
        return raw, errors, [template] * len(self.feature_columns)
