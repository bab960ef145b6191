"""Image metrics exactly as fastMRI's ``evaluate.py`` defines them, on magnitude volumes.

Volumes are ``(slices, H, W)`` real arrays; the data range of PSNR and SSIM is the maximum of
the ground-truth *volume*, and SSIM (7x7 uniform window, K1 = 0.01, K2 = 0.03, sample
covariance, borders cropped) is averaged over slices.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter


def nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    """Normalised mean squared error ``||gt - pred||^2 / ||gt||^2``."""
    return float(np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2)


def psnr(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB with data range ``maxval`` (default: ``gt.max()``)."""
    maxval = float(gt.max()) if maxval is None else maxval
    mse = float(np.mean((gt - pred) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(maxval**2 / mse))


def ssim_slice(gt: np.ndarray, pred: np.ndarray, data_range: float, win: int = 7) -> float:
    """Structural similarity of two (H, W) images (Wang et al. 2004, uniform window)."""
    gt, pred = gt.astype(np.float64), pred.astype(np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    cov_norm = win**2 / (win**2 - 1)  # sample covariance
    mx, my = uniform_filter(gt, win), uniform_filter(pred, win)
    vx = cov_norm * (uniform_filter(gt * gt, win) - mx * mx)
    vy = cov_norm * (uniform_filter(pred * pred, win) - my * my)
    vxy = cov_norm * (uniform_filter(gt * pred, win) - mx * my)
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


def ssim(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """Mean over slices of the SSIM of (slices, H, W) volumes, data range = volume maximum."""
    maxval = float(gt.max()) if maxval is None else maxval
    return float(np.mean([ssim_slice(g, p, maxval) for g, p in zip(gt, pred)]))


# The one table of metrics, as fastMRI reports them.
METRICS = {"NMSE": nmse, "PSNR": psnr, "SSIM": ssim}


def evaluate_volume(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Every metric of one (slices, H, W) volume pair."""
    if gt.shape != pred.shape:
        raise ValueError(f"shapes differ: truth {gt.shape}, prediction {pred.shape}")
    return {name: fn(gt, pred) for name, fn in METRICS.items()}
