"""Synthetic test data: fine truth fields, their block means, radiosonde-like observations."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import xarray as xr

from polydiff.physics.atmos_fields import FieldConfig, generate_fields
from polydiff.physics.interpolation import conservative_coarsen
from polydiff.physics.observations import simulate_observations
from polydiff.runtime import UserError, make_generator


class SyntheticData(NamedTuple):
    """A truth dataset (time, latitude, longitude) and what an observer would see of it."""

    truth: xr.Dataset
    coarse: xr.Dataset | None  # block means, when a factor was asked for
    obs: pd.DataFrame | None  # station observations, when stations were asked for
    factor: int | None


def coarsen_dataset(ds: xr.Dataset, factor: int) -> xr.Dataset:
    """Conservative (area-weighted) block means of every (time, latitude, longitude)
    variable, as ERA5 regridding does; the coarse coordinates are the block centres."""
    data = {}
    lat_fine = ds["latitude"].values
    for name, da in ds.data_vars.items():
        values = conservative_coarsen(da.values, lat_fine, factor)
        data[name] = (da.dims, values.astype(np.float32), da.attrs)
    lat = ds["latitude"].values.reshape(-1, factor).mean(1)
    lon = ds["longitude"].values.reshape(-1, factor).mean(1)
    out = xr.Dataset(data, coords={"time": ds["time"].values, "latitude": lat,
                                   "longitude": lon}, attrs=dict(ds.attrs))
    for c in ("latitude", "longitude", "time"):
        out[c].attrs = ds[c].attrs
    out.attrs["coarsening_factor"] = factor
    return out


def fields_like(model: str | None, **overrides) -> FieldConfig:
    """The field settings a prior was trained on (``weather``, ``turbulence`` or a
    checkpoint folder; None: the defaults), with the ``overrides`` that are not None."""
    from dataclasses import replace

    from polydiff.apps.atmos.model import APP, bundled_or_folder
    from polydiff.apps.contract import read_app_meta
    from polydiff.diffusion.config import from_dict

    given = {k: v for k, v in overrides.items() if v is not None}
    if model is None:
        return FieldConfig(**given)
    folder = bundled_or_folder(model)
    if not folder.is_dir():
        raise UserError(f"--like {model}: not weather, turbulence or a checkpoint folder")
    fields = read_app_meta(folder, APP).get("config", {}).get("fields")
    if not isinstance(fields, dict):
        raise UserError(f"--like {model}: its polydiff.json has no config.fields")
    try:
        cfg = from_dict(fields, FieldConfig, where=f"{folder}/polydiff.json:config.fields")
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"--like {model}: bad config.fields ({err})") from err
    return replace(cfg, **given)


def check_request(cfg: FieldConfig, coarsen: int | None) -> None:
    """Refuse a factor that does not divide the grid (before any simulation)."""
    if coarsen is not None and (coarsen < 1 or cfg.size % coarsen):
        raise UserError(f"grid {cfg.size}x{cfg.size} is not a multiple of the factor {coarsen}")


def synthetic_data(n: int, cfg: FieldConfig, *, seed: int, trajectories: int,
                   coarsen: int | None, stations: int | None,
                   device: torch.device | str = "cpu", progress: bool = False) -> SyntheticData:
    """``n`` truth states simulated on ``device``, their ``coarsen``× block means and
    ``stations`` observing every variable at every time (seeded by ``seed``)."""
    check_request(cfg, coarsen)
    if stations is not None and stations < 1:
        raise UserError("--obs needs at least one station")
    truth = generate_fields(n, cfg, make_generator(seed, device), trajectories=trajectories,
                            progress=progress).drop_vars("trajectory")
    coarse = coarsen_dataset(truth, coarsen) if coarsen else None
    obs = simulate_observations(truth, stations, np.random.default_rng(seed)) if stations \
        else None
    return SyntheticData(truth, coarse, obs, coarsen)
