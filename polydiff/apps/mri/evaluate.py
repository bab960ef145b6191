"""fastMRI metrics of a reconstruction file against the truth file."""

from __future__ import annotations

import os

import numpy as np
import torch

from polydiff.apps.mri.config import FITS
from polydiff.apps.mri.data import prepare_kspace
from polydiff.medical.fastmri_io import (
    KspaceReader,
    checked_dataset,
    has_kspace,
    image_shapes,
    open_hdf5,
    read_images,
)
from polydiff.medical.kspace import ifft2c, rss, zero_filled
from polydiff.medical.metrics import evaluate_volume
from polydiff.runtime import UserError, check_memory


def _truth_from_kspace(src: str | os.PathLike, shape: tuple[int, ...],
                       masks: np.ndarray | None = None,
                       rule: str = "fov") -> tuple[np.ndarray, np.ndarray | None]:
    """Magnitudes (S, H, W) of the fully sampled k-space on the prediction's grid (by the fit
    ``rule`` of ``data.grid_fit``), read slice by slice, and (with ``masks`` (S, W)) the
    zero-filled images of the same slices."""
    with KspaceReader(src) as reader:
        if len(reader) != shape[0]:
            raise UserError(f"{src} has {len(reader)} slices, the prediction {shape[0]}")
        check_memory(reader.slice_bytes * 6 + 2 * np.prod(shape) * 4,
                     f"the truth of {src} ({reader.shape})")
        truth, zf = [], []
        for i in range(len(reader)):
            k, _ = prepare_kspace(torch.from_numpy(reader.slice(i)), shape[-1], rule)
            img = rss(ifft2c(k), 0) if reader.multicoil else ifft2c(k).abs()
            if tuple(img.shape) != tuple(shape[1:]):
                raise UserError(f"{src}: truth {tuple(img.shape)} does not match prediction "
                                f"slices {tuple(shape[1:])}")
            truth.append(img.numpy().astype(np.float32))
            if masks is not None:
                z = zero_filled(k, torch.from_numpy(masks[i]))
                zf.append((rss(z, 0) if reader.multicoil else z).numpy())
    return np.stack(truth), (np.stack(zf) if masks is not None else None)


def reference_images(src: str | os.PathLike, shape: tuple[int, ...],
                     rule: str = "fov") -> np.ndarray:
    """Ground-truth magnitudes of ``shape`` (S, H, W): a stored reconstruction of that shape,
    else the fully sampled k-space brought to the same grid by the same fit ``rule`` as the
    reconstruction."""
    stored = [k for k, s in image_shapes(src).items() if s == tuple(shape)]
    if stored:
        return read_images(src, stored[0])[0]
    if not has_kspace(src):
        raise UserError(f"{src} has neither a {tuple(shape)} reconstruction nor 'kspace'")
    return _truth_from_kspace(src, shape, rule=rule)[0]


def evaluate_files(truth: str | os.PathLike, pred: str | os.PathLike,
                   include_zero_filled: bool = False) -> dict[str, float]:
    """fastMRI metrics (NMSE, PSNR, SSIM) of ``pred``'s ``reconstruction`` against ``truth``;
    with ``include_zero_filled`` also those of zero-filling with ``pred``'s masks."""
    images, _ = read_images(pred, "reconstruction")
    rule = read_fit(pred)
    gt = reference_images(truth, images.shape, rule)
    out = evaluate_volume(gt, images)
    if include_zero_filled:
        masks = read_mask(pred)
        _, zf = _truth_from_kspace(truth, images.shape, masks, rule)
        out.update({f"{key}_zero_filled": v for key, v in evaluate_volume(gt, zf).items()})
    return out


def read_fit(pred: str | os.PathLike) -> str:
    """The fit rule a reconstruction file records (``fov`` for files without one)."""
    with open_hdf5(pred) as f:
        rule = f.attrs.get("fit", "fov")
    rule = rule.decode() if isinstance(rule, bytes) else str(rule)
    if rule not in FITS:
        raise UserError(f"{pred}: unknown fit rule {rule!r} in its attributes")
    return rule


def read_mask(pred: str | os.PathLike) -> np.ndarray:
    """The acquired columns (S, W) bool of a reconstruction file."""
    with open_hdf5(pred) as f:
        ds = checked_dataset(f, "mask")
        if ds.ndim != 2 or ds.dtype != bool:
            raise UserError(f"{pred}: 'mask' must be (slices, W) bool, got {ds.dtype} {ds.shape}")
        return ds[()]
