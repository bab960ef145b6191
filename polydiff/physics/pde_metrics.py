"""Error metrics for predicted PDE trajectories, as PDEBench and PDE-Refiner define them.

All functions take ``pred`` and ``truth`` of shape (N, nt, *space) (space = (nx,) or
(nx, ny)) and reduce over samples N last, after a per-sample quantity:

* MSE: mean squared error over everything.
* nRMSE (PDEBench's ``err_nMSE`` in ``pdebench/models/metrics.py``): at each sample and time,
  RMSE over space / RMS of the truth over space, then averaged over samples and times.
* nRMSE per time: the same before the average over times: (nt,).
* space-time nRMSE: per sample RMSE / RMS(truth) over space and time together, averaged over
  samples (not PDEBench's: a late, large-amplitude time dominates it).
* Pearson correlation per time: per sample over space, averaged: (nt,).
* time until decorrelation (PDE-Refiner): the last time up to which the mean correlation
  stays at or above a threshold (0.8).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Tensor = torch.Tensor


def _check(pred: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != truth.shape or pred.ndim < 3:
        raise ValueError(f"pred {tuple(pred.shape)} and truth {tuple(truth.shape)} must share "
                         "a shape (N, nt, *space)")
    return pred.to(torch.float64), truth.to(torch.float64)


def mse(pred: Tensor, truth: Tensor) -> float:
    """Mean squared error over all entries."""
    pred, truth = _check(pred, truth)
    return float(((pred - truth) ** 2).mean())


def _relative(err: Tensor, ref: Tensor, dims: tuple[int, ...]) -> Tensor:
    return err.pow(2).sum(dims).sqrt() / ref.pow(2).sum(dims).sqrt().clamp_min(1e-30)


def _per_sample_time(pred: Tensor, truth: Tensor) -> Tensor:
    """||pred - truth|| / ||truth|| over space at each sample and time: (N, nt)."""
    pred, truth = _check(pred, truth)
    return _relative(pred - truth, truth, tuple(range(2, pred.ndim)))


def nrmse(pred: Tensor, truth: Tensor) -> float:
    """PDEBench nRMSE: RMSE / RMS(truth) over space per sample and time, averaged over both."""
    return float(_per_sample_time(pred, truth).mean())


def nrmse_per_time(pred: Tensor, truth: Tensor) -> Tensor:
    """PDEBench nRMSE at each time (averaged over samples only): (nt,)."""
    return _per_sample_time(pred, truth).mean(0)


def nrmse_spacetime(pred: Tensor, truth: Tensor) -> float:
    """RMSE / RMS(truth) per sample over space and time together, averaged over samples."""
    pred, truth = _check(pred, truth)
    return float(_relative(pred - truth, truth, tuple(range(1, pred.ndim))).mean())


def correlation_per_time(pred: Tensor, truth: Tensor) -> Tensor:
    """Pearson correlation over space at each time, averaged over samples: (nt,).

    Where a field has no spatial variance the correlation is 1 if the two agree, else 0.
    """
    pred, truth = _check(pred, truth)
    p = pred.flatten(2) - pred.flatten(2).mean(-1, keepdim=True)
    q = truth.flatten(2) - truth.flatten(2).mean(-1, keepdim=True)
    norm = p.norm(dim=-1) * q.norm(dim=-1)
    flat = norm <= 1e-12 * (pred.flatten(2).abs().amax(-1) ** 2 + 1e-300)
    agree = (pred - truth).flatten(2).abs().amax(-1) <= 1e-12
    corr = torch.where(flat, agree.to(torch.float64), (p * q).sum(-1) / norm.clamp_min(1e-300))
    return corr.mean(0)


def time_until_decorrelation(pred: Tensor, truth: Tensor, threshold: float = 0.8,
                             times: Sequence[float] | Tensor | None = None) -> float:
    """PDE-Refiner's metric: the last time t_k with mean correlation >= threshold at t_0..t_k.

    ``times`` (nt,) default to the step indices 0..nt-1. If the correlation is below the
    threshold already at t_0 the answer is t_0; if it never falls below, the last time.
    """
    corr = correlation_per_time(pred, truth)
    times = torch.arange(len(corr), dtype=torch.float64) if times is None else \
        torch.as_tensor(times, dtype=torch.float64)
    if len(times) != len(corr):
        raise ValueError(f"{len(times)} times for {len(corr)} time steps")
    below = (corr < threshold).nonzero()
    if len(below) == 0:
        return float(times[-1])
    return float(times[max(int(below[0]) - 1, 0)])


def evaluate_predictions(pred: Tensor, truth: Tensor,
                         times: Sequence[float] | Tensor | None = None) -> dict:
    """Every metric above as a JSON-ready dict (curves as lists over time)."""
    return {
        "mse": mse(pred, truth),
        "nrmse": nrmse(pred, truth),
        "nrmse_spacetime": nrmse_spacetime(pred, truth),
        "time_until_decorrelation": time_until_decorrelation(pred, truth, 0.8, times),
        "nrmse_per_time": nrmse_per_time(pred, truth).tolist(),
        "correlation_per_time": correlation_per_time(pred, truth).tolist(),
    }
