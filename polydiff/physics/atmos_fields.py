"""Synthetic near-surface weather on a latitude–longitude box from 2-D turbulence.

A forced, dragged 2-D Navier–Stokes flow (:mod:`polydiff.physics.navier_stokes`) with a tracer
that is stirred across a background north–south gradient gives the anomalies; physical fields
follow from them with realistic magnitudes:

* ``u10``, ``v10`` (m s-1): the flow's velocity times a velocity scale, plus a mean westerly;
* ``msl`` (Pa): geostrophic balance with the winds, p' = −ρ f₀ ψ / r (r: the ratio of 10 m to
  geostrophic wind), plus the background gradient that balances the mean westerly;
* ``t2m`` (K): a background temperature falling northward plus the stirred tracer anomaly,
  scaled so that the anomaly and the background share one gradient.

The flow is doubly periodic over the box (the anomalies are periodic; the background is not).
Nondimensional length 2π is the box side, the time unit is (box side / 2π) / velocity scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr

from polydiff.physics.era5 import VARIABLES
from polydiff.physics.navier_stokes import (
    random_forcing,
    random_vorticity,
    solve_ns2d_tracer,
    stream_function,
    velocity,
)
from polydiff.runtime import UserError

EARTH_RADIUS = 6.371e6  # m
OMEGA = 7.2921e-5  # s-1, Earth's rotation rate
RHO_AIR = 1.225  # kg m-3
FIELD_VARIABLES = ("t2m", "u10", "v10", "msl")


@dataclass(frozen=True)
class FieldConfig:
    """The box, the flow and the physical scales of the synthetic fields."""

    size: int = 32  # grid points per side of the output grid
    resolution: float = 1.0  # grid spacing, degrees
    lat_south: float = 34.0  # southern edge of the box, degrees_north
    lon_west: float = -16.0  # western edge, degrees_east
    sim_factor: int = 2  # the flow is simulated on size * sim_factor points, then averaged
    nu: float = 1e-3  # viscosity (nondimensional)
    kappa: float = 4e-3  # tracer diffusivity (nondimensional)
    drag: float = 0.1  # Rayleigh drag
    tracer_damping: float = 0.05  # tracer relaxation rate
    forcing_wavenumber: float = 4.0  # cycles per box
    forcing_amplitude: float = 1.0
    dt: float = 0.02
    spinup_steps: int = 1500
    sample_every: int = 100  # steps between saved snapshots
    velocity_scale: float = 8.0  # m s-1 per nondimensional velocity unit
    mean_westerly: float = 4.0  # m s-1
    surface_wind_ratio: float = 0.7  # 10 m wind / geostrophic wind
    t_centre: float = 285.0  # K at the box centre
    t_gradient: float = 0.5  # K per degree of latitude, colder northward
    msl_mean: float = 101325.0  # Pa
    start: str = "2000-01-01T00:00"

    @property
    def box_length(self) -> float:
        """Side of the box in metres (along a meridian)."""
        return math.radians(self.size * self.resolution) * EARTH_RADIUS

    @property
    def coriolis(self) -> float:
        """f₀ at the box centre, s-1."""
        return 2 * OMEGA * math.sin(math.radians(self.lat_south + self.size * self.resolution / 2))

    @property
    def time_unit(self) -> float:
        """Seconds per nondimensional time unit."""
        return self.box_length / (2 * math.pi) / self.velocity_scale


def grid_coords(cfg: FieldConfig) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre latitudes and longitudes (degrees), each (size,), ascending."""
    centres = (np.arange(cfg.size) + 0.5) * cfg.resolution
    return cfg.lat_south + centres, cfg.lon_west + centres


def simulate_flow(
    n_trajectories: int, n_snapshots: int, cfg: FieldConfig, generator: torch.Generator,
    *, progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Vorticity and tracer anomaly after spin-up, (n_traj, n_snap, size, size) each, float64.

    Every trajectory has its own random forcing; snapshots are ``sample_every`` steps apart and
    block-averaged from the ``size * sim_factor`` simulation grid.
    """
    n = cfg.size * cfg.sim_factor
    w0 = random_vorticity(n_trajectories, n, generator, peak_wavenumber=cfg.forcing_wavenumber,
                          rms=2.0, dtype=torch.float64)
    forcing = torch.stack([
        random_forcing(n, generator, peak_wavenumber=cfg.forcing_wavenumber,
                       amplitude=cfg.forcing_amplitude, dtype=torch.float64)
        for _ in range(n_trajectories)])
    steps = cfg.spinup_steps + (n_snapshots - 1) * cfg.sample_every
    w, c = solve_ns2d_tracer(
        w0, torch.zeros_like(w0), nu=cfg.nu, kappa=cfg.kappa, dt=cfg.dt, n_steps=steps,
        gradient=1.0, tracer_damping=cfg.tracer_damping, forcing=forcing, drag=cfg.drag,
        save_every=cfg.sample_every, progress=progress)
    first = cfg.spinup_steps // cfg.sample_every + (cfg.spinup_steps % cfg.sample_every > 0)
    return w[:, first:first + n_snapshots], c[:, first:first + n_snapshots]


def block_mean(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Average over factor × factor blocks of the last two dims: (..., H, W) → (..., H/f, W/f)."""
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise UserError(f"grid {h}x{w} is not a multiple of the factor {factor}")
    return x.reshape(*x.shape[:-2], h // factor, factor, w // factor, factor).mean(dim=(-3, -1))


def physical_fields(w: torch.Tensor, c: torch.Tensor, cfg: FieldConfig) -> dict[str, np.ndarray]:
    """t2m (K), u10, v10 (m s-1), msl (Pa) on the output grid from vorticity and tracer.

    ``w``, ``c``: (..., N, N) on the simulation grid (N = size · sim_factor); the rows are
    latitude (south → north), the columns longitude (west → east).
    """
    length = 2 * math.pi
    scale_len = cfg.box_length / length  # metres per nondimensional length
    u, v = velocity(w, length)
    psi = stream_function(w, length)
    lat, _ = grid_coords(cfg)
    y = torch.as_tensor(np.radians(lat - lat.mean()) * EARTH_RADIUS)[:, None]  # m, (size, 1)
    geo = cfg.velocity_scale / cfg.surface_wind_ratio  # geostrophic m s-1 per unit
    rho_f = RHO_AIR * cfg.coriolis
    deg_per_unit = cfg.size * cfg.resolution / length
    fields = {
        "t2m": cfg.t_centre - cfg.t_gradient * torch.as_tensor(lat - lat.mean())[:, None]
        + cfg.t_gradient * deg_per_unit * block_mean(c, cfg.sim_factor),
        "u10": cfg.mean_westerly + cfg.velocity_scale * block_mean(u, cfg.sim_factor),
        "v10": cfg.velocity_scale * block_mean(v, cfg.sim_factor),
        "msl": cfg.msl_mean - rho_f * cfg.mean_westerly / cfg.surface_wind_ratio * y
        - rho_f * geo * scale_len * block_mean(psi, cfg.sim_factor),
    }
    return {k: v.numpy() for k, v in fields.items()}


def to_dataset(fields: dict[str, np.ndarray], times: pd.DatetimeIndex, cfg: FieldConfig,
               **attrs: str) -> xr.Dataset:
    """CF dataset of (time, latitude, longitude) fields with coordinates and metadata."""
    lat, lon = grid_coords(cfg)
    data = {}
    for name, values in fields.items():
        var = VARIABLES[name]
        data[name] = xr.DataArray(
            values.astype(np.float32), dims=("time", "latitude", "longitude"),
            attrs={"standard_name": var.standard_name, "units": var.units,
                   "long_name": var.long_name})
    ds = xr.Dataset(data, coords={"time": times, "latitude": lat, "longitude": lon}, attrs=attrs)
    ds["latitude"].attrs = {"standard_name": "latitude", "units": "degrees_north"}
    ds["longitude"].attrs = {"standard_name": "longitude", "units": "degrees_east"}
    ds["time"].attrs = {"standard_name": "time"}
    return ds


def generate_fields(
    n: int, cfg: FieldConfig, generator: torch.Generator, *, trajectories: int = 1,
    progress: bool = False,
) -> xr.Dataset:
    """``n`` synthetic weather states (time, latitude, longitude) from ``trajectories`` flows.

    The time axis lists trajectory after trajectory; the coordinate ``trajectory(time)``
    says which flow each state comes from, and times advance by the physical interval
    between snapshots (``sample_every · dt`` time units).
    """
    if n < 1 or trajectories < 1:
        raise UserError("need at least one field and one trajectory")
    trajectories = min(trajectories, n)
    per = math.ceil(n / trajectories)
    w, c = simulate_flow(trajectories, per, cfg, generator, progress=progress)
    fields = {k: v.reshape(-1, cfg.size, cfg.size)[:n]
              for k, v in physical_fields(w, c, cfg).items()}
    interval = pd.Timedelta(seconds=cfg.sample_every * cfg.dt * cfg.time_unit).round("min")
    times = pd.date_range(cfg.start, periods=n, freq=interval)
    ds = to_dataset(fields, times, cfg, title="polydiff synthetic near-surface weather",
                    source="2-D forced Navier-Stokes flow with a stirred temperature tracer")
    return ds.assign_coords(trajectory=("time", np.repeat(np.arange(trajectories), per)[:n]))
