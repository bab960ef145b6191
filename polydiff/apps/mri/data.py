"""The model's data space: complex images as (real, imag) channels, scaled by a statistic that
every acquisition has (the centre k-space column, always sampled), so training and
reconstruction normalise the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from polydiff.medical.fastmri_io import read_kspace
from polydiff.medical.kspace import complex_to_channels, crop_kspace, ifft2c
from polydiff.medical.phantoms import phantom_volume
from polydiff.runtime import UserError


def reference_scale(kspace: Tensor) -> Tensor:
    """RMS of the centre column k[..., :, W//2] (always acquired): (..., H, W) -> (...)."""
    col = kspace[..., :, kspace.shape[-1] // 2]
    return col.abs().square().mean(-1).sqrt().clamp_min(1e-12)


def to_model(kspace: Tensor, factor: float) -> tuple[Tensor, Tensor]:
    """Full or masked k-space (N, H, W) complex -> images (N, 2, H, W) and scales (N,).

    The model sees ``ifft2c(k) / (reference_scale(k) * factor)``.
    """
    scale = reference_scale(kspace) * factor
    return complex_to_channels(ifft2c(kspace) / scale[:, None, None]), scale


@dataclass
class DataConfig:
    """Training data: ``n`` random phantoms of ``size`` (``file`` None), or a fastMRI file's
    single-coil slices centre-cropped (in image space) to ``size``."""

    size: int = 32
    n: int = 2000
    seed: int = 0
    file: str | None = None


def training_kspace(cfg: DataConfig) -> Tensor:
    """The training set's k-space (N, size, size) complex64."""
    if cfg.file is None:
        return torch.from_numpy(phantom_volume(cfg.n, cfg.size, cfg.seed))
    vol = read_kspace(cfg.file)
    if vol.multicoil:
        raise UserError(f"{cfg.file}: training reads single-coil k-space (slices, H, W)")
    k = torch.from_numpy(vol.kspace)
    if min(k.shape[-2:]) < cfg.size:
        raise UserError(f"{cfg.file}: k-space {tuple(k.shape[-2:])} is smaller than the "
                        f"training size {cfg.size}")
    return crop_kspace(k, (cfg.size, cfg.size))


def fit_factor(kspace: Tensor) -> float:
    """The factor that brings the median image maximum to 1 in model space."""
    x, _ = to_model(kspace, 1.0)
    return float(np.median(x.square().sum(1).sqrt().amax(dim=(1, 2)).numpy()))
