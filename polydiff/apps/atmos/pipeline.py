"""The atmos commands as functions of files: generate, super-resolve, evaluate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import xarray as xr

from polydiff.apps.atmos.plots import extent_of, plot_maps
from polydiff.apps.atmos.superres import SuperresOptions, load_model, superres
from polydiff.physics.atmos_fields import FIELD_VARIABLES, FieldConfig, block_mean, generate_fields
from polydiff.physics.atmos_metrics import (
    crps_ensemble,
    lat_weighted_rmse,
    latitude_weights,
    radial_spectrum,
    spread_skill,
)
from polydiff.physics.era5 import open_era5, select, write_netcdf
from polydiff.physics.observations import (
    read_observations,
    simulate_observations,
    write_observations,
)
from polydiff.runtime import UserError, make_generator


def coarsen_dataset(ds: xr.Dataset, factor: int) -> xr.Dataset:
    """Block means of every (time, latitude, longitude) variable and of the coordinates."""
    data = {}
    for name, da in ds.data_vars.items():
        values = block_mean(torch.as_tensor(da.values, dtype=torch.float64), factor).numpy()
        data[name] = (da.dims, values.astype(np.float32), da.attrs)
    lat = ds["latitude"].values.reshape(-1, factor).mean(1)
    lon = ds["longitude"].values.reshape(-1, factor).mean(1)
    out = xr.Dataset(data, coords={"time": ds["time"].values, "latitude": lat,
                                   "longitude": lon}, attrs=dict(ds.attrs))
    for c in ("latitude", "longitude", "time"):
        out[c].attrs = ds[c].attrs
    out.attrs["coarsening_factor"] = factor
    return out


def generate_files(out: Path, *, n: int, cfg: FieldConfig, seed: int, trajectories: int,
                   coarsen: int | None, n_obs: int | None, command: str) -> list[Path]:
    """Write truth ``out`` (+ ``<stem>_coarse.nc``, ``<stem>_obs.csv``) and a PNG.

    Returns [truth, coarse or None, observations or None, png].
    """
    out = Path(out)
    if coarsen is not None and (coarsen < 1 or cfg.size % coarsen):
        raise UserError(f"grid {cfg.size}x{cfg.size} is not a multiple of the factor {coarsen}")
    if n_obs is not None and n_obs < 1:
        raise UserError("--obs needs at least one station")
    truth = generate_fields(n, cfg, make_generator(seed), trajectories=trajectories,
                            progress=True)
    coarse = coarsen_dataset(truth, coarsen) if coarsen else None
    obs = None
    if n_obs:
        obs = simulate_observations(truth, n_obs, np.random.default_rng(seed))
    paths: list[Path | None] = [write_netcdf(truth.drop_vars("trajectory"), out,
                                             command=command)]
    paths.append(write_netcdf(coarse, out.with_name(f"{out.stem}_coarse.nc"), command=command)
                 if coarse is not None else None)
    paths.append(write_observations(obs, out.with_name(f"{out.stem}_obs.csv"))
                 if obs is not None else None)
    columns = {"truth": {v: truth[v].values[0] for v in FIELD_VARIABLES}}
    if coarse is not None:
        columns[f"coarse x{coarsen}"] = {v: np.kron(coarse[v].values[0], np.ones((coarsen,) * 2))
                                        for v in FIELD_VARIABLES}
    paths.append(plot_maps(out.with_suffix(".png"), columns,
                           extent_of(truth.latitude.values, truth.longitude.values),
                           title=f"synthetic fields, {str(truth.time.values[0])[:16]}"))
    return paths


def _grid_from_template(path: Path, obs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    template = open_era5(path)
    times = np.array(sorted(obs["time"].unique()), dtype="datetime64[ns]")
    return times, template["latitude"].values, template["longitude"].values


def run_superres(*, coarse: Path | None, obs: Path | None, grid: Path | None, out: Path,
                 opts: SuperresOptions, model: Path | None, device: torch.device, seed: int,
                 command: str) -> tuple[Path, Path]:
    """Read the inputs, sample the ensemble, write the NetCDF and its PNG."""
    # 1. check and read the inputs (nothing is written before they all pass)
    atmos = load_model(model, device)
    observations = read_observations(obs) if obs is not None else None
    coarse_ds = open_era5(coarse, batch=opts.batch) if coarse is not None else None
    if coarse_ds is not None:
        coarse_ds = select(coarse_ds, list(atmos.normaliser.variables))
    target = _grid_from_template(grid, observations) if coarse is None else None
    # 2. sample
    result = superres(atmos, opts, coarse=coarse_ds, obs=observations, grid=target,
                      generator=make_generator(seed, device), device=device)
    # 3. write
    nc = write_netcdf(result, out, command=command)
    variables = list(atmos.normaliser.variables)
    columns = {}
    if coarse_ds is not None:
        k = opts.factor
        columns[f"coarse x{k}"] = {v: np.kron(coarse_ds[v].values[0], np.ones((k, k)))
                                   for v in variables}
    columns["mean"] = {v: result[f"{v}_mean"].values[0] for v in variables}
    columns["member 0"] = {v: result[v].values[0, 0] for v in variables}
    columns["spread (std)"] = {v: result[f"{v}_std"].values[0] for v in variables}
    png = plot_maps(Path(out).with_suffix(".png"), columns,
                    extent_of(result.latitude.values, result.longitude.values),
                    title=f"{opts.members} members, {str(result.time.values[0])[:16]}")
    return nc, png


def ensemble_metrics(members: np.ndarray, truth: np.ndarray, lat: np.ndarray) -> dict:
    """RMSE of the mean, CRPS, spread/skill and spectra for (M, T, H, W) members."""
    w = latitude_weights(lat)[:, None]
    crps = crps_ensemble(members, truth) if len(members) > 1 else np.abs(members[0] - truth)
    ss = spread_skill(members, truth, lat) if len(members) > 1 else None
    k, p_truth = radial_spectrum(truth)
    _, p_mean = radial_spectrum(members.mean(0))
    _, p_members = radial_spectrum(members)
    return {
        "rmse": float(np.sqrt(np.mean(lat_weighted_rmse(members.mean(0), truth, lat) ** 2))),
        "crps": float((crps * w).mean()),
        "spread": float(np.sqrt(np.mean(ss.spread**2))) if ss else 0.0,
        "spread_skill": float(np.sqrt(np.mean(ss.spread**2)) / np.sqrt(np.mean(ss.skill**2))
                              * np.sqrt((len(members) + 1) / len(members))) if ss else 0.0,
        "spectrum": {"wavenumber": k.tolist(), "truth": p_truth.mean(0).tolist(),
                     "mean": p_mean.mean(0).tolist(),
                     "members": p_members.mean((0, 1)).tolist()},
    }


def evaluate_files(truth_path: Path, pred_path: Path) -> dict:
    """Metrics of a superres ensemble file against a fine truth file, per variable."""
    truth = open_era5(truth_path)
    pred = xr.open_dataset(pred_path) if Path(pred_path).is_file() else None
    if pred is None:
        raise UserError(f"prediction file not found: {pred_path}")
    variables = [v for v in pred.data_vars if "member" in pred[v].dims]
    if not variables:
        raise UserError(f"{pred_path} holds no ensemble variable with a member dimension")
    truth = select(truth, variables)
    if (truth.sizes["latitude"], truth.sizes["longitude"]) != (pred.sizes["latitude"],
                                                               pred.sizes["longitude"]):
        raise UserError("truth and prediction grids differ")
    if not np.allclose(truth.latitude.values, pred.latitude.values, atol=1e-4):
        raise UserError("truth and prediction latitudes differ")
    missing = np.setdiff1d(pred.time.values, truth.time.values)
    if len(missing):
        raise UserError(f"time {str(missing[0])[:19]} of the prediction is not in the truth file")
    truth = truth.sel(time=pred.time.values)
    report = {"truth": str(truth_path), "pred": str(pred_path), "members": pred.sizes["member"],
              "times": pred.sizes["time"], "variables": {}}
    lat = pred.latitude.values
    for v in variables:
        m = ensemble_metrics(pred[v].values.astype(np.float64),
                             truth[v].values.astype(np.float64), lat)
        report["variables"][v] = {"units": pred[v].attrs.get("units", ""), **m}
    return report
