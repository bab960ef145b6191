"""fastMRI-layout HDF5: ``kspace`` (slices, H, W) or (slices, coils, H, W) complex64, optional
``reconstruction_esc`` / ``reconstruction_rss`` (slices, h, w) float32, attributes ``max``,
``norm``, ``acquisition``. Bad files raise a one-line UserError; writes are whole or nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import h5py
import numpy as np

from polydiff.runtime import UserError, atomic_output, require_file

RECON_KEYS = ("reconstruction_esc", "reconstruction_rss", "reconstruction")


@dataclass
class KspaceVolume:
    """One fastMRI volume: k-space, an optional reference reconstruction and attributes."""

    kspace: np.ndarray  # (S, H, W) or (S, C, H, W) complex64
    reconstruction: np.ndarray | None = None  # (S, h, w) float32
    attrs: dict = field(default_factory=dict)

    @property
    def multicoil(self) -> bool:
        return self.kspace.ndim == 4


def _open(path: str | os.PathLike) -> h5py.File:
    path = require_file(path, "HDF5")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise UserError(f"{path} is not a readable HDF5 file ({err})") from None


def _finite(name: str, arr: np.ndarray, path) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise UserError(f"{path}: '{name}' holds NaN or infinite values")
    return arr


def read_kspace(path: str | os.PathLike) -> KspaceVolume:
    """Read a fastMRI file; checks that ``kspace`` exists, is complex, 3-D or 4-D and finite."""
    with _open(path) as f:
        if "kspace" not in f:
            raise UserError(f"{path} has no 'kspace' dataset (found: {', '.join(f) or 'none'})")
        ds = f["kspace"]
        if not isinstance(ds, h5py.Dataset) or ds.dtype.kind != "c":
            raise UserError(f"{path}: 'kspace' must be complex-valued, got dtype {ds.dtype}")
        if ds.ndim not in (3, 4) or min(ds.shape) < 1:
            raise UserError(f"{path}: 'kspace' must be (slices, H, W) or (slices, coils, H, W), "
                            f"got shape {ds.shape}")
        kspace = _finite("kspace", ds[()].astype(np.complex64), path)
        recon = None
        for key in RECON_KEYS[:2]:
            if key in f:
                recon = _finite(key, f[key][()].astype(np.float32), path)
                break
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    return KspaceVolume(kspace, recon, attrs)


def read_images(path: str | os.PathLike, key: str | None = None) -> tuple[np.ndarray, str]:
    """A magnitude volume (slices, H, W) float32 from ``key`` or the first of RECON_KEYS."""
    with _open(path) as f:
        keys = [key] if key else [k for k in RECON_KEYS if k in f]
        if not keys or keys[0] not in f:
            raise UserError(f"{path} has no {key or ' / '.join(RECON_KEYS)} dataset")
        ds = f[keys[0]]
        if ds.ndim != 3 or ds.dtype.kind not in "fiu":
            raise UserError(f"{path}: '{keys[0]}' must be a real (slices, H, W) volume, "
                            f"got {ds.dtype} {ds.shape}")
        return _finite(keys[0], ds[()].astype(np.float32), path), keys[0]


def write_kspace(path: str | os.PathLike, volume: KspaceVolume,
                 recon_key: str = "reconstruction_esc") -> None:
    """Write ``volume`` in fastMRI layout (``max``/``norm`` filled from the reconstruction)."""
    attrs = dict(volume.attrs)
    attrs.setdefault("acquisition", "polydiff_phantom")
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("kspace", data=volume.kspace.astype(np.complex64))
        if volume.reconstruction is not None:
            rec = volume.reconstruction.astype(np.float32)
            f.create_dataset(recon_key, data=rec)
            attrs.setdefault("max", float(rec.max()))
            attrs.setdefault("norm", float(np.linalg.norm(rec)))
        for k, v in attrs.items():
            f.attrs[k] = v
