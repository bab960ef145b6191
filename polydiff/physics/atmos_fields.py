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

``FieldConfig.kind = "turbulence"`` gives a deliberately non-Gaussian case instead: 2-D
turbulence at a higher Reynolds number (vorticity filaments and coherent vortices) and a
positive, intermittent precipitation-like field, from the same solver:

* ``vo`` (s-1): relative vorticity, the flow's vorticity over the time unit;
* ``tprate`` (kg m-2 s-1): precipitation where the stirred moisture tracer exceeds a
  saturation threshold, ``precip_scale · max(c − precip_threshold, 0)``: zero over most of
  the box, sharp-edged rain bands along the tracer's fronts.
"""

from __future__ import annotations

import math
from collections.abc import Container
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm.auto import tqdm

from polydiff.physics.era5 import VARIABLES
from polydiff.physics.navier_stokes import (
    random_forcing,
    random_vorticity,
    solve_ns2d_tracer,
    stream_function,
    velocity,
)
from polydiff.runtime import UserError, check_memory, format_bytes

EARTH_RADIUS = 6.371e6  # m
OMEGA = 7.2921e-5  # s-1, Earth's rotation rate
RHO_AIR = 1.225  # kg m-3
FIELD_VARIABLES = ("t2m", "u10", "v10", "msl")
TURBULENCE_VARIABLES = ("vo", "tprate")
KINDS = {"weather": FIELD_VARIABLES, "turbulence": TURBULENCE_VARIABLES}


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
    kind: str = "weather"  # "weather" (t2m, u10, v10, msl) or "turbulence" (vo, tprate)
    precip_threshold: float = 0.5  # tracer anomaly (nondimensional) above which it rains
    precip_scale: float = 1e-4  # kg m-2 s-1 of rain per unit of tracer excess

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"fields.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for name in ("resolution", "dt", "velocity_scale", "surface_wind_ratio"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise UserError(f"fields.{name} must be a finite number > 0, got {value!r}")
        for name in ("lat_south", "lon_west", "nu", "kappa", "drag", "tracer_damping",
                     "forcing_wavenumber", "forcing_amplitude", "mean_westerly", "t_centre",
                     "t_gradient", "msl_mean", "precip_threshold", "precip_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise UserError(f"fields.{name} must be a finite number, got {value!r}")
        for name, low in (("size", 2), ("sim_factor", 1), ("sample_every", 1),
                          ("spinup_steps", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise UserError(f"fields.{name} must be an integer >= {low}, got {value!r}")
        if min(self.nu, self.kappa, self.drag, self.tracer_damping) < 0:
            raise UserError("fields.nu, kappa, drag and tracer_damping must be >= 0")
        north = self.lat_south + self.size * self.resolution
        if self.lat_south < -90 or north > 90:
            raise UserError(f"the box spans latitudes {self.lat_south:g}..{north:g}; it must "
                            "lie within -90..90 (fewer points or a finer resolution)")
        if self.size * self.resolution > 360:
            raise UserError(f"the box is {self.size * self.resolution:g} degrees wide; at most "
                            "360")
        try:
            pd.Timestamp(self.start)
        except (ValueError, TypeError) as err:
            raise UserError(f"fields.start {self.start!r} is not a date") from err

    @property
    def variables(self) -> tuple[str, ...]:
        """The variables these fields hold, in channel order."""
        return KINDS[self.kind]

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


def initial_states(n_trajectories: int, cfg: FieldConfig, generator: torch.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial vorticity and forcing of each trajectory, (n_traj, N, N) each, float64."""
    n = cfg.size * cfg.sim_factor
    w0 = random_vorticity(n_trajectories, n, generator, peak_wavenumber=cfg.forcing_wavenumber,
                          rms=2.0, dtype=torch.float64)
    forcing = torch.stack([
        random_forcing(n, generator, peak_wavenumber=cfg.forcing_wavenumber,
                       amplitude=cfg.forcing_amplitude, dtype=torch.float64)
        for _ in range(n_trajectories)])
    return w0, forcing


def _integrate_flow(w0: torch.Tensor, forcing: torch.Tensor, n_snapshots: int,
                    cfg: FieldConfig, *, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Spin up and sample the flows started at ``w0`` (B, N, N): (B, n_snap, N, N) each."""
    steps = cfg.spinup_steps + (n_snapshots - 1) * cfg.sample_every
    w, c = solve_ns2d_tracer(
        w0, torch.zeros_like(w0), nu=cfg.nu, kappa=cfg.kappa, dt=cfg.dt, n_steps=steps,
        gradient=1.0, tracer_damping=cfg.tracer_damping, forcing=forcing, drag=cfg.drag,
        save_every=cfg.sample_every, progress=progress)
    first = cfg.spinup_steps // cfg.sample_every + (cfg.spinup_steps % cfg.sample_every > 0)
    return w[:, first:first + n_snapshots], c[:, first:first + n_snapshots]


def simulation_bytes(cfg: FieldConfig, n_trajectories: int, n_snapshots: int,
                     block: int) -> int:
    """Peak memory estimate (bytes) of :func:`synthetic_fields`.

    Per block: the saved states of vorticity and tracer (spin-up saves included) and their
    stacked copy, and about two dozen spectral work arrays of IF-RK4; plus the float32
    output.
    """
    n = cfg.size * cfg.sim_factor
    b = min(block, n_trajectories)
    saves = (cfg.spinup_steps + (n_snapshots - 1) * cfg.sample_every) // cfg.sample_every + 2
    per_state = 2 * b * n * n * 8
    output = n_trajectories * n_snapshots * len(cfg.variables) * cfg.size**2 * 4
    return per_state * (2 * saves + 24) + 2 * output


def synthetic_fields(
    w0: torch.Tensor, forcing: torch.Tensor, n_snapshots: int, cfg: FieldConfig, *,
    block: int = 32, blocks: Container[int] | None = None, progress: bool = False,
) -> torch.Tensor:
    """Physical fields (n_traj, n_snap, C, size, size) float32 on ``w0``'s device.

    ``w0``, ``forcing``: :func:`initial_states` (n_traj, N, N). Channels in
    ``cfg.variables`` order (weather: t2m K, u10 and v10 m s-1, msl Pa; turbulence: vo s-1,
    tprate kg m-2 s-1). The flows run ``block``
    trajectories at a time (bounded memory; the fields depend on ``block`` only through
    rounding). Only the blocks numbered in ``blocks`` are simulated (default: all); the
    others stay NaN, for another process to fill in.
    """
    n_trajectories = len(w0)
    if n_trajectories < 1 or n_snapshots < 1 or block < 1:
        raise UserError("need at least one trajectory, one snapshot and a block of one")
    check_device_memory(simulation_bytes(cfg, n_trajectories, n_snapshots, block), w0.device,
                        f"simulating {n_trajectories} x {n_snapshots} fields of "
                        f"{cfg.size}x{cfg.size}")
    out = torch.full((n_trajectories, n_snapshots, len(cfg.variables), cfg.size, cfg.size),
                     math.nan, dtype=torch.float32, device=w0.device)
    starts = [s for b, s in enumerate(range(0, n_trajectories, block))
              if blocks is None or b in blocks]
    for start in tqdm(starts, desc="flows", unit="block", disable=not progress or len(starts) < 2,
                      leave=False):
        part = slice(start, start + block)
        w, c = _integrate_flow(w0[part], forcing[part], n_snapshots, cfg, progress=progress)
        out[part] = physical_fields(w, c, cfg).float()
        del w, c
    return out


def check_device_memory(nbytes: float, device: torch.device, what: str) -> None:
    """Refuse work whose estimated peak exceeds the free memory of ``device`` (a UserError)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if nbytes > 0.9 * free:
            raise UserError(f"{what} needs about {format_bytes(nbytes)} on {device}, more than "
                            f"the {format_bytes(0.9 * free)} free there")
    else:
        check_memory(nbytes, what)


def block_mean(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Average over factor × factor blocks of the last two dims: (..., H, W) → (..., H/f, W/f)."""
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise UserError(f"grid {h}x{w} is not a multiple of the factor {factor}")
    return x.reshape(*x.shape[:-2], h // factor, factor, w // factor, factor).mean(dim=(-3, -1))


def physical_fields(w: torch.Tensor, c: torch.Tensor, cfg: FieldConfig) -> torch.Tensor:
    """t2m (K), u10, v10 (m s-1), msl (Pa) on the output grid from vorticity and tracer.

    ``w``, ``c``: (..., N, N) on the simulation grid (N = size · sim_factor); the rows are
    latitude (south → north), the columns longitude (west → east). Returns
    (..., C, size, size) in ``cfg.variables`` order, ``w``'s dtype and device.
    """
    if cfg.kind == "turbulence":
        return turbulence_fields(w, c, cfg)
    length = 2 * math.pi
    scale_len = cfg.box_length / length  # metres per nondimensional length
    u, v = velocity(w, length)
    psi = stream_function(w, length)
    lat, _ = grid_coords(cfg)
    offset = torch.as_tensor(lat - lat.mean(), dtype=w.dtype, device=w.device)[:, None]
    y = torch.as_tensor(np.radians(lat - lat.mean()) * EARTH_RADIUS, dtype=w.dtype,
                        device=w.device)[:, None]  # m north of the box centre, (size, 1)
    geo = cfg.velocity_scale / cfg.surface_wind_ratio  # geostrophic m s-1 per unit
    rho_f = RHO_AIR * cfg.coriolis
    deg_per_unit = cfg.size * cfg.resolution / length
    fields = {
        "t2m": cfg.t_centre - cfg.t_gradient * offset
        + cfg.t_gradient * deg_per_unit * block_mean(c, cfg.sim_factor),
        "u10": cfg.mean_westerly + cfg.velocity_scale * block_mean(u, cfg.sim_factor),
        "v10": cfg.velocity_scale * block_mean(v, cfg.sim_factor),
        "msl": cfg.msl_mean - rho_f * cfg.mean_westerly / cfg.surface_wind_ratio * y
        - rho_f * geo * scale_len * block_mean(psi, cfg.sim_factor),
    }
    return torch.stack([fields[name] for name in FIELD_VARIABLES], dim=-3)


def turbulence_fields(w: torch.Tensor, c: torch.Tensor, cfg: FieldConfig) -> torch.Tensor:
    """vo (s-1) and tprate (kg m-2 s-1) on the output grid, (..., 2, size, size).

    ``w``, ``c``: vorticity and tracer anomaly (..., N, N) on the simulation grid. The
    rain is thresholded on the simulation grid, then averaged to the output grid (a cell
    partly raining gets its area fraction of the rain).
    """
    rain = cfg.precip_scale * (c - cfg.precip_threshold).clamp_min(0.0)
    vo = w / cfg.time_unit
    return torch.stack([block_mean(vo, cfg.sim_factor), block_mean(rain, cfg.sim_factor)],
                       dim=-3)


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
    w0, forcing = initial_states(trajectories, cfg, generator)
    stacked = synthetic_fields(w0, forcing, per, cfg, progress=progress)
    values = stacked.reshape(-1, len(cfg.variables), cfg.size, cfg.size)[:n].cpu().numpy()
    fields = {name: values[:, k] for k, name in enumerate(cfg.variables)}
    times = field_times(n, cfg)
    ds = to_dataset(fields, times, cfg, title="polydiff synthetic near-surface weather",
                    source="2-D forced Navier-Stokes flow with a stirred temperature tracer")
    return ds.assign_coords(trajectory=("time", np.repeat(np.arange(trajectories), per)[:n]))


def field_times(n: int, cfg: FieldConfig) -> pd.DatetimeIndex:
    """``n`` times from ``cfg.start``, one snapshot interval (rounded to minutes) apart."""
    interval = pd.Timedelta(seconds=cfg.sample_every * cfg.dt * cfg.time_unit).round("min")
    if interval <= pd.Timedelta(0):
        raise UserError("the snapshot interval rounds to 0 minutes: raise fields.sample_every")
    return pd.date_range(cfg.start, periods=n, freq=interval)
