"""PDE trajectory data sets: a typed container and its PDEBench-layout HDF5 and NetCDF files.

HDF5 (PDEBench layout): dataset ``tensor`` (N, nt, nx[, ny]) float32, ``x-coordinate`` (nx,),
``t-coordinate`` (nt,) (PDEBench's own 1-D files carry nt + 1 entries; the first nt are
read), ``y-coordinate`` (ny,) for 2-D equations, ``forcing`` with the shape of ``tensor``
when there is one; the equation's parameters as root attributes (``Nu`` for Burgers,
``beta`` for advection, ...) and the equation name as the attribute ``equation``.

NetCDF: variable ``u`` with dims (sample, t, x[, y]), ``forcing`` alike, coordinates
``sample``, ``t``, ``x`` (and ``y``), the same attributes on the file.

Reading a missing, corrupt or malformed file raises a UserError naming the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from polydiff.runtime import UserError, atomic_output, check_memory, require_file

Tensor = torch.Tensor
HDF5_SUFFIXES = (".h5", ".hdf5")
NETCDF_SUFFIXES = (".nc",)


@dataclass
class Trajectories:
    """N trajectories of a scalar field on a regular grid.

    Attributes:
        u: states, (N, nt, nx) or (N, nt, nx, ny), float32.
        x: positions (nx,); t: times (nt,); y: positions (ny,) for 2-D fields, else None.
        forcing: the source term on the same grid as ``u``, or None.
        equation: the equation's name (e.g. ``burgers``).
        params: the equation's parameters (e.g. ``{"Nu": 0.01}``), floats.
    """

    u: Tensor
    x: Tensor
    t: Tensor
    y: Tensor | None = None
    forcing: Tensor | None = None
    equation: str = ""
    params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.u = torch.as_tensor(self.u).to(torch.float32)
        self.x, self.t = (torch.as_tensor(c).to(torch.float64) for c in (self.x, self.t))
        if self.y is not None:
            self.y = torch.as_tensor(self.y).to(torch.float64)
        if self.forcing is not None:
            self.forcing = torch.as_tensor(self.forcing).to(torch.float32)
        self.params = {str(k): float(v) for k, v in self.params.items()}
        self._check()

    def _check(self) -> None:
        spatial = 1 if self.y is None else 2
        if self.u.ndim != 2 + spatial:
            raise UserError(f"trajectories must have shape (N, nt, nx{', ny' * (spatial - 1)}), "
                            f"got {tuple(self.u.shape)}")
        expected = (len(self.t), len(self.x)) + (() if self.y is None else (len(self.y),))
        if tuple(self.u.shape[1:]) != expected:
            raise UserError(f"trajectories of shape {tuple(self.u.shape)} do not match the "
                            f"coordinates (nt, nx[, ny]) = {expected}")
        if self.forcing is not None and self.forcing.shape != self.u.shape:
            raise UserError(f"forcing of shape {tuple(self.forcing.shape)} does not match the "
                            f"trajectories {tuple(self.u.shape)}")
        for name, value in (("u", self.u), ("forcing", self.forcing), ("x", self.x),
                            ("t", self.t), ("y", self.y)):
            if value is not None and not torch.isfinite(value).all():
                raise UserError(f"{name} contains NaN or infinite values")

    @property
    def n(self) -> int:
        return self.u.shape[0]

    def select(self, index: slice | Tensor) -> Trajectories:
        """A subset of the trajectories (same grid and parameters)."""
        forcing = None if self.forcing is None else self.forcing[index]
        return Trajectories(self.u[index], self.x, self.t, self.y, forcing, self.equation,
                            self.params)


def write_trajectories(traj: Trajectories, path: str | Path) -> Path:
    """Write ``traj`` whole or not at all to ``.h5``/``.hdf5`` (PDEBench) or ``.nc``."""
    path = Path(path)
    writer = _writer(path)
    with atomic_output(path) as tmp:
        writer(traj, tmp)
    return path


def read_trajectories(path: str | Path) -> Trajectories:
    """Read a file written by :func:`write_trajectories` (or a PDEBench 1-D file)."""
    path = require_file(path, "trajectory")
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        reader = _read_hdf5
    elif suffix in NETCDF_SUFFIXES:
        reader = _read_netcdf
    else:
        raise UserError(f"{path}: unknown trajectory file type {suffix!r} (use .h5, .hdf5, .nc)")
    try:
        return reader(path)
    except UserError as err:
        raise UserError(f"{path}: {err}") from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"cannot read {path}: {str(err).splitlines()[0]}") from err


def _writer(path: Path):
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return _write_hdf5
    if suffix in NETCDF_SUFFIXES:
        return _write_netcdf
    raise UserError(f"unknown output type {suffix!r} for {path} (use .h5, .hdf5 or .nc)")


def _tensor(a: np.ndarray) -> Tensor:
    """A tensor owning a copy of ``a`` (xarray hands out read-only arrays)."""
    return torch.from_numpy(np.array(a))


def _attributes(attrs: dict) -> tuple[str, dict[str, float]]:
    """The equation name and the numeric scalar attributes (the equation's parameters)."""
    equation = attrs.pop("equation", "")
    equation = equation.decode() if isinstance(equation, bytes) else str(equation)
    params = {k: float(v) for k, v in attrs.items()
              if np.ndim(v) == 0 and np.issubdtype(np.asarray(v).dtype, np.number)}
    return equation, params


def _write_hdf5(traj: Trajectories, path: Path) -> None:
    with h5py.File(path, "w", track_order=True) as h5:
        h5.create_dataset("tensor", data=traj.u.numpy(), track_times=False)
        h5.create_dataset("x-coordinate", data=traj.x.numpy(), track_times=False)
        h5.create_dataset("t-coordinate", data=traj.t.numpy(), track_times=False)
        if traj.y is not None:
            h5.create_dataset("y-coordinate", data=traj.y.numpy(), track_times=False)
        if traj.forcing is not None:
            h5.create_dataset("forcing", data=traj.forcing.numpy(), track_times=False)
        h5.attrs["equation"] = traj.equation
        for key, value in traj.params.items():
            h5.attrs[key] = value


def checked_dataset(h5: h5py.File, name: str, what: str = "", *,
                    whole: bool = True) -> h5py.Dataset:
    """The HDF5 dataset ``name``, refused (UserError) when it is missing, not numeric, kept
    outside the file (external storage, a virtual dataset: it could point anywhere), or, if
    it is to be read ``whole``, larger than the memory this machine can give (from its
    header, before reading)."""
    what = what or f"dataset {name!r}"
    if name not in h5 or not isinstance(h5[name], h5py.Dataset):
        raise UserError(f"no dataset {name!r} in the file (PDEBench layout expected)")
    ds = h5[name]
    if ds.is_virtual or ds.external:
        raise UserError(f"{what} is stored outside the file (external or virtual dataset); "
                        "only data inside the file are read")
    if not np.issubdtype(ds.dtype, np.number):
        raise UserError(f"{what} does not hold numbers")
    if whole:
        check_memory(float(ds.size) * max(ds.dtype.itemsize, 4) * 3,
                     f"reading {what} of shape {ds.shape}")
    return ds


def _dataset(h5: h5py.File, name: str) -> np.ndarray:
    return np.asarray(checked_dataset(h5, name))


def _read_hdf5(path: Path) -> Trajectories:
    with h5py.File(path, "r") as h5:
        u = _dataset(h5, "tensor")
        x, t = _dataset(h5, "x-coordinate"), _dataset(h5, "t-coordinate")
        y = _dataset(h5, "y-coordinate") if u.ndim == 4 else None
        forcing = _dataset(h5, "forcing") if "forcing" in h5 else None
        attrs = dict(h5.attrs)
    if u.ndim >= 2 and len(t) == u.shape[1] + 1:  # PDEBench's 1-D files: nt + 1 time stamps
        t = t[:-1]
    equation, params = _attributes(attrs)
    return Trajectories(_tensor(u), _tensor(x), _tensor(t),
                        None if y is None else _tensor(y),
                        None if forcing is None else _tensor(forcing), equation, params)


def _write_netcdf(traj: Trajectories, path: Path) -> None:
    import xarray as xr

    dims = ("sample", "t", "x") + (() if traj.y is None else ("y",))
    data = {"u": (dims, traj.u.numpy(), {"long_name": "solution"})}
    if traj.forcing is not None:
        data["forcing"] = (dims, traj.forcing.numpy(), {"long_name": "source term"})
    coords = {"sample": np.arange(traj.n), "t": traj.t.numpy(), "x": traj.x.numpy()}
    if traj.y is not None:
        coords["y"] = traj.y.numpy()
    ds = xr.Dataset(data, coords=coords, attrs={"equation": traj.equation, **traj.params})
    ds.to_netcdf(path, engine="h5netcdf")


def _read_netcdf(path: Path) -> Trajectories:
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        if "u" not in ds:
            raise UserError("no variable 'u' in the file")
        spatial = ("x", "y") if "y" in ds["u"].dims else ("x",)
        dims = ("sample", "t", *spatial)
        if set(ds["u"].dims) != set(dims):
            raise UserError(f"variable 'u' has dims {ds['u'].dims}, expected {dims}")
        for name in ("u", "forcing"):
            if name in ds:
                check_memory(float(ds[name].size) * max(ds[name].dtype.itemsize, 4) * 3,
                             f"reading variable {name!r} of shape {ds[name].shape}")
        u = ds["u"].transpose(*dims).values
        forcing = None
        if "forcing" in ds:
            forcing = ds["forcing"].transpose(*dims).values
        coords = {d: ds[d].values for d in dims[1:]}
        attrs = dict(ds.attrs)
    equation, params = _attributes(attrs)
    return Trajectories(_tensor(u), _tensor(coords["x"]),
                        _tensor(coords["t"]),
                        _tensor(coords["y"]) if "y" in coords else None,
                        None if forcing is None else _tensor(forcing), equation, params)
