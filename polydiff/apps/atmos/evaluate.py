"""Scores of a super-resolved ensemble against the truth (WeatherBench-style metrics)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import xarray as xr

from polydiff.physics.atmos_metrics import (
    crps_ensemble,
    lat_weighted_rmse,
    latitude_weights,
    radial_spectrum,
    spread_skill,
)
from polydiff.physics.era5 import open_era5, same_longitudes, select
from polydiff.runtime import UserError, check_finite, check_memory


def ensemble_metrics(members: np.ndarray, truth: np.ndarray, lat: np.ndarray,
                     point: np.ndarray | None = None) -> dict:
    """RMSE of the mean, CRPS, spread/skill and spectra for (M, T, H, W) members.

    ``point`` (T, H, W): the point estimate that RMSE and the spectrum of the mean score
    instead of the ensemble mean (e.g. OI's exact posterior mean beside its samples).
    """
    point = members.mean(0) if point is None else point
    w = latitude_weights(lat)[:, None]
    crps = crps_ensemble(members, truth)  # one member: its absolute error
    ss = spread_skill(members, truth, lat) if len(members) > 1 else None
    k, p_truth = radial_spectrum(truth)
    _, p_mean = radial_spectrum(point)
    _, p_members = radial_spectrum(members)
    spread = float(np.sqrt(np.mean(ss.spread**2))) if ss else 0.0
    skill = float(np.sqrt(np.mean(ss.skill**2))) if ss else 0.0
    ratio = spread / skill * math.sqrt((len(members) + 1) / len(members)) if skill > 0 else None
    return {
        "rmse": float(np.sqrt(np.mean(lat_weighted_rmse(point, truth, lat) ** 2))),
        "crps": float((crps * w).mean()),
        "spread": spread,
        "spread_skill": ratio,  # None when the mean is exact (no skill error to compare)
        "spectrum": {"wavenumber": k.tolist(), "truth": p_truth.mean(0).tolist(),
                     "mean": p_mean.mean(0).tolist(),
                     "members": p_members.mean((0, 1)).tolist()},
    }


def _describe(values: np.ndarray) -> str:
    return f"{values[0]:g}..{values[-1]:g}" if len(values) else "none"


def check_coordinates(truth: xr.Dataset, pred: xr.Dataset) -> None:
    """Every coordinate must agree, or a one-line UserError names the first that does not:
    latitude and longitude (same points, longitudes modulo 360°), pressure levels when
    either has them, and every prediction time must be a truth time."""
    for name in ("latitude", "longitude"):
        if truth.sizes[name] != pred.sizes[name]:
            raise UserError(f"truth and prediction grids differ: {truth.sizes[name]} against "
                            f"{pred.sizes[name]} {name}s")
    t_lat, p_lat = truth.latitude.values, pred.latitude.values
    if not np.allclose(t_lat, p_lat, atol=1e-4):
        raise UserError(f"truth and prediction latitudes differ ({_describe(t_lat)} against "
                        f"{_describe(p_lat)})")
    t_lon, p_lon = truth.longitude.values, pred.longitude.values
    if not same_longitudes(t_lon, p_lon):
        raise UserError(f"truth and prediction longitudes differ ({_describe(t_lon)} against "
                        f"{_describe(p_lon)})")
    if ("level" in truth.dims) != ("level" in pred.dims):
        which = "truth" if "level" in truth.dims else "prediction"
        raise UserError(f"only the {which} has pressure levels")
    if "level" in truth.dims and not np.array_equal(truth.level.values, pred.level.values):
        raise UserError(f"truth and prediction pressure levels differ "
                        f"({_describe(truth.level.values)} against "
                        f"{_describe(pred.level.values)} hPa)")
    missing = np.setdiff1d(pred.time.values, truth.time.values)
    if len(missing):
        raise UserError(f"time {str(missing[0])[:19]} of the prediction is not in the truth file")


def evaluate_files(truth_path: Path, pred_path: Path) -> dict:
    """Metrics of a superres ensemble file against a fine truth file, per variable."""
    truth = open_era5(truth_path)
    if not Path(pred_path).is_file():
        raise UserError(f"prediction file not found: {pred_path}")
    try:
        pred = xr.open_dataset(pred_path)
    except Exception as err:  # xarray raises many kinds of errors on a corrupt file
        raise UserError(f"{pred_path} is not a readable NetCDF file "
                        f"({type(err).__name__})") from err
    missing_dims = [d for d in ("member", "time", "latitude", "longitude") if d not in pred.dims]
    if missing_dims:
        raise UserError(f"{pred_path} is not a superres ensemble (no {missing_dims[0]} "
                        "dimension)")
    variables = [v for v in pred.data_vars if "member" in pred[v].dims]
    if not variables:
        raise UserError(f"{pred_path} holds no ensemble variable with a member dimension")
    truth = select(truth, variables)
    check_coordinates(truth, pred)
    truth = truth.sel(time=pred.time.values)
    size = pred.sizes["member"] * pred.sizes["time"] * pred.sizes["latitude"] * \
        pred.sizes["longitude"]
    check_memory(size * 8 * 6, f"scoring {pred_path} ({pred.sizes['member']} members x "
                 f"{pred.sizes['time']} times x {pred.sizes['latitude']}x"
                 f"{pred.sizes['longitude']})")
    report = {"truth": str(truth_path), "pred": str(pred_path), "members": pred.sizes["member"],
              "times": pred.sizes["time"], "variables": {}}
    lat = pred.latitude.values
    for v in variables:
        members = pred[v].transpose("member", "time", "latitude", "longitude").values
        target = truth[v].transpose("time", "latitude", "longitude").values
        check_finite(members, f"variable {v} of {pred_path}", "a damaged prediction file")
        check_finite(target, f"variable {v} of {truth_path}", "a damaged truth file")
        m = ensemble_metrics(members.astype(np.float64), target.astype(np.float64), lat)
        report["variables"][v] = {"units": pred[v].attrs.get("units", ""), **m}
    return report
