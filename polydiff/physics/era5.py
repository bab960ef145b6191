"""ERA5-style NetCDF: read any of its common layouts into one normal form, and write CF NetCDF.

The normal form (what :func:`normalise` returns and every atmos command works on):

* variables by ERA5 short name (``t2m``, ``u10``, ``v10``, ``msl``, ``z``, ``t``, ``q``) in SI
  units, each with ``standard_name``, ``units`` and ``long_name``;
* dimensions ``time``, optionally ``level`` (hPa), ``latitude`` (ascending, degrees_north),
  ``longitude`` (ascending, degrees_east, contiguous: within −180..180, except for a region
  across the dateline, whose longitudes continue past 180, e.g. 170..190, whether the file
  said 170..190 or 170..180, −180..−170);
* no ``expver`` dimension (ERA5 final and ERA5T merged: the first valid value wins).

Files open lazily with dask chunks of ``batch`` time steps; :func:`time_batches` walks them.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import xarray as xr

from polydiff import __version__
from polydiff.runtime import UserError, atomic_output, require_file


class Variable(NamedTuple):
    """CF metadata of one variable; ``levels``: whether it lives on pressure levels;
    ``nonnegative``: whether its values cannot be below 0 (rain, humidity)."""

    standard_name: str
    units: str
    long_name: str
    levels: bool = False
    nonnegative: bool = False


VARIABLES: dict[str, Variable] = {
    "t2m": Variable("air_temperature", "K", "2 metre temperature"),
    "u10": Variable("eastward_wind", "m s-1", "10 metre U wind component"),
    "v10": Variable("northward_wind", "m s-1", "10 metre V wind component"),
    "msl": Variable("air_pressure_at_mean_sea_level", "Pa", "Mean sea level pressure"),
    "z": Variable("geopotential", "m2 s-2", "Geopotential", levels=True),
    "t": Variable("air_temperature", "K", "Temperature", levels=True),
    "q": Variable("specific_humidity", "kg kg-1", "Specific humidity", levels=True,
                  nonnegative=True),
    "vo": Variable("atmosphere_relative_vorticity", "s-1", "Relative vorticity"),
    "tprate": Variable("precipitation_flux", "kg m-2 s-1", "Total precipitation rate",
                       nonnegative=True),
}

# Other names ERA5 files use for the same variables (CDS long names, old netCDF names).
_ALIASES = {
    "2t": "t2m", "2m_temperature": "t2m", "10u": "u10", "10m_u_component_of_wind": "u10",
    "10v": "v10", "10m_v_component_of_wind": "v10", "mean_sea_level_pressure": "msl",
    "geopotential": "z", "temperature": "t", "specific_humidity": "q",
}

_DIMS = {"valid_time": "time", "pressure_level": "level", "isobaricInhPa": "level",
         "lat": "latitude", "lon": "longitude"}

# Accepted units per SI unit: name -> (scale, offset) so that SI = scale * value + offset.
_UNITS = {
    "K": {"K": (1.0, 0.0), "kelvin": (1.0, 0.0), "degC": (1.0, 273.15),
          "degrees_Celsius": (1.0, 273.15), "C": (1.0, 273.15)},
    "m s-1": {"m s-1": (1.0, 0.0), "m s**-1": (1.0, 0.0), "m/s": (1.0, 0.0),
              "m.s-1": (1.0, 0.0)},
    "Pa": {"Pa": (1.0, 0.0), "hPa": (100.0, 0.0), "mbar": (100.0, 0.0)},
    "m2 s-2": {"m2 s-2": (1.0, 0.0), "m**2 s**-2": (1.0, 0.0)},
    "kg kg-1": {"kg kg-1": (1.0, 0.0), "kg kg**-1": (1.0, 0.0), "1": (1.0, 0.0)},
    "s-1": {"s-1": (1.0, 0.0), "s**-1": (1.0, 0.0), "1/s": (1.0, 0.0)},
    "kg m-2 s-1": {"kg m-2 s-1": (1.0, 0.0), "kg m**-2 s**-1": (1.0, 0.0),
                   "mm s-1": (1.0, 0.0), "mm h-1": (1.0 / 3600.0, 0.0),
                   "mm/h": (1.0 / 3600.0, 0.0)},
}


CHUNK_BYTES = 16 * 2**20  # bytes of one variable that one dask chunk holds (at most ~)
_TIME_DIMS = ("time", "valid_time")


def time_chunk(ds: xr.Dataset, dim: str, batch: int) -> int:
    """Time steps per dask chunk: at least ``batch``, more while a chunk of the largest
    variable stays under CHUNK_BYTES (a multi-year file of small fields is then a few
    chunks, not a task per step: the graph stays small, and reading one step reads one
    chunk, never the whole file)."""
    per_step = max((da.dtype.itemsize * da.size // max(da.sizes[dim], 1)
                    for da in ds.data_vars.values() if dim in da.dims), default=1)
    return max(batch, CHUNK_BYTES // max(per_step, 1))


def open_era5(path: str | Path, *, batch: int = 16) -> xr.Dataset:
    """Open an ERA5-style NetCDF file lazily, normalised: dask chunks of at least ``batch``
    time steps (see :func:`time_chunk`); nothing is read until a time slice is loaded."""
    path = require_file(path, "NetCDF")
    try:
        ds = xr.open_dataset(path)  # lazy: only the header and coordinates are read
        dim = next((d for d in _TIME_DIMS if d in ds.dims), None)
        ds = ds.chunk({dim: time_chunk(ds, dim, batch)} if dim else {})
    except Exception as err:  # xarray raises many kinds of errors on a corrupt file
        raise UserError(f"{path} is not a readable NetCDF file ({type(err).__name__})") from err
    return normalise(ds)


def _short_name(name: str, da: xr.DataArray) -> str | None:
    """The ERA5 short name of a data variable, from its name or its CF standard_name."""
    if name in VARIABLES:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    std = da.attrs.get("standard_name")
    on_levels = "level" in da.dims
    for short, var in VARIABLES.items():
        if var.standard_name == std and var.levels == on_levels:
            return short
    return None


def _merge_expver(ds: xr.Dataset) -> xr.Dataset:
    """Merge ERA5 (expver 1) and ERA5T (expver 5): the first non-missing value along expver."""
    if "expver" in ds.dims:
        merged = ds.isel(expver=0)
        for i in range(1, ds.sizes["expver"]):
            merged = merged.fillna(ds.isel(expver=i))
        ds = merged
    return ds.drop_vars("expver", errors="ignore")


def _to_si(da: xr.DataArray, short: str) -> xr.DataArray:
    """Convert to the SI unit of ``short`` or raise a UserError naming the unit."""
    target = VARIABLES[short].units
    units = str(da.attrs.get("units", target))
    if units not in _UNITS[target]:
        raise UserError(f"variable {short} has units {units!r}; expected {target}")
    scale, offset = _UNITS[target][units]
    out = da * scale + offset if (scale, offset) != (1.0, 0.0) else da
    var = VARIABLES[short]
    out.attrs = {"standard_name": var.standard_name, "units": var.units,
                 "long_name": var.long_name}
    return out


def normalise(ds: xr.Dataset) -> xr.Dataset:
    """Bring an ERA5-style dataset to the normal form described in the module docstring."""
    ds = ds.rename({k: v for k, v in _DIMS.items() if k in ds.variables or k in ds.dims})
    for coord in ("latitude", "longitude"):
        if coord not in ds.coords:
            raise UserError(f"the dataset has no {coord} coordinate")
    ds = _merge_expver(ds)
    renamed = {}
    for name, da in ds.data_vars.items():
        short = _short_name(str(name), da)
        if short is not None:
            renamed[short] = _to_si(da, short)
    if not renamed:
        raise UserError(f"no known variable in the dataset (known: {', '.join(VARIABLES)}; "
                        f"found: {', '.join(map(str, ds.data_vars)) or 'none'})")
    out = xr.Dataset(renamed, attrs=ds.attrs)
    out = out.assign_coords(longitude=contiguous_longitudes(out["longitude"].values))
    out = out.sortby("latitude").sortby("longitude")
    out["latitude"].attrs = {"standard_name": "latitude", "units": "degrees_north"}
    out["longitude"].attrs = {"standard_name": "longitude", "units": "degrees_east"}
    if "level" in out.coords:
        out["level"].attrs = {"standard_name": "air_pressure", "units": "hPa",
                              "long_name": "pressure level"}
    if "time" in out.coords:
        out["time"].attrs.pop("units", None)
        out["time"].attrs.update({"standard_name": "time"})
    return out


def contiguous_longitudes(lon: np.ndarray) -> np.ndarray:
    """Longitudes (degrees) in −180..180, or running on past 180 when they cross the dateline.

    The region starts after the largest gap between the (wrapped, sorted) longitudes: when
    that gap is the one across ±180 (or the grid is global) they stay in −180..180;
    otherwise the points west of the gap get +360, so a 170E..170W box is 170..190.
    """
    wrapped = (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0
    points = np.unique(wrapped)
    if len(points) < 2:
        return wrapped
    gaps = np.diff(np.append(points, points[0] + 360.0))
    if gaps[-1] >= gaps.max() - 1e-9:  # the widest gap spans the dateline: no crossing
        return wrapped
    start = points[int(np.argmax(gaps)) + 1]
    return np.where(wrapped >= start, wrapped, wrapped + 360.0)


def same_longitudes(a: np.ndarray, b: np.ndarray, atol: float = 1e-4) -> bool:
    """Whether two longitude arrays name the same meridians (modulo 360 degrees)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(np.abs((a - b + 180.0) % 360.0 - 180.0) <= atol))


def select(ds: xr.Dataset, names: list[str]) -> xr.Dataset:
    """The variables ``names`` of a normalised dataset, or a UserError naming what is missing."""
    unknown = [n for n in names if n not in ds.data_vars]
    if unknown:
        raise UserError(f"variable(s) {', '.join(unknown)} not in the file "
                        f"(it has {', '.join(map(str, ds.data_vars))})")
    return ds[names]


def time_batches(ds: xr.Dataset, batch: int) -> Iterator[xr.Dataset]:
    """Consecutive slices of ``batch`` time steps, each loaded into memory and NaN-checked."""
    for start in range(0, ds.sizes["time"], batch):
        part = ds.isel(time=slice(start, start + batch)).load()
        for name, da in part.data_vars.items():
            if not np.isfinite(da.values).all():
                raise UserError(f"variable {name} contains NaN or infinite values "
                                f"(time steps {start}..{start + part.sizes['time'] - 1})")
        yield part


def history_line(command: str) -> str:
    """One CF ``history`` entry: the command, stamped with ``SOURCE_DATE_EPOCH`` when set.

    No wall-clock time by default, so that the same command and seed give the same file,
    byte for byte (the reproducible-builds convention gives a time when one is wanted).
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is None or not epoch.isdigit():
        return f"polydiff {__version__}: {command}"
    when = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
    return f"{when.strftime('%Y-%m-%dT%H:%M:%SZ')}: polydiff {__version__}: {command}"


def write_netcdf(ds: xr.Dataset, path: str | Path, *, command: str) -> Path:
    """Write ``ds`` as CF-1.8 NetCDF-4 (float32, compressed) whole or not at all.

    The ``history`` attribute gains one line for ``command``; variables keep their attributes.
    """
    ds = ds.copy()
    previous = ds.attrs.get("history")
    line = history_line(command)
    ds.attrs.update({"Conventions": "CF-1.8",
                     "history": f"{line}\n{previous}" if previous else line})
    encoding = {name: {"dtype": "float32", "zlib": True, "complevel": 4}
                for name, da in ds.data_vars.items() if da.dtype.kind == "f"}
    path = Path(path)
    with atomic_output(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
    return path
