"""The model's data space: complex images as (real, imag) channels on the model's square grid,
scaled by a statistic that every acquisition has (the centre k-space column, always sampled),
so training and reconstruction normalise the same way.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from polydiff.apps.mri.config import DataConfig
from polydiff.diffusion.operators import complex_to_channels
from polydiff.medical.fastmri_io import KspaceReader
from polydiff.medical.kspace import crop_kspace, ifft2c
from polydiff.medical.phantoms import phantom_volume
from polydiff.runtime import UserError, check_memory


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


def prepare_kspace(kspace: Tensor, size: int) -> tuple[Tensor, str]:
    """k-space (..., H, W) on the model's ``size x size`` grid, and what was done to it.

    A non-square image is centre-cropped in image space to its smaller side (fastMRI
    practice); a square one of another size keeps its field of view and its central
    ``size x size`` k-space block (a lower resolution).
    """
    H, W = kspace.shape[-2:]
    notes = []
    if H != W:
        m = min(H, W)
        kspace = crop_kspace(kspace, (m, m))
        notes.append(f"centre-cropped in image space from {H}x{W} to {m}x{m}")
    m = kspace.shape[-1]
    if m < size:
        raise UserError(f"k-space of {H}x{W} is smaller than the model's {size}x{size} grid")
    if m != size:
        lo = (m - size + 1) // 2
        kspace = kspace[..., lo:lo + size, lo:lo + size] * (size / m)
        notes.append(f"central {size}x{size} k-space block kept (resolution {m} -> {size})")
    return kspace, "; ".join(notes) or "none"


# Bytes per training pixel: complex64 k-space, complex64 images on the way, float32 channels.
_TRAIN_BYTES_PER_PIXEL = 8 + 16 + 8


def training_kspace(cfg: DataConfig, progress: bool = False) -> Tensor:
    """The training set's k-space (N, size, size) complex64 (its memory checked first)."""
    if cfg.file is None:
        check_memory(cfg.n * cfg.size**2 * _TRAIN_BYTES_PER_PIXEL,
                     f"training data of {cfg.n} phantoms of {cfg.size}x{cfg.size}")
        return torch.from_numpy(phantom_volume(cfg.n, cfg.size, cfg.seed, progress=progress))
    with KspaceReader(cfg.file) as reader:
        if reader.multicoil:
            raise UserError(f"{cfg.file}: training reads single-coil k-space (slices, H, W)")
        if min(reader.shape[-2:]) < cfg.size:
            raise UserError(f"{cfg.file}: k-space {reader.shape[-2:]} is smaller than the "
                            f"training size {cfg.size}")
        check_memory(len(reader) * cfg.size**2 * _TRAIN_BYTES_PER_PIXEL,
                     f"training data of {len(reader)} slices of {cfg.size}x{cfg.size}")
        return torch.stack([crop_kspace(torch.from_numpy(k), (cfg.size, cfg.size))
                            for k in reader])


def fit_factor(kspace: Tensor) -> float:
    """The factor that brings the median image maximum to 1 in model space."""
    x, _ = to_model(kspace, 1.0)
    return float(np.median(x.square().sum(1).sqrt().amax(dim=(1, 2)).numpy()))
