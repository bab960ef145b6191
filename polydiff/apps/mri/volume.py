"""Whole files: reconstruct every slice of a fastMRI volume, and evaluate against the truth."""

from __future__ import annotations

import os

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from polydiff.apps.mri.config import ReconConfig
from polydiff.apps.mri.pipeline import MriReconstructor, SliceResult, prepare_kspace
from polydiff.apps.mri.plots import order_image, save_figure
from polydiff.medical.fastmri_io import RECON_KEYS, read_images, read_kspace
from polydiff.medical.kspace import ifft2c, rss, zero_filled
from polydiff.medical.masks import budget
from polydiff.medical.metrics import evaluate_volume
from polydiff.runtime import UserError, atomic_output, make_generator


def reconstruct_file(src: str | os.PathLike, dst: str | os.PathLike, cfg: ReconConfig, *,
                     model: str | os.PathLike | None, device: torch.device, seed: int) -> str:
    """Reconstruct every slice of ``src`` into ``dst`` (HDF5) and ``dst`` with .png."""
    vol = read_kspace(src)
    recon = MriReconstructor(model, device)
    budget(recon.size, cfg.acceleration, cfg.center_fraction)  # fail before any work
    kspace, note = prepare_kspace(torch.from_numpy(vol.kspace), recon.size)
    centre = kspace[..., :, recon.size // 2].abs().flatten(1).amax(-1)
    if (centre == 0).any():
        raise UserError(f"{src}: slice {int(torch.nonzero(centre == 0)[0])} has an empty "
                        "k-space centre column")
    gen = make_generator(seed, device)
    results = [recon.reconstruct(k, cfg, gen, mask_seed=seed * 100_003 + i)
               for i, k in enumerate(tqdm(kspace, desc="mri slices", leave=False))]
    write_results(dst, results, {
        "acceleration": float(cfg.acceleration), "policy": cfg.policy, "model": recon.folder,
        "seed": int(seed), "particles": cfg.particles, "steps": cfg.steps,
        "kernel": cfg.kernel, "guidance_weight": cfg.guidance_weight, "preprocessing": note,
        "source": str(src), "coils": int(vol.kspace.shape[1]) if vol.multicoil else 1})
    zf = _zero_filled(kspace, [torch.from_numpy(r.mask) for r in results], vol.multicoil)
    png = os.fspath(dst) + ".png" if not str(dst).endswith(".h5") else str(dst)[:-3] + ".png"
    save_figure(png, [[("zero-filled (same mask)", zf[i], "image"),
                       (f"{cfg.policy} mean of {cfg.particles}", r.reconstruction, "image"),
                       ("particle std", r.std, "std"),
                       ("acquisition order", order_image(r.order, len(r.mask)), "order")]
                      for i, r in enumerate(results[:4])],
                title=f"{src} · {cfg.policy} {cfg.acceleration:g}x")
    return (f"reconstructed {len(results)} slice(s) at {cfg.acceleration:g}x with {cfg.policy} "
            f"({results[0].mask.sum()} of {len(results[0].mask)} columns) -> {dst}, {png}")


def write_results(dst: str | os.PathLike, results: list[SliceResult], attrs: dict) -> None:
    """The output layout: reconstruction/std (S, H, W) f32, mask (S, W) bool, order (S, K)."""
    with atomic_output(dst) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("reconstruction", data=np.stack([r.reconstruction for r in results]))
        f.create_dataset("std", data=np.stack([r.std for r in results]))
        f.create_dataset("mask", data=np.stack([r.mask for r in results]))
        f.create_dataset("acquisition_order", data=np.stack([r.order for r in results]))
        for k, v in attrs.items():
            f.attrs[k] = v


def reference_images(src: str | os.PathLike, shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
    """Ground-truth magnitudes of ``shape`` (S, H, W): a stored reconstruction of that shape,
    else the fully sampled k-space brought to the same grid as ``reconstruct`` does."""
    with h5py.File(src, "r") if h5py.is_hdf5(src) else _bad(src) as f:
        stored = [k for k in RECON_KEYS if k in f and f[k].shape == shape]
        has_kspace = "kspace" in f
    if stored:
        return read_images(src, stored[0])
    if not has_kspace:
        raise UserError(f"{src} has neither a {shape} reconstruction nor 'kspace'")
    vol = read_kspace(src)
    k, note = prepare_kspace(torch.from_numpy(vol.kspace), shape[-1])
    img = rss(ifft2c(k), 1) if vol.multicoil else ifft2c(k).abs()
    if tuple(img.shape) != shape:
        raise UserError(f"{src}: truth {tuple(img.shape)} does not match prediction {shape}")
    return img.numpy().astype(np.float32), f"kspace ({note})"


def _zero_filled(kspace: torch.Tensor, masks, multicoil: bool) -> np.ndarray:
    """Zero-filled magnitudes (S, H, W) of each slice with its (W,) mask (coils: RSS)."""
    zf = [zero_filled(k, m) for k, m in zip(kspace, masks)]
    return torch.stack([rss(z, 0) if multicoil else z for z in zf]).numpy()


def _bad(src):
    if not os.path.isfile(src):
        raise UserError(f"HDF5 file not found: {src}")
    raise UserError(f"{src} is not a readable HDF5 file")


def evaluate_files(truth: str | os.PathLike, pred: str | os.PathLike,
                   include_zero_filled: bool = False) -> dict[str, float]:
    """fastMRI metrics of ``pred``'s ``reconstruction`` against ``truth``."""
    images, _ = read_images(pred, "reconstruction")
    gt, _ = reference_images(truth, images.shape)
    out = evaluate_volume(gt, images)
    if include_zero_filled:
        with h5py.File(pred, "r") as f:
            mask = torch.from_numpy(f["mask"][()])
        vol = read_kspace(truth)
        k, _ = prepare_kspace(torch.from_numpy(vol.kspace), images.shape[-1])
        zf = _zero_filled(k, mask, vol.multicoil)
        out.update({f"{key}_zero_filled": v for key, v in evaluate_volume(gt, zf).items()})
    return out
