"""Point observations (radiosonde-like): CSV I/O, validation and bilinear observation operators.

CSV columns: ``time,latitude,longitude,variable,value[,sigma]``, one row per observation;
``value`` and ``sigma`` (its error std) in the variable's SI unit (see ``era5.VARIABLES``).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import xarray as xr

from polydiff.physics.era5 import VARIABLES
from polydiff.runtime import UserError, atomic_output, require_file

COLUMNS = ["time", "latitude", "longitude", "variable", "value", "sigma"]
DEFAULT_SIGMA = {"t2m": 0.5, "u10": 1.0, "v10": 1.0, "msl": 50.0, "z": 50.0, "t": 0.5,
                 "q": 5e-4, "vo": 2e-6, "tprate": 5e-6}


def read_observations(path: str | Path) -> pd.DataFrame:
    """Read and validate an observations CSV; missing ``sigma`` takes the variable's default."""
    path = require_file(path, "observations")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not a readable CSV file ({type(err).__name__})") from err
    missing = [c for c in COLUMNS[:5] if c not in df.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} "
                        f"(need {','.join(COLUMNS[:5])}[,sigma])")
    if "sigma" not in df.columns:
        df["sigma"] = np.nan
    df = df[COLUMNS].copy()
    df["variable"] = df["variable"].astype(str).str.strip()
    unknown = sorted(set(df["variable"]) - set(VARIABLES))
    if unknown:
        raise UserError(f"{path}: unknown variable(s) {', '.join(unknown)} "
                        f"(known: {', '.join(VARIABLES)})")
    df["sigma"] = df["sigma"].fillna(df["variable"].map(DEFAULT_SIGMA))
    try:
        df["time"] = pd.to_datetime(df["time"])
        for col in ("latitude", "longitude", "value", "sigma"):
            df[col] = pd.to_numeric(df[col])
    except (ValueError, TypeError) as err:
        raise UserError(f"{path}: {str(err).splitlines()[0]}") from err
    validate(df, str(path))
    return df.reset_index(drop=True)


def validate(df: pd.DataFrame, where: str = "observations") -> None:
    """NaNs, non-positive sigmas and latitudes beyond the poles are UserErrors."""
    if df.empty:
        raise UserError(f"{where}: no observations")
    bad = df[["latitude", "longitude", "value", "sigma"]].isna().any(axis=1) | df["time"].isna()
    if bad.any():
        raise UserError(f"{where}: NaN or missing entries in row {int(np.argmax(bad)) + 2}")
    if (df["sigma"] <= 0).any():
        raise UserError(f"{where}: sigma must be positive")
    if (df["latitude"].abs() > 90).any():
        raise UserError(f"{where}: latitude beyond ±90 degrees")


def write_observations(df: pd.DataFrame, path: str | Path) -> Path:
    """Write observations as CSV (ISO times), whole or not at all."""
    out = df[COLUMNS].copy()
    out["time"] = pd.to_datetime(out["time"]).dt.strftime("%Y-%m-%dT%H:%M:%S")
    with atomic_output(path) as tmp:
        out.to_csv(tmp, index=False, float_format="%.9g")
    return Path(path)


def _wrap_longitude(lon: np.ndarray, grid_lon: np.ndarray) -> np.ndarray:
    """Longitudes shifted by multiples of 360° to the grid's convention."""
    centre = 0.5 * (grid_lon[0] + grid_lon[-1])
    return (lon - centre + 180.0) % 360.0 - 180.0 + centre


class Bilinear(NamedTuple):
    """Bilinear interpolation at M points: flat grid indices (M, 4) and weights (M, 4)."""

    index: np.ndarray
    weight: np.ndarray


def bilinear(lat: np.ndarray, lon: np.ndarray, grid_lat: np.ndarray,
             grid_lon: np.ndarray) -> Bilinear:
    """Bilinear weights of points (M,) on a regular ascending (H,) × (W,) grid.

    Points must lie inside the hull of the grid's cell centres (else a UserError); the flat
    index is ``i * W + j``. Exact for fields linear in latitude and longitude.
    """
    lon = _wrap_longitude(np.asarray(lon, dtype=np.float64), grid_lon)
    lat = np.asarray(lat, dtype=np.float64)
    tol = 1e-6 * max(1.0, abs(grid_lat[-1] - grid_lat[0]))
    outside = ((lat < grid_lat[0] - tol) | (lat > grid_lat[-1] + tol)
               | (lon < grid_lon[0] - tol) | (lon > grid_lon[-1] + tol))
    if outside.any():
        k = int(np.argmax(outside))
        raise UserError(f"{int(outside.sum())} observation(s) outside the domain, e.g. at "
                        f"({lat[k]:.3f}N, {lon[k]:.3f}E); the grid spans latitude "
                        f"{grid_lat[0]:.3f}..{grid_lat[-1]:.3f}, longitude "
                        f"{grid_lon[0]:.3f}..{grid_lon[-1]:.3f}")
    h, w = len(grid_lat), len(grid_lon)
    fi = (lat - grid_lat[0]) / (grid_lat[1] - grid_lat[0])
    fj = (lon - grid_lon[0]) / (grid_lon[1] - grid_lon[0])
    i0 = np.clip(np.floor(fi).astype(int), 0, h - 2)
    j0 = np.clip(np.floor(fj).astype(int), 0, w - 2)
    t, s = np.clip(fi - i0, 0, 1), np.clip(fj - j0, 0, 1)
    index = np.stack([i0 * w + j0, i0 * w + j0 + 1, (i0 + 1) * w + j0, (i0 + 1) * w + j0 + 1], 1)
    weight = np.stack([(1 - t) * (1 - s), (1 - t) * s, t * (1 - s), t * s], 1)
    return Bilinear(index, weight)


def interpolate(field: np.ndarray, b: Bilinear) -> np.ndarray:
    """Values of ``field`` (..., H, W) at the points of ``b``: (..., M)."""
    flat = field.reshape(*field.shape[:-2], -1)
    return (flat[..., b.index] * b.weight).sum(-1)


def observation_matrix(df: pd.DataFrame, variables: tuple[str, ...], grid_lat: np.ndarray,
                       grid_lon: np.ndarray) -> torch.Tensor:
    """Sparse (M, C·H·W) matrix of bilinear weights for the rows of ``df``.

    Row m reads variable ``df.variable[m]`` (channel index in ``variables``) at its point;
    a variable outside ``variables`` is a UserError.
    """
    unknown = sorted(set(df["variable"]) - set(variables))
    if unknown:
        raise UserError(f"observed variable(s) {', '.join(unknown)} not known to the model "
                        f"(it knows {', '.join(variables)})")
    h, w = len(grid_lat), len(grid_lon)
    b = bilinear(df["latitude"].to_numpy(), df["longitude"].to_numpy(), grid_lat, grid_lon)
    channel = np.array([variables.index(v) for v in df["variable"]])
    cols = b.index + channel[:, None] * h * w
    rows = np.repeat(np.arange(len(df)), 4)
    return torch.sparse_coo_tensor(
        torch.as_tensor(np.stack([rows, cols.ravel()])), torch.as_tensor(b.weight.ravel()),
        (len(df), len(variables) * h * w), check_invariants=True).coalesce()


def simulate_observations(truth: xr.Dataset, n_stations: int, generator: np.random.Generator,
                          *, variables: tuple[str, ...] | None = None,
                          sigma: dict[str, float] | None = None) -> pd.DataFrame:
    """Radiosonde-like observations of ``truth`` at ``n_stations`` fixed random sites.

    Every station reports every variable at every time: the bilinear value of the truth plus
    Gaussian noise of std ``sigma[variable]`` (default ``DEFAULT_SIGMA``).
    """
    variables = tuple(variables or truth.data_vars)
    sigma = {**DEFAULT_SIGMA, **(sigma or {})}
    lat, lon = truth["latitude"].values, truth["longitude"].values
    s_lat = generator.uniform(lat[0], lat[-1], n_stations)
    s_lon = generator.uniform(lon[0], lon[-1], n_stations)
    b = bilinear(s_lat, s_lon, lat, lon)
    rows = []
    for var in variables:
        values = interpolate(truth[var].values.astype(np.float64), b)  # (time, M)
        noisy = values + sigma[var] * generator.standard_normal(values.shape)
        for k, t in enumerate(truth["time"].values):
            rows.append(pd.DataFrame({"time": t, "latitude": s_lat, "longitude": s_lon,
                                      "variable": var, "value": noisy[k], "sigma": sigma[var]}))
    return pd.concat(rows, ignore_index=True)
