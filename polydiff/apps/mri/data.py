"""The model's data space: complex images as (real, imag) channels on the model's square grid,
scaled by a statistic that every acquisition has (the centre k-space column, always sampled),
so training and reconstruction normalise the same way.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from polydiff.apps.mri.config import FITS, DataConfig
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


class GridFit(NamedTuple):
    """How a user's k-space of ``input_shape`` was brought to the model's ``size``² grid."""

    rule: str  # "fov" or "crop" (config.FITS)
    input_shape: tuple[int, int]  # (H, W) of the input k-space
    size: int  # the model's grid
    field_of_view: tuple[float, float]  # fraction of the input's field of view kept (H, W)
    pixel_scale: float  # output pixel size in input pixels

    @property
    def note(self) -> str:
        """One line saying what was done."""
        H, W = self.input_shape
        head = f"{H}x{W} k-space -> the model's {self.size}x{self.size} grid"
        if (H, W) == (self.size, self.size):
            return f"{head}: used as it is"
        if self.rule == "crop":
            fh, fw = self.field_of_view
            return (f"{head} by rule 'crop': the central {self.size}x{self.size} pixels of the "
                    f"image at full resolution ({fh:.0%} x {fw:.0%} of the field of view)")
        m = min(H, W)
        square = f"image centre-cropped to {m}x{m}, then " if H != W else ""
        return (f"{head} by rule 'fov': {square}the central {self.size}x{self.size} k-space "
                f"block, i.e. the whole {m}x{m} field of view at {self.pixel_scale:.3g}x "
                "coarser pixels")

    def attrs(self) -> dict:
        """HDF5 attributes of an output file recording the fit."""
        return {"fit": self.rule, "fit_note": self.note,
                "input_kspace_shape": np.asarray(self.input_shape, dtype=np.int64),
                "field_of_view_kept": np.asarray(self.field_of_view, dtype=np.float64),
                "pixel_scale": float(self.pixel_scale)}


def grid_fit(shape: tuple[int, ...], size: int, rule: str = "fov") -> GridFit:
    """The fit of k-space (..., H, W) to the model's ``size`` grid by ``rule``:

    - ``fov``: the image is centre-cropped to the square of its smaller side (fastMRI's
      readout oversampling goes), then the central ``size`` x ``size`` k-space block is kept:
      the whole (square) field of view at a lower resolution, as the prior was trained;
    - ``crop``: the central ``size`` x ``size`` pixels of the image at full resolution (a
      smaller field of view).

    A UserError when the input is smaller than the grid or the rule is unknown.
    """
    if rule not in FITS:
        raise UserError(f"unknown fit rule {rule!r} (use {', '.join(FITS)})")
    H, W = (int(d) for d in shape[-2:])
    if min(H, W) < size:
        raise UserError(f"k-space of {H}x{W} is smaller than the model's {size}x{size} grid")
    if rule == "crop":
        return GridFit(rule, (H, W), size, (size / H, size / W), 1.0)
    m = min(H, W)
    return GridFit(rule, (H, W), size, (m / H, m / W), m / size)


def prepare_kspace(kspace: Tensor, size: int, rule: str = "fov") -> tuple[Tensor, GridFit]:
    """k-space (..., H, W) on the model's ``size x size`` grid by ``rule`` (``grid_fit``),
    and the fit."""
    fit = grid_fit(tuple(kspace.shape), size, rule)
    H, W = fit.input_shape
    if (H, W) == (size, size):
        return kspace, fit
    if rule == "crop":
        return crop_kspace(kspace, (size, size)), fit
    m = min(H, W)
    if H != W:
        kspace = crop_kspace(kspace, (m, m))
    lo = (m - size + 1) // 2  # keeps the DC sample at (size//2, size//2)
    # orthonormal FFTs: the image value is kept when m² samples become size²
    return kspace[..., lo:lo + size, lo:lo + size] * (size / m), fit


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
        return torch.stack([prepare_kspace(torch.from_numpy(k), cfg.size, cfg.fit)[0]
                            for k in reader])


def fit_factor(kspace: Tensor) -> float:
    """The factor that brings the median image maximum to 1 in model space."""
    x, _ = to_model(kspace, 1.0)
    return float(np.median(x.square().sum(1).sqrt().amax(dim=(1, 2)).numpy()))
