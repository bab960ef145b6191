"""Active Diffusion Subsampling: at scheduled steps of the reverse process, score every
unacquired k-space column from the particles' disagreement and acquire the best one.

With ŷ_i = F(x̂₀ᵢ) the predicted k-space of particle i (B particles) and
d_ij(l) = Σ over column l of |ŷ_i − ŷ_j|², the kernels are

- ``ads`` (the ADS paper): H(l) = Σ_i log Σ_j exp(d_ij(l) / (2σ²));
- ``gmm`` (entropy of the equal-weight Gaussian mixture N(ŷ_j, σ²I), pairwise estimate):
  H(l) = −(1/B) Σ_i log (1/B) Σ_j exp(−d_ij(l) / (2σ²));
- ``variance``: Σ_i Σ over column l of |ŷ_i − mean_j ŷ_j|².

Acquired columns score −inf; the argmax is acquired and the measurement updated in place.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from polydiff.diffusion import MeasurementGuidance, SamplerHook, StepState


def pairwise_column_distances(yhat: Tensor) -> Tensor:
    """d_ij(l) = Σ_{all dims but batch and column} |ŷ_i − ŷ_j|²: (B, ..., W) -> (B, B, W)."""
    flat = yhat.reshape(yhat.shape[0], -1, yhat.shape[-1])  # (B, R, W)
    diff = flat[:, None] - flat[None, :]  # (B, B, R, W)
    return diff.abs().square().sum(2)


def ads_score(yhat: Tensor, sigma: float) -> Tensor:
    """ADS kernel H(l) = Σ_i logsumexp_j d_ij(l)/(2σ²): (B, ..., W) -> (W,)."""
    return torch.logsumexp(pairwise_column_distances(yhat) / (2 * sigma**2), dim=1).sum(0)


def gmm_score(yhat: Tensor, sigma: float) -> Tensor:
    """Pairwise Gaussian-mixture entropy estimate (up to a constant): (B, ..., W) -> (W,)."""
    b = yhat.shape[0]
    lse = torch.logsumexp(-pairwise_column_distances(yhat) / (2 * sigma**2), dim=1)
    return -(lse - math.log(b)).mean(0)


def variance_score(yhat: Tensor, sigma: float) -> Tensor:
    """Total variance of the particles' k-space per column: (B, ..., W) -> (W,)."""
    flat = yhat.reshape(yhat.shape[0], -1, yhat.shape[-1])
    return (flat - flat.mean(0, keepdim=True)).abs().square().sum((0, 1))


# The one table of acquisition kernels.
KERNELS: dict[str, Callable[[Tensor, float], Tensor]] = {
    "ads": ads_score, "gmm": gmm_score, "variance": variance_score}


def acquisition_steps(num_steps: int, count: int, window: tuple[float, float]) -> list[int]:
    """Step indices (one per acquisition, non-decreasing) spread evenly over ``window``, a
    (start, stop) fraction of the reverse process."""
    start, stop = window
    if not 0 <= start < stop <= 1:
        raise ValueError(f"acquisition window must satisfy 0 <= start < stop <= 1, got {window}")
    span = (stop - start) * num_steps
    return [min(num_steps - 1, int(start * num_steps + j * span / count)) for j in range(count)]


class ActiveAcquisition(SamplerHook):
    """Acquire ``count`` columns during sampling, updating ``guidance``'s operator and y.

    ``predict`` maps x̂₀ (B, 2, H, W) to predicted full k-space (B, ..., W) (the operator's
    forward without the mask); ``scanner(cols)`` returns the measured columns ``cols`` (K,)
    int64, shaped like ``y[..., cols]``. ``guidance.operator.mask`` (W,) bool and
    ``guidance.y`` are changed in place, so a ``DataConsistency`` hook sharing them sees
    every acquisition.

    Inside the reverse loop everything stays on the sample's device: the columns are chosen
    by ``topk`` and written by tensor indexing, never read back to the host; ``acquired``
    reads them once, after sampling.
    """

    def __init__(self, guidance: MeasurementGuidance, predict: Callable[[Tensor], Tensor],
                 scanner: Callable[[Tensor], Tensor], steps: list[int], kernel: str = "ads",
                 sigma: float = 0.1) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"unknown acquisition kernel {kernel!r} (use {', '.join(KERNELS)})")
        self.guidance, self.predict, self.scanner = guidance, predict, scanner
        self.steps, self.kernel, self.sigma = list(steps), KERNELS[kernel], float(sigma)
        self.due = {s: self.steps.count(s) for s in set(self.steps)}  # step index -> columns
        self.taken: list[Tensor] = []  # (k,) int64 on the device, in acquisition order

    @property
    def mask(self) -> Tensor:
        return self.guidance.operator.mask

    @property
    def acquired(self) -> list[int]:
        """The acquired columns in order (a host copy: call after sampling)."""
        return torch.cat(self.taken).tolist() if self.taken else []

    def after_step(self, state: StepState, x_prev: Tensor) -> Tensor:
        due = self.due.get(state.index, 0)
        if due:
            with torch.no_grad():
                score = self.kernel(self.predict(state.x0.detach()), self.sigma)  # (W,)
                score = score.masked_fill(self.mask.to(score.device), float("-inf"))
                self.take(torch.topk(score, due).indices)
        return x_prev

    def take(self, cols: Tensor) -> None:
        """Acquire the columns ``cols`` (k,) int64: set the mask, copy their data into y."""
        cols = cols.to(self.mask.device)
        self.mask.index_fill_(0, cols, True)  # a scalar fill: nothing crosses to the host
        self.guidance.y[..., cols] = self.scanner(cols).to(self.guidance.y)
        self.taken.append(cols)

    def acquire(self, col: int) -> None:
        """Take column ``col`` by hand (host side): refuses a column already acquired."""
        if bool(self.mask[col]):
            raise RuntimeError(f"column {col} was already acquired")
        self.take(torch.tensor([col], device=self.mask.device))
