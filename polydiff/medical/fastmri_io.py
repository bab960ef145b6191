"""fastMRI-layout HDF5: ``kspace`` (slices, H, W) or (slices, coils, H, W) complex64, optional
``reconstruction_esc`` / ``reconstruction_rss`` (slices, h, w) float32, attributes ``max``,
``norm``, ``acquisition``.

Inputs are checked from their headers before any data is read: a group where a dataset
belongs, data stored in another file (external storage, external links) and virtual datasets
are refused, and a declared size is compared with what the file really stores (a 1 KB file
cannot hold 39 GiB of k-space). k-space is read one slice at a time (:class:`KspaceReader`).
Bad files raise a one-line UserError. Writers write the path they are given; the caller
makes the file appear whole (``polydiff.apps.contract.Outputs``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from polydiff.runtime import UserError, check_memory, format_bytes, require_file

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


# ----------------------------------------------------------------------------- checks
def open_hdf5(path: str | os.PathLike) -> h5py.File:
    """``path`` opened read-only; a missing or non-HDF5 file is a UserError."""
    path = require_file(path, "HDF5")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise UserError(f"{path} is not a readable HDF5 file ({err})") from None


def _filtered(ds: h5py.Dataset) -> bool:
    """True when the dataset's chunks pass through filters (compression, shuffle...)."""
    return ds.chunks is not None and ds.id.get_create_plist().get_nfilters() > 0


def checked_dataset(f: h5py.File, key: str) -> h5py.Dataset:
    """Dataset ``key`` of ``f`` after refusing what must not be read from a user's file.

    Refused: a missing key, a group, a link into another file, external storage (raw data
    in other files, e.g. ``/etc/passwd``), virtual datasets, and a dataset that stores less
    than it declares (never written or truncated; compressed ones only when empty).
    """
    path = f.filename
    link = f.get(key, getlink=True)
    if link is None:
        raise UserError(f"{path} has no '{key}' dataset (found: {', '.join(f) or 'none'})")
    if isinstance(link, h5py.ExternalLink):
        raise UserError(f"{path}: '{key}' is a link to another file ({link.filename}); "
                        "external links are not read")
    try:
        obj = f[key]
    except (KeyError, OSError) as err:
        raise UserError(f"{path}: '{key}' cannot be opened ({err})") from None
    if not isinstance(obj, h5py.Dataset):
        raise UserError(f"{path}: '{key}' is an HDF5 group, not a dataset")
    if obj.file.filename != path:
        raise UserError(f"{path}: '{key}' lives in another file ({obj.file.filename}); "
                        "external links are not read")
    if obj.is_virtual:
        raise UserError(f"{path}: '{key}' is a virtual dataset (its data is in other "
                        "files); virtual datasets are not read")
    if obj.external:
        raise UserError(f"{path}: '{key}' stores its data outside the file "
                        f"({obj.external[0][0]}); external storage is not read")
    declared = obj.size * obj.dtype.itemsize
    stored = obj.id.get_storage_size()
    if declared and (stored == 0 or (stored < declared and not _filtered(obj))):
        raise UserError(f"{path}: '{key}' declares {obj.shape} {obj.dtype} "
                        f"({format_bytes(declared)}) but the file stores "
                        f"{format_bytes(stored)} of it; it is truncated or was never written")
    return obj


def _finite(name: str, arr: np.ndarray, path) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise UserError(f"{path}: '{name}' holds NaN or infinite values")
    return arr


def _attrs(f: h5py.File) -> dict:
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}


# ----------------------------------------------------------------------------- reading
class KspaceReader:
    """A fastMRI file's ``kspace``, checked from its header and read one slice at a time.

    ``shape`` (S, H, W) or (S, C, H, W); ``reader.slice(i)`` is one complex64 slice (H, W) or
    (C, H, W), checked finite. Use as a context manager (the file stays open).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.file = open_hdf5(path)
        try:
            ds = checked_dataset(self.file, "kspace")
            if ds.dtype.kind != "c":
                raise UserError(f"{path}: 'kspace' must be complex-valued, got dtype {ds.dtype}")
            if ds.ndim not in (3, 4) or min(ds.shape) < 1:
                raise UserError(f"{path}: 'kspace' must be (slices, H, W) or (slices, coils, "
                                f"H, W), got shape {ds.shape}")
            self.slice_bytes = int(np.prod(ds.shape[1:])) * 8  # complex64
            # the stored dtype and its complex64 copy of one slice are held at once
            check_memory(self.slice_bytes * 3, f"{path}: one k-space slice {ds.shape[1:]}")
        except BaseException:
            self.file.close()
            raise
        self.dataset, self.shape = ds, tuple(ds.shape)
        self.attrs = _attrs(self.file)

    @property
    def multicoil(self) -> bool:
        return len(self.shape) == 4

    def __len__(self) -> int:
        return self.shape[0]

    def slice(self, i: int) -> np.ndarray:
        """Slice ``i`` as complex64 (H, W) or (C, H, W)."""
        return _finite("kspace", np.asarray(self.dataset[i], dtype=np.complex64), self.path)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.slice(i) for i in range(len(self)))

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> KspaceReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_kspace(path: str | os.PathLike) -> KspaceVolume:
    """A whole fastMRI volume in memory (its declared size checked against free memory)."""
    with KspaceReader(path) as reader:
        check_memory(reader.slice_bytes * len(reader) * 1.5, f"{path}: k-space {reader.shape}")
        kspace = np.empty(reader.shape, dtype=np.complex64)
        for i in range(len(reader)):
            kspace[i] = reader.slice(i)
        keys = [k for k in RECON_KEYS[:2] if k in reader.file]
        recon = _read_real(reader.file, keys[0], path) if keys else None
        return KspaceVolume(kspace, recon, reader.attrs)


def _read_real(f: h5py.File, key: str, path) -> np.ndarray:
    ds = checked_dataset(f, key)
    if ds.ndim != 3 or ds.dtype.kind not in "fiu":
        raise UserError(f"{path}: '{key}' must be a real (slices, H, W) volume, "
                        f"got {ds.dtype} {ds.shape}")
    check_memory(ds.size * 8, f"{path}: '{key}' {ds.shape}")
    return _finite(key, np.asarray(ds[()], dtype=np.float32), path)


def image_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """The shapes of the reconstruction datasets (``RECON_KEYS``) that ``path`` holds."""
    with open_hdf5(path) as f:
        return {k: tuple(f[k].shape) for k in RECON_KEYS
                if k in f and isinstance(f.get(k, getlink=True), h5py.HardLink)
                and isinstance(f[k], h5py.Dataset)}


def has_kspace(path: str | os.PathLike) -> bool:
    """True when ``path`` has an entry named ``kspace`` (checked when it is read)."""
    with open_hdf5(path) as f:
        return "kspace" in f


def read_images(path: str | os.PathLike, key: str | None = None) -> tuple[np.ndarray, str]:
    """A magnitude volume (slices, H, W) float32 from ``key`` or the first of RECON_KEYS."""
    with open_hdf5(path) as f:
        keys = [key] if key else [k for k in RECON_KEYS if k in f]
        if not keys or keys[0] not in f:
            raise UserError(f"{path} has no {key or ' / '.join(RECON_KEYS)} dataset")
        return _read_real(f, keys[0], path), keys[0]


# ----------------------------------------------------------------------------- writing
def write_kspace_slices(path: str | os.PathLike, slices: Iterable[tuple[np.ndarray, np.ndarray]],
                        kspace_shape: tuple[int, ...], recon_key: str = "reconstruction_esc",
                        attrs: dict | None = None,
                        image_shape: tuple[int, int] | None = None) -> None:
    """Write ``(kspace, image)`` slice pairs in fastMRI layout, one slice in memory at a time.

    ``kspace_shape`` (S, H, W) or (S, C, H, W); each image is real, ``image_shape`` (h, w)
    (default: the k-space's H, W). ``max`` and ``norm`` of the reconstruction are
    accumulated as the slices pass.
    """
    attrs = dict(attrs or {})
    attrs.setdefault("acquisition", "polydiff_phantom")
    peak, energy, n = -np.inf, 0.0, 0
    with h5py.File(path, "w") as f:
        k_ds = f.create_dataset("kspace", shape=kspace_shape, dtype=np.complex64)
        r_ds = f.create_dataset(recon_key, shape=(kspace_shape[0], *(image_shape or
                                                                     kspace_shape[-2:])),
                                dtype=np.float32)
        for i, (k, img) in enumerate(slices):
            k_ds[i] = k.astype(np.complex64)
            r_ds[i] = img.astype(np.float32)
            peak = max(peak, float(r_ds[i].max()))
            energy += float(np.square(r_ds[i].astype(np.float64)).sum())
            n += 1
        if n != kspace_shape[0]:
            raise ValueError(f"{n} slices given for a declared {kspace_shape}")
        attrs.setdefault("max", peak)
        attrs.setdefault("norm", float(np.sqrt(energy)))
        for k, v in attrs.items():
            f.attrs[k] = v


def write_kspace(path: str | os.PathLike, volume: KspaceVolume,
                 recon_key: str = "reconstruction_esc") -> None:
    """Write ``volume`` in fastMRI layout (``max``/``norm`` filled from the reconstruction)."""
    if volume.reconstruction is None:
        with h5py.File(path, "w") as f:
            f.create_dataset("kspace", data=volume.kspace.astype(np.complex64))
            for k, v in {"acquisition": "polydiff_phantom", **volume.attrs}.items():
                f.attrs[k] = v
        return
    write_kspace_slices(path, zip(volume.kspace, volume.reconstruction), volume.kspace.shape,
                        recon_key, volume.attrs, image_shape=volume.reconstruction.shape[1:])
