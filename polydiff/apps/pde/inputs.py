"""Reading a user's initial state or forcing from .npy, NetCDF or PDEBench-layout HDF5.

Initial state: a 1-D profile (nx,) — a .npy array, the NetCDF variable ``u0`` (or the first
time of ``u``), or in HDF5 the dataset ``u0`` or ``tensor[0, 0]`` (PDEBench). Forcing: a
(nt + 1, nx) field — a .npy array, the NetCDF variable ``forcing`` (first member), or in
HDF5 ``forcing[0]``. Anything else is a UserError naming the file and the problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from polydiff.physics.pde_data import checked_dataset
from polydiff.runtime import UserError, check_memory, require_file

SUFFIXES = (".npy", ".nc", ".h5", ".hdf5")


def _squeeze_leading(a: np.ndarray, ndim: int) -> np.ndarray:
    """Drop leading axes of length 1 (a batch of one) down to ``ndim`` axes."""
    while a.ndim > ndim and a.shape[0] == 1:
        a = a[0]
    return a


def _values(var, path: Path):
    """The values of an xarray variable after checking their size from the header."""
    check_memory(float(var.size) * max(var.dtype.itemsize, 4) * 2,
                 f"reading {var.name!r} of shape {var.shape} from {path}")
    return var.values


def _from_netcdf(path: Path, kind: str) -> np.ndarray:
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        if kind == "init":
            if "u0" in ds:
                return _values(ds["u0"], path)
            if "u" in ds and "t" in ds["u"].dims:
                u = ds["u"].isel(t=0)
                return _values(u.isel(member=0) if "member" in u.dims else u, path)
            raise UserError(f"{path}: no variable 'u0' or 'u' (with a t dimension) in the file")
        if "forcing" not in ds:
            raise UserError(f"{path}: no variable 'forcing' in the file")
        f = ds["forcing"]
        return _values(f.isel(member=0) if "member" in f.dims else f, path)


def _from_hdf5(path: Path, kind: str) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as h5:
        if kind == "init":
            if "u0" in h5:
                return np.asarray(checked_dataset(h5, "u0"))
            if "tensor" in h5 and getattr(h5["tensor"], "ndim", 0) == 3:
                return np.asarray(checked_dataset(h5, "tensor", whole=False)[0, 0])
            raise UserError(f"{path}: no dataset 'u0' or PDEBench 'tensor' (N, nt, nx)")
        if "forcing" not in h5:
            raise UserError(f"{path}: no dataset 'forcing' in the file")
        f = checked_dataset(h5, "forcing", whole=False)
        check_memory(float(np.prod(f.shape[-2:])) * 8, f"reading a forcing of shape {f.shape}")
        return np.asarray(f[0] if f.ndim == 3 else f)


def read_field(path: Path, kind: str) -> np.ndarray:
    """The initial state (``kind="init"``, (nx,)) or forcing (``"forcing"``, (nt+1, nx)),
    float32, from ``path``; shapes are checked against the model by the caller."""
    path = require_file(path, "initial state" if kind == "init" else "forcing")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(f"{path}: unsupported file type {suffix!r} (use {', '.join(SUFFIXES)})")
    try:
        if suffix == ".npy":
            data = np.load(path, mmap_mode="r", allow_pickle=False)  # the header only
            check_memory(float(data.size) * max(data.dtype.itemsize, 4) * 2,
                         f"reading {path} of shape {data.shape}")
            data = np.array(data)
        elif suffix == ".nc":
            data = _from_netcdf(path, kind)
        else:
            data = _from_hdf5(path, kind)
    except UserError:
        raise
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"cannot read {path}: {str(err).splitlines()[0]}") from err
    if not np.issubdtype(np.asarray(data).dtype, np.number):
        raise UserError(f"{path}: the data are not numbers")
    return _squeeze_leading(np.asarray(data, dtype=np.float32), 1 if kind == "init" else 2)
