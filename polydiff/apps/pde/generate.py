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
ks                 256    641   128   PDE-Refiner: Kuramoto-Sivashinsky, periodic [0, 64), random
                                      sine waves, saved after a burn-in of 72 (ETDRK4, at most
                                      0.05 per step; ``--refine r`` solves on r x nx points and
                                      keeps every r-th)
=================  =====  ====  ====  ==========================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from polydiff.physics import advection, burgers, kuramoto_sivashinsky, navier_stokes
from polydiff.physics.pde_data import Trajectories
from polydiff.runtime import UserError, check_memory, make_generator


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
    "ks": Defaults(256, 641, 128.0, 64.0),  # param: the domain length L
}
KS_MAX_STEP = 0.05
"""Largest ETDRK4 step of ``generate --equation ks`` (PDE-Refiner's data: 0.2 / 4)."""

HINT = "choose fewer --n, a coarser --nx, fewer --nt, a shorter --t-final or a larger --nu"


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
            self.equation, self.n, d.nx if self.nx is None else self.nx,
            d.nt if self.nt is None else self.nt,
            d.t_final if self.t_final is None else self.t_final,
            d.param if self.param is None else self.param, self.seed, self.refine)
        if req.n < 1 or req.nx < 4 or req.nt < 2:
            raise UserError(f"need --n >= 1, --nx >= 4 and --nt >= 2 (got {req.n}, {req.nx}, "
                            f"{req.nt})")
        if not (math.isfinite(req.t_final) and req.t_final > 0):
            raise UserError(f"--t-final must be a finite positive number, got {req.t_final}")
        viscous = req.equation not in ("advection", "ks")
        if not math.isfinite(req.param) or (viscous and req.param <= 0):
            raise UserError(f"{'--nu' if viscous else '--beta'} must be finite"
                            f"{' and positive' if viscous else ''}, got {req.param}")
        if req.refine is not None and (req.refine < 1 or (req.equation == "burgers-periodic"
                                                           and req.refine % 2 == 0)):
            raise UserError(f"--refine must be >= 1 (and odd for burgers-periodic), "
                            f"got {req.refine}")
        if req.equation == "ks" and (req.nx * (req.refine or 1)) % 2:
            raise UserError(f"ks needs an even number of solver points, got --nx {req.nx}")
        if req.equation == "ns2d" and req.nx % 2:
            raise UserError(f"ns2d needs an even --nx, got {req.nx}")
        return req

    def output_bytes(self) -> float:
        """Bytes of the trajectories as they are made and written (float64 then float32,
        with a forcing of the same size)."""
        space = self.nx * self.nx if self.equation == "ns2d" else self.nx
        return 2 * 12.0 * self.n * self.nt * space

    def check_cost(self) -> None:
        """Refuse before any work what would take more memory or solver time than allowed.

        The solver's cost is estimated from the grid and the equation's parameter at the
        initial amplitude the problems draw (a lower bound); ns2d is checked again once its
        initial fields set the time step.
        """
        what = (f"pde generate --equation {self.equation} (n {self.n}, nx {self.nx}, nt "
                f"{self.nt}, T {self.t_final:g})")
        check_memory(self.output_bytes(), what)
        if self.equation == "ns2d":
            cost = navier_stokes.ns2d_cost(self.n, self.nx, self.nt - 1, self.nt)
        elif self.equation == "ks":
            grid = self.ks_grid()
            cost = advection.SolverCost(float(grid.nx), grid.substeps * grid.nt
                                        + grid.burn_in / (grid.dt / grid.substeps), self.n,
                                        advection.march_bytes(self.n, grid.nx, grid.nt + 1))
        elif self.equation == "advection":
            cost = advection.advection_cost(self.n, self.nx, self.nt, self.t_final,
                                            beta=self.param)
        else:
            grid = self.grid()
            try:
                cost = burgers.burgers_cost(grid, self.n, nu=self.param,
                                            u_max=burgers.INITIAL_AMPLITUDE,
                                            refine=self.refine)
            except ValueError as err:
                raise UserError(f"{what}: {err}; {HINT}") from err
        cost.check(what, HINT)

    def ks_grid(self) -> kuramoto_sivashinsky.KSGrid:
        """The KS solver grid (``refine`` x ``nx`` points, steps of at most KS_MAX_STEP)."""
        dt = self.t_final / (self.nt - 1)
        return kuramoto_sivashinsky.KSGrid(
            nx=self.nx * (self.refine or 1), length=self.param, dt=dt, nt=self.nt - 1,
            substeps=max(1, math.ceil(dt / KS_MAX_STEP - 1e-9)))

    def grid(self) -> burgers.BurgersGrid:
        """The saved grid of a 1-D equation."""
        return burgers.BurgersGrid(nx=self.nx, nt=self.nt, t_final=self.t_final,
                                   periodic=self.equation != "burgers")


def generate(req: GenerateRequest, *, device: torch.device | str = "cpu",
             progress: bool = False) -> Trajectories:
    """Draw ``req.n`` seeded problems of ``req.equation`` and solve them on ``device``.

    The problems are drawn on the CPU, so a seed gives the same problems on every device.
    Requests beyond the time or memory bounds are refused before any work (UserError).
    """
    req = req.resolved()
    req.check_cost()
    g = make_generator(req.seed)
    if req.equation == "ns2d":
        return _generate_ns2d(req, g, device, progress)
    if req.equation == "ks":
        grid, r = req.ks_grid(), req.refine or 1
        u0 = kuramoto_sivashinsky.random_initial_states(req.n, grid, g).to(device)
        u = kuramoto_sivashinsky.solve_ks(u0, grid, burn_in=True, progress=progress).cpu()
        return Trajectories(u[..., ::r], grid.x()[::r], grid.t(),
                            equation="kuramoto-sivashinsky", params={"L": req.param})
    grid = req.grid()
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
    navier_stokes.ns2d_cost(req.n, req.nx, substeps * (req.nt - 1), req.nt).check(
        f"pde generate --equation ns2d (n {req.n}, nx {req.nx}, nt {req.nt}, T "
        f"{req.t_final:g})", HINT)
    w = navier_stokes.solve_ns2d(w0, nu=req.param, dt=interval / substeps,
                                 n_steps=substeps * (req.nt - 1), save_every=substeps,
                                 forcing=force, drag=0.1, progress=progress).cpu()
    coord = torch.arange(req.nx, dtype=torch.float64) * (navier_stokes.TWO_PI / req.nx)
    u = w.transpose(-1, -2)  # solver rows are y: (N, nt, ny, nx) -> (N, nt, nx, ny)
    forcing = force.cpu().T.expand_as(u)
    return Trajectories(u, coord, torch.linspace(0, req.t_final, req.nt), coord, forcing,
                        "ns2d", {"nu": req.param, "drag": 0.1, "forcing_wavenumber": 4.0})


def describe(traj: Trajectories) -> str:
    """``burgers (16, 81, 120) Nu=0.01``: what a generated file holds."""
    params = ", ".join(f"{k}={v:g}" for k, v in traj.params.items())
    return f"{traj.equation} {tuple(traj.u.shape)} {params}"
