"""A user's input against what the atmos model knows: one-line warnings on stderr.

Nothing here refuses input (that is the readers' job); it says, once per command, when the
input lies outside what the model was trained on: another grid spacing, another region,
or values whose range suggests other units (°C for K, hPa for Pa).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import xarray as xr

from polydiff.apps.atmos.normalise import Normaliser
from polydiff.physics.atmos_fields import FieldConfig
from polydiff.runtime import is_main_process

# Physically plausible SI ranges, and what values in another unit would look like:
# name -> (low, high, unit hint, function from the suspected unit to SI).
PLAUSIBLE = {
    "t2m": (170.0, 340.0, "°C instead of K", lambda v: v + 273.15),
    "t": (150.0, 340.0, "°C instead of K", lambda v: v + 273.15),
    "msl": (85_000.0, 110_000.0, "hPa instead of Pa", lambda v: v * 100.0),
}
FAR = 10.0  # climatological stds from the model's mean that count as "far"


def warn(message: str) -> None:
    """``warning: <message>`` on stderr, from the main process only."""
    if is_main_process():
        print(f"warning: {message}", file=sys.stderr, flush=True)


def _step(coord: np.ndarray) -> float:
    return float(np.median(np.diff(coord))) if len(coord) > 1 else float("nan")


def grid_warnings(cfg: FieldConfig, lat: np.ndarray, lon: np.ndarray) -> list[str]:
    """Warnings for a fine grid (cell-centre ``lat``, ``lon``, degrees) unlike the model's."""
    out = []
    d_lat, d_lon = _step(lat), _step(lon)
    if not (np.isclose(d_lat, cfg.resolution, rtol=1e-3)
            and np.isclose(d_lon, cfg.resolution, rtol=1e-3)):
        out.append(f"the fine grid spacing is {d_lat:g}° x {d_lon:g}° but the model was "
                   f"trained at {cfg.resolution:g}°: its small-scale statistics may not "
                   "transfer")
    south, west = cfg.lat_south, cfg.lon_west
    span = cfg.size * cfg.resolution
    half = 0.5 * cfg.resolution
    lat0, lon0 = float(lat[0]) - 0.5 * d_lat, float(lon[0]) - 0.5 * d_lon
    lat1, lon1 = float(lat[-1]) + 0.5 * d_lat, float(lon[-1]) + 0.5 * d_lon
    shift = (lon0 - west + 180.0) % 360.0 - 180.0
    if abs(lat0 - south) > half or abs(lat1 - (south + span)) > half or abs(shift) > half \
            or abs((lon1 - lon0) - span) > half:
        out.append(f"the region {lat0:g}..{lat1:g}N, {lon0:g}..{lon1:g}E is not the one the "
                   f"model was trained on ({south:g}..{south + span:g}N, {west:g}.."
                   f"{west + span:g}E): its climatology (the mean state it adds) is that box's")
    return out


def value_warnings(name: str, values: np.ndarray, norm: Normaliser, where: str) -> list[str]:
    """A warning when ``values`` of variable ``name`` look like other units or are far from
    anything the model saw (more than FAR climatological stds from its mean)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return []
    mean = float(values.mean())
    if name in PLAUSIBLE:
        low, high, hint, to_si = PLAUSIBLE[name]
        if not low <= mean <= high:
            guess = float(to_si(mean))
            if low <= guess <= high:
                return [f"{where}: {name} averages {mean:.4g}, implausible in SI units; "
                        f"are they {hint}?"]
            return [f"{where}: {name} averages {mean:.4g}, outside the plausible "
                    f"{low:g}..{high:g} of its SI unit"]
    if name in norm.variables:
        c = norm.index(name)
        z = abs(mean - float(norm.mean[c].mean())) / float(norm.std[c])
        if z > FAR:
            return [f"{where}: {name} averages {mean:.4g}, {z:.0f} climatological stds from "
                    f"the model's {float(norm.mean[c].mean()):.4g}: other units or another "
                    "climate than it was trained on?"]
    return []


def input_warnings(cfg: FieldConfig, norm: Normaliser, *, lat: np.ndarray, lon: np.ndarray,
                   coarse: xr.Dataset | None, obs: pd.DataFrame | None) -> list[str]:
    """Every warning for one superres call: the fine grid, the coarse values (their first
    time step, already loaded cheaply), the observations per variable."""
    out = grid_warnings(cfg, lat, lon)
    if coarse is not None:
        first = coarse.isel(time=0).load()
        for name in norm.variables:
            if name in first.data_vars:
                out += value_warnings(name, first[name].values, norm, "the coarse file")
    if obs is not None:
        for name, rows in obs.groupby("variable"):
            out += value_warnings(str(name), rows["value"].to_numpy(), norm, "observations")
    return out
