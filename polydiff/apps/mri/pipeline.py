"""Reconstruction of fastMRI slices by posterior sampling with B particles, with the columns
chosen by ADS or by a fixed mask, through the backbone's one sampling loop.

Stages per slice: (1) bring k-space to the model's grid and scale, (2) start the mask (ADS:
the centre block; fixed policies: the whole mask), (3) sample with DPS guidance, the
acquisition hook and hard data consistency, (4) magnitudes back in the input's units.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from polydiff.apps.mri.ads import ActiveAcquisition, acquisition_steps
from polydiff.apps.mri.config import POLICIES, ReconConfig
from polydiff.apps.mri.data import reference_scale
from polydiff.diffusion import (
    DataConsistency,
    Denoiser,
    MeasurementGuidance,
    ProgressBar,
    load_checkpoint,
    sample,
)
from polydiff.medical.kspace import (
    MaskedFFT2,
    Operator,
    SenseOperator,
    channels_to_complex,
    crop_kspace,
    estimate_sensitivities,
    fft2c,
    ifft2c,
)
from polydiff.medical.masks import budget, center_columns, fixed_mask
from polydiff.runtime import UserError
from polydiff.weights import bundled_path


class SliceResult(NamedTuple):
    """One reconstructed slice, in the units of the input k-space's image."""

    reconstruction: np.ndarray  # (H, W) float32, mean particle magnitude
    std: np.ndarray  # (H, W) float32, spread of the particle magnitudes
    mask: np.ndarray  # (W,) bool
    order: np.ndarray  # (K,) int64, acquisition order (centre block first)


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


class MriReconstructor:
    """A loaded prior (checkpoint folder) that reconstructs single-coil slices."""

    def __init__(self, model: str | os.PathLike | None, device: torch.device) -> None:
        folder = bundled_path("mri") if model is None else model
        if model is None and not (bundled_path("mri") / "polydiff.json").is_file():
            raise UserError("the bundled mri checkpoint is missing; pass --model DIR")
        ckpt = load_checkpoint(folder, device=device)
        if ckpt.config.get("app") != "mri":
            raise UserError(f"{folder} is not an mri checkpoint (app: {ckpt.config.get('app')})")
        self.folder, self.device = str(folder), device
        self.net, self.scheduler = ckpt.net, ckpt.scheduler
        self.size = int(ckpt.config["size"])
        self.factor = float(ckpt.config["normalisation"]["factor"])

    def reconstruct(self, kspace: Tensor, cfg: ReconConfig, generator: torch.Generator,
                    mask_seed: int = 0, progress: bool = False) -> SliceResult:
        """Reconstruct one slice on the model's grid: ``kspace`` (size, size) single-coil or
        (C, size, size) multi-coil (SENSE, maps estimated from the centre block)."""
        if cfg.policy not in POLICIES:
            raise UserError(f"unknown policy {cfg.policy!r} (use {', '.join(POLICIES)})")
        dev = self.device
        # 1. the starting mask
        b = budget(self.size, cfg.acceleration, cfg.center_fraction)
        start = (center_columns(b) if cfg.policy == "ads"
                 else fixed_mask(cfg.policy, b, mask_seed).order)
        mask = torch.zeros(self.size, dtype=torch.bool, device=dev)
        mask[torch.as_tensor(start, device=dev)] = True
        # 2. the measurement in model units
        m = _measurement(kspace.to(dev, torch.complex64), mask, center_columns(b), self.factor)
        # 3. sample: DPS guidance, acquisition, hard data consistency at the end
        guide = MeasurementGuidance(m.operator, m.y, cfg.guidance_weight, mode="dps")
        hooks = [guide]
        acq = None
        if cfg.policy == "ads":
            acq = ActiveAcquisition(guide, m.predict, m.scanner, acquisition_steps(
                cfg.steps, b.total - b.center, cfg.window), cfg.kernel, cfg.sigma)
            hooks.append(acq)
        hooks.append(DataConsistency(m.operator, m.y))
        if progress:
            hooks.append(ProgressBar("mri reconstruct"))
        out = sample(Denoiser(self.net), self.scheduler, (cfg.particles, 2, self.size,
                     self.size), steps=cfg.steps, generator=generator, hooks=hooks, device=dev)
        # 4. magnitudes in the input's units
        mag = channels_to_complex(out.sample).abs() * m.scale  # (B, H, W)
        order = np.concatenate([np.asarray(start), np.asarray(acq.acquired if acq else [],
                                                                dtype=np.int64)])
        return SliceResult(mag.mean(0).cpu().numpy().astype(np.float32),
                           mag.std(0).cpu().numpy().astype(np.float32),
                           mask.cpu().numpy().copy(), order.astype(np.int64))


class Measurement(NamedTuple):
    """What the sampler needs of one slice's acquisition, in model units."""

    operator: Operator  # MaskedFFT2 or SenseOperator, holding the (W,) mask
    y: Tensor  # (1, H, W) or (1, C, H, W), zero outside the acquired columns
    predict: Callable[[Tensor], Tensor]  # x̂₀ (B, 2, H, W) -> full k-space (B, [C,] H, W)
    scanner: Callable[[int], Tensor]  # column l -> its measured values, like y[..., l]
    scale: float  # model units -> the input's units


def _measurement(k: Tensor, mask: Tensor, centre: np.ndarray, factor: float) -> Measurement:
    """Single-coil (H, W): masked FFT. Multi-coil (C, H, W): SENSE with maps from the centre
    block. The scale is the centre-column statistic of the (coil-combined) centre block."""
    centre = torch.as_tensor(centre, device=k.device)
    if k.dim() == 2:
        op, maps = MaskedFFT2(mask), None
        scale = float(reference_scale(k)) * factor
    else:
        maps = estimate_sensitivities(k, centre)
        low = torch.zeros_like(k)
        low[..., centre] = k[..., centre]
        combined = fft2c((maps.conj() * ifft2c(low)).sum(0))
        scale = float(reference_scale(combined)) * factor
        op = SenseOperator(maps, mask)

    def predict(x0: Tensor) -> Tensor:
        img = channels_to_complex(x0)
        return fft2c(img if maps is None else maps[None] * img[:, None])

    k = k / scale
    y = torch.zeros(1, *k.shape, dtype=k.dtype, device=k.device)
    y[..., mask] = k[..., mask]
    return Measurement(op, y, predict, lambda col: k[..., col], scale)
