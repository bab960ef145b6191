"""Reconstruction of fastMRI slices by posterior sampling with B particles, with the columns
chosen by ADS or by a fixed mask, through the backbone's one sampling loop.

Stages per slice: (1) bring k-space to the model's grid (the fit rule of ``data.grid_fit``)
and scale, (2) start the mask (ADS: the centre block or, with ``start="line"``, the single
centre line; fixed policies: the whole mask), (3) sample with DPS guidance, the
acquisition hook and hard data consistency, (4) magnitudes back in the input's units.
A file is read one slice at a time; every slice is checked before any sampling starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import h5py
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from polydiff.apps.mri.ads import ActiveAcquisition, acquisition_steps
from polydiff.apps.mri.config import POLICIES, ReconConfig
from polydiff.apps.mri.data import GridFit, grid_fit, prepare_kspace, reference_scale
from polydiff.apps.mri.model import MriModel
from polydiff.apps.mri.plots import reconstruction_figure
from polydiff.diffusion import (
    DataConsistency,
    Denoiser,
    MeasurementGuidance,
    ProgressBar,
    sample,
)
from polydiff.diffusion.operators import Operator, channels_to_complex
from polydiff.medical.fastmri_io import KspaceReader
from polydiff.medical.kspace import (
    MaskedFFT2,
    SenseOperator,
    estimate_sensitivities,
    fft2c,
    ifft2c,
    rss,
    zero_filled,
)
from polydiff.medical.masks import budget, center_columns, fixed_mask
from polydiff.runtime import UserError, check_finite, check_memory, make_generator

PICTURED_SLICES = 4  # rows of the PNG
START_TEXT = {"block": "the fastMRI centre block", "line": "the single centre line"}
NAN_HINT = ("a --guidance weight too large for this input (try a smaller one), or a "
            "checkpoint whose network gives NaN")


class SliceResult(NamedTuple):
    """One reconstructed slice, in the units of the input k-space's image."""

    reconstruction: np.ndarray  # (H, W) float32, mean particle magnitude
    std: np.ndarray  # (H, W) float32, spread of the particle magnitudes
    mask: np.ndarray  # (W,) bool
    order: np.ndarray  # (K,) int64, acquisition order (centre block first)


class Measurement(NamedTuple):
    """What the sampler needs of one slice's acquisition, in model units."""

    operator: Operator  # MaskedFFT2 or SenseOperator, holding the (W,) mask
    y: Tensor  # (1, H, W) or (1, C, H, W), zero outside the acquired columns
    predict: Callable[[Tensor], Tensor]  # x̂₀ (B, 2, H, W) -> full k-space (B, [C,] H, W)
    scanner: Callable[[Tensor], Tensor]  # columns (K,) -> their measured values, y[..., cols]
    scale: float  # model units -> the input's units


def measurement(k: Tensor, mask: Tensor, centre: np.ndarray, factor: float) -> Measurement:
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
    return Measurement(op, y, predict, lambda cols: k[..., cols], scale)


def reconstruct_slice(model: MriModel, kspace: Tensor, cfg: ReconConfig,
                      generator: torch.Generator, mask_seed: int = 0,
                      progress: bool = False) -> SliceResult:
    """Reconstruct one slice on the model's grid: ``kspace`` (size, size) single-coil or
    (C, size, size) multi-coil (SENSE, maps estimated from the centre block)."""
    if cfg.policy not in POLICIES:
        raise UserError(f"unknown policy {cfg.policy!r} (use {', '.join(POLICIES)})")
    dev = next(model.net.parameters()).device
    size = model.size
    # 1. the starting mask
    b = budget(size, cfg.acceleration, cfg.center_fraction, cfg.start)
    if cfg.start == "line" and kspace.dim() == 3:
        raise UserError("multi-coil k-space needs the centre-block start (its coil maps are "
                        "estimated from the centre block); use --start block")
    start = (center_columns(b) if cfg.policy == "ads"
             else fixed_mask(cfg.policy, b, mask_seed).order)
    mask = torch.zeros(size, dtype=torch.bool, device=dev)
    mask[torch.as_tensor(start, device=dev)] = True
    # 2. the measurement in model units
    m = measurement(kspace.to(dev, torch.complex64), mask, center_columns(b), model.factor)
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
    out = sample(Denoiser(model.net), model.scheduler, (cfg.particles, 2, size, size),
                 steps=cfg.steps, generator=generator, hooks=hooks, device=dev)
    # 4. magnitudes in the input's units (the first host copies of this slice)
    mag = channels_to_complex(out.sample).abs() * m.scale  # (B, H, W)
    order = np.concatenate([np.asarray(start), np.asarray(acq.acquired if acq else [],
                                                            dtype=np.int64)])
    return SliceResult(mag.mean(0).cpu().numpy().astype(np.float32),
                       mag.std(0).cpu().numpy().astype(np.float32),
                       mask.cpu().numpy().copy(), order.astype(np.int64))


class VolumeResult(NamedTuple):
    """Every slice of one file, and what the picture needs."""

    slices: list[SliceResult]
    zero_filled: np.ndarray  # (min(S, PICTURED_SLICES), H, W) with each slice's own mask
    fit: GridFit  # how the input was brought to the model's grid
    coils: int


def _check_slices(reader: KspaceReader, size: int, rule: str) -> None:
    """Every slice on the model's grid, checked before the work (a UserError)."""
    for i in range(len(reader)):
        k, _ = prepare_kspace(torch.from_numpy(reader.slice(i)), size, rule)
        if not bool((k[..., :, size // 2] != 0).any()):
            raise UserError(f"{reader.path}: slice {i} has an empty k-space centre column")


def reconstruct_volume(src: str | os.PathLike, cfg: ReconConfig, model: MriModel, *,
                       seed: int, progress: bool = True,
                       announce: Callable[[str], None] | None = None) -> VolumeResult:
    """Reconstruct every slice of the fastMRI file ``src``, one slice in memory at a time;
    ``announce`` gets one line saying how the input is fitted to the grid, before sampling."""
    budget(model.size, cfg.acceleration, cfg.center_fraction, cfg.start)  # fail before work
    device = next(model.net.parameters()).device
    with KspaceReader(src) as reader:
        n = len(reader)
        if reader.multicoil and cfg.start == "line":
            raise UserError(f"{src} is multi-coil: its coil maps are estimated from the "
                            "centre block, so it needs --start block")
        # one raw slice with its crops and FFTs, and the results at the model's size
        check_memory(reader.slice_bytes * 6 + n * (model.size**2 * 8 + model.size * 9),
                     f"reconstructing {src} ({n} slices of {reader.shape[1:]})")
        rule = cfg.fit or model.fit
        fit = grid_fit(reader.shape, model.size, rule)
        # every slice readable, finite and with a centre column before any sampling
        _check_slices(reader, model.size, rule)
        if announce is not None:
            announce(fit.note)
        gen = make_generator(seed, device)
        results, pictured = [], []
        for i in tqdm(range(n), desc="mri slices", leave=False, disable=not progress):
            k, _ = prepare_kspace(torch.from_numpy(reader.slice(i)), model.size, rule)
            r = reconstruct_slice(model, k, cfg, gen, mask_seed=seed * 100_003 + i)
            check_finite(r.reconstruction, f"the reconstruction of slice {i}", NAN_HINT)
            results.append(r)
            if i < PICTURED_SLICES:
                zf = zero_filled(k, torch.from_numpy(r.mask))
                pictured.append((rss(zf, 0) if reader.multicoil else zf).numpy())
        coils = reader.shape[1] if reader.multicoil else 1
    return VolumeResult(results, np.stack(pictured), fit, int(coils))


def write_reconstruction(path: str | os.PathLike, results: list[SliceResult],
                         attrs: dict) -> None:
    """The output layout: reconstruction/std (S, H, W) f32, mask (S, W) bool, order (S, K)."""
    recon = np.stack([r.reconstruction for r in results])
    std = np.stack([r.std for r in results])
    check_finite(recon, "the reconstruction", NAN_HINT)
    check_finite(std, "the particle spread", NAN_HINT)
    with h5py.File(path, "w") as f:
        f.create_dataset("reconstruction", data=recon)
        f.create_dataset("std", data=std)
        f.create_dataset("mask", data=np.stack([r.mask for r in results]))
        f.create_dataset("acquisition_order", data=np.stack([r.order for r in results]))
        for k, v in attrs.items():
            f.attrs[k] = v


def reconstruct_file(src: str | os.PathLike, h5_path: str | os.PathLike,
                     png_path: str | os.PathLike, cfg: ReconConfig, model: MriModel, *,
                     seed: int, progress: bool = True, write: bool = True,
                     announce: Callable[[str], None] | None = None) -> str:
    """Reconstruct ``src`` into ``h5_path`` (HDF5) and its picture ``png_path``.

    The paths are where to write (the caller's temporary files; nothing is written with
    ``write=False``, as on ranks other than 0); returns a summary line.
    """
    vol = reconstruct_volume(src, cfg, model, seed=seed, progress=progress, announce=announce)
    check_finite(np.stack([r.reconstruction for r in vol.slices]), "the reconstruction",
                 NAN_HINT)
    first = vol.slices[0].mask
    summary = (f"reconstructed {len(vol.slices)} slice(s) at {cfg.acceleration:g}x with "
               f"{cfg.policy} ({int(first.sum())} of {len(first)} columns, starting from "
               f"{START_TEXT[cfg.start]})")
    if not write:
        return summary
    write_reconstruction(h5_path, vol.slices, {
        "acceleration": float(cfg.acceleration), "policy": cfg.policy,
        "model": str(model.folder), "seed": int(seed), "particles": cfg.particles,
        "steps": cfg.steps, "kernel": cfg.kernel, "guidance_weight": cfg.guidance_weight,
        "start": cfg.start,
        "source": str(src), "coils": vol.coils, **vol.fit.attrs()})
    reconstruction_figure(png_path, vol.slices[:PICTURED_SLICES], vol.zero_filled,
                          policy=cfg.policy, particles=cfg.particles,
                          title=f"{src} · {cfg.policy} {cfg.acceleration:g}x")
    return summary
