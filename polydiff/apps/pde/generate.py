"""``polydiff pde generate``: solver data sets as PDEBench-layout HDF5 or NetCDF.

Equations and their defaults (each overridable on the command line):

=================  =====  ====  ====  ==========================================================
equation           nx     nt    T     problem
=================  =====  ====  ====  ==========================================================
burgers            120    81    8     WDNO: zero Dirichlet on [0, 1], nu = 0.01, Gaussian u0,
                                      8 space-time Gaussian forcings (``physics.burgers``)
burgers-periodic   256    101   2     PDEBench: periodic [0, 1), nu = 0.01, random sine waves
advection          256    101   2     PDEBench: periodic [0, 1), beta = 1, random sine waves
ns2d               64     21    10    vorticity on [0, 2 pi)^2, nu = 1e-3, drag 0.1, Kolmogorov
                                      forcing (k = 4), random initial vorticity
=================  =====  ====  ====  ==========================================================
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from polydiff.apps.contract import add_runtime_args
from polydiff.physics import advection, burgers, navier_stokes
from polydiff.physics.pde_data import Trajectories, write_trajectories
from polydiff.runtime import UserError, make_generator, pick_device


@dataclass(frozen=True)
class Defaults:
    """An equation's default grid and parameter."""

    nx: int
    nt: int
    t_final: float
    param: float  # nu for burgers and ns2d, beta for advection


EQUATIONS: dict[str, Defaults] = {
    "burgers": Defaults(120, 81, 8.0, 0.01),
    "burgers-periodic": Defaults(256, 101, 2.0, 0.01),
    "advection": Defaults(256, 101, 2.0, 1.0),
    "ns2d": Defaults(64, 21, 10.0, 1e-3),
}


@dataclass(frozen=True)
class GenerateRequest:
    """What to generate; ``None`` fields take the equation's defaults."""

    equation: str
    n: int
    nx: int | None = None
    nt: int | None = None
    t_final: float | None = None
    param: float | None = None
    seed: int = 0
    refine: int | None = None  # Burgers' internal refinement (default: ``default_refine``)

    def resolved(self) -> GenerateRequest:
        """The request with defaults filled in, after checking every value (UserError)."""
        if self.equation not in EQUATIONS:
            raise UserError(f"unknown equation {self.equation!r} "
                            f"(choose from {', '.join(EQUATIONS)})")
        d = EQUATIONS[self.equation]
        req = GenerateRequest(
            self.equation, self.n, self.nx or d.nx, self.nt or d.nt,
            d.t_final if self.t_final is None else self.t_final,
            d.param if self.param is None else self.param, self.seed, self.refine)
        if req.n < 1 or req.nx < 4 or req.nt < 2:
            raise UserError(f"need --n >= 1, --nx >= 4 and --nt >= 2 (got {req.n}, {req.nx}, "
                            f"{req.nt})")
        for name, value in (("--t-final", req.t_final), ("the equation parameter", req.param)):
            if not math.isfinite(value) or value < 0 or (name == "--t-final" and value == 0):
                raise UserError(f"{name} must be a finite positive number, got {value}")
        if req.refine is not None and (req.refine < 1 or (req.equation == "burgers-periodic"
                                                           and req.refine % 2 == 0)):
            raise UserError(f"--refine must be >= 1 (and odd for burgers-periodic), "
                            f"got {req.refine}")
        if req.equation == "ns2d" and req.nx % 2:
            raise UserError(f"ns2d needs an even --nx, got {req.nx}")
        return req


def generate(req: GenerateRequest, *, device: torch.device | str = "cpu",
             progress: bool = False) -> Trajectories:
    """Draw ``req.n`` seeded problems of ``req.equation`` and solve them on ``device``.

    The problems are drawn on the CPU, so a seed gives the same problems on every device.
    """
    req = req.resolved()
    g = make_generator(req.seed)
    if req.equation == "ns2d":
        return _generate_ns2d(req, g, device, progress)
    periodic = req.equation != "burgers"
    grid = burgers.BurgersGrid(nx=req.nx, nt=req.nt, t_final=req.t_final, periodic=periodic)
    x, t = grid.x(), grid.t()
    if req.equation == "advection":
        u0 = advection.random_sine_waves(req.n, x, g).to(device)
        u = advection.solve_advection(u0, t, beta=req.param, progress=progress).cpu()
        return Trajectories(u, x, t, equation="advection", params={"beta": req.param})
    if req.equation == "burgers-periodic":
        u0 = burgers.sample_periodic_initial(req.n, grid, g).to(device)
        u = burgers.solve_burgers(u0, grid, nu=req.param, refine=req.refine,
                                  progress=progress).cpu()
        return Trajectories(u, x, t, equation="burgers-periodic", params={"Nu": req.param})
    problem = burgers.sample_burgers_problem(req.n, grid, g)
    on_device = problem.to(device)
    u = burgers.solve_burgers(on_device.u0, grid, nu=req.param, forcing=on_device.forcing,
                              refine=req.refine, progress=progress, device=device).cpu()
    return Trajectories(u, x, t, forcing=problem.forcing.on_grid(t, x), equation="burgers",
                        params={"Nu": req.param})


def _generate_ns2d(req: GenerateRequest, g: torch.Generator, device: torch.device | str,
                   progress: bool) -> Trajectories:
    """Kolmogorov-forced 2-D Navier-Stokes (vorticity); u (N, nt, nx, ny)."""
    w0 = navier_stokes.random_vorticity(req.n, req.nx, g, dtype=torch.float64).to(device)
    force = navier_stokes.kolmogorov_forcing(req.nx, dtype=torch.float64).to(device)
    interval = req.t_final / (req.nt - 1)
    # the flow speeds up under forcing: leave a factor 4 on the initial CFL step
    substeps = max(1, math.ceil(interval / (0.25 * navier_stokes.stable_dt(w0))))
    w = navier_stokes.solve_ns2d(w0, nu=req.param, dt=interval / substeps,
                                 n_steps=substeps * (req.nt - 1), save_every=substeps,
                                 forcing=force, drag=0.1, progress=progress).cpu()
    coord = torch.arange(req.nx, dtype=torch.float64) * (navier_stokes.TWO_PI / req.nx)
    u = w.transpose(-1, -2)  # solver rows are y: (N, nt, ny, nx) -> (N, nt, nx, ny)
    forcing = force.cpu().T.expand_as(u)
    return Trajectories(u, coord, torch.linspace(0, req.t_final, req.nt), coord, forcing,
                        "ns2d", {"nu": req.param, "drag": 0.1, "forcing_wavenumber": 4.0})


def add_generate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``generate`` on the ``polydiff pde`` sub-command parsers."""
    p = subparsers.add_parser("generate", help="solver trajectories as PDEBench HDF5 or NetCDF")
    p.add_argument("--equation", required=True,
                   help=f"one of {', '.join(EQUATIONS)}")
    p.add_argument("--n", type=int, default=16, help="number of trajectories (default: 16)")
    p.add_argument("--nx", type=int, default=None, help="grid points per side (default: per eq.)")
    p.add_argument("--nt", type=int, default=None,
                   help="saved times including t = 0 (default: per equation)")
    p.add_argument("--t-final", type=float, default=None, help="final time (default: per eq.)")
    p.add_argument("--nu", type=float, default=None, help="viscosity (burgers*, ns2d)")
    p.add_argument("--beta", type=float, default=None, help="advection speed (advection)")
    p.add_argument("--refine", type=int, default=None,
                   help="burgers*: internal grid refinement (default: from the Peclet number)")
    p.add_argument("-o", "--output", type=Path, required=True, help="data.h5 or data.nc")
    add_runtime_args(p, model=False)
    p.set_defaults(func=run_generate)
    return p


def run_generate(args: argparse.Namespace) -> int:
    """The ``generate`` command: check, solve, write atomically, report."""
    if args.output.suffix.lower() not in (".h5", ".hdf5", ".nc"):
        raise UserError(f"the output must end in .h5, .hdf5 or .nc, got {args.output}")
    param = args.beta if args.equation == "advection" else args.nu
    req = GenerateRequest(args.equation, args.n, args.nx, args.nt, args.t_final, param,
                          args.seed, args.refine)
    try:
        traj = generate(req, device=pick_device(args.device), progress=True)
    except FloatingPointError as err:
        raise UserError(f"{err}: try a larger --nu or a smaller --t-final") from err
    write_trajectories(traj, args.output)
    print(f"wrote {args.output}: {traj.equation} {tuple(traj.u.shape)} "
          f"{', '.join(f'{k}={v:g}' for k, v in traj.params.items())}")
    return 0
