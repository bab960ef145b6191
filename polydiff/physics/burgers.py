"""1-D viscous Burgers u_t + (u^2/2)_x = nu u_xx + f, batched, in torch.

Two settings share one scheme:

* **WDNO / DiffPhyCon** (``periodic=False``): x in [0, 1] with u = 0 at both ends, nu = 0.01,
  T = 8. The saved grid is nx = 120 interior nodes x_i = i / (nx + 1), i = 1..nx (the ends,
  where u = 0, are not stored) and nt = 81 saved times t_k = k T / 80, k = 0..80, including
  the initial state: the "81 x 120" grid of the reference data (u is stored at nt + 1 = 81
  times, the forcing at 80 there; polydiff stores the forcing at the same 81 times as u).
* **PDEBench** (``periodic=True``): x in [0, L) periodic, cell centres (i + 1/2) L / nx.

Scheme: conservative finite differences on the nodes, with the energy-conserving
(skew-symmetric) flux F_{i+1/2} = (u_i^2 + u_i u_{i+1} + u_{i+1}^2) / 6 for u^2/2 (so the
discrete kinetic energy can only decay through viscosity: no blow-up), central second
differences for nu u_xx, and SSP-RK3 in time with dt = cfl * min(dx / max|u|, dx^2 / (2 nu))
re-evaluated every step. Second order in dx. The solver integrates on an internal grid
``refine`` times finer than the saved one (it contains the saved nodes) and samples the
saved nodes at the saved times; by default fine enough to keep the cell Peclet number
max|u0| dx / nu at or below 2, where the central scheme is free of grid-scale wiggles.

Random problems (``sample_burgers_problem``) follow the reference distribution: u0 is a
Gaussian of amplitude U(0, 2), centre U(0.2, 0.4), width U(0.05, 0.15) plus one of
amplitude U(-2, 0), centre U(0.6, 0.8), width U(0.05, 0.15); f is a sum of 8 separable
space-time Gaussians with amplitude 2 U(-1.5, 1.5) (each of the last 7 switched on with
probability 1/2), space centre U(0, 1), space width U(0.1, 0.4), time centre U(0, T), time
width U(0.1, 0.4) T. Unlike the reference (piecewise constant in time) the forcing here is
smooth in time, which keeps the solver's convergence order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from polydiff.physics.advection import (
    SolverCost,
    march,
    march_bytes,
    periodic_grid,
    random_sine_waves,
)

Tensor = torch.Tensor
Forcing = Callable[[float, Tensor], Tensor]  # (t, x (nx,)) -> (N, nx)

INITIAL_AMPLITUDE = 2.0
"""The largest |u0| the random problems draw (WDNO: Gaussians of amplitude at most 2;
periodic: two sine waves of amplitude at most 1): what cost estimates size the steps for."""


@dataclass(frozen=True)
class BurgersGrid:
    """The saved grid: ``nx`` points in space, ``nt`` times from 0 to ``t_final`` inclusive."""

    nx: int = 120
    nt: int = 81
    t_final: float = 8.0
    length: float = 1.0
    periodic: bool = False

    def __post_init__(self) -> None:
        if self.nx < 4 or self.nt < 2 or self.t_final <= 0 or self.length <= 0:
            raise ValueError(f"invalid grid {self}")

    @property
    def dx(self) -> float:
        return self.length / (self.nx if self.periodic else self.nx + 1)

    def x(self, refine: int = 1, dtype: torch.dtype = torch.float64) -> Tensor:
        """Positions (nx * refine for periodic, (nx + 1) * refine - 1 interior nodes otherwise)."""
        if self.periodic:
            return periodic_grid(self.nx * refine, self.length, dtype)
        n = (self.nx + 1) * refine
        return torch.arange(1, n, dtype=dtype) * (self.length / n)

    def t(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """Saved times, shape (nt,)."""
        return torch.linspace(0.0, self.t_final, self.nt, dtype=dtype)

    def saved_index(self, refine: int) -> slice:
        """Which entries of the refined grid are the saved points (periodic: ``refine`` odd)."""
        if self.periodic:
            if refine % 2 == 0:
                raise ValueError("a periodic grid needs an odd refine to contain its centres")
            return slice((refine - 1) // 2, None, refine)
        return slice(refine - 1, None, refine)


@dataclass(frozen=True)
class Gaussians:
    """Sum of K separable Gaussians a exp(-(x-xc)^2/(2 sx^2)) [exp(-(t-tc)^2/(2 st^2))].

    All fields have shape (N, K); ``t_center``/``t_width`` None makes it time-independent.
    """

    amp: Tensor
    x_center: Tensor
    x_width: Tensor
    t_center: Tensor | None = None
    t_width: Tensor | None = None

    def space(self, x: Tensor) -> Tensor:
        """The spatial factors at positions x (nx,): (N, K, nx)."""
        return torch.exp(-0.5 * ((x[None, None, :] - self.x_center[..., None])
                                 / self.x_width[..., None]) ** 2)

    def weights(self, t: float | None) -> Tensor:
        """The amplitudes times the temporal factors at time t: (N, K)."""
        if self.t_center is None:
            return self.amp
        return self.amp * torch.exp(-0.5 * ((t - self.t_center) / self.t_width) ** 2)

    def __call__(self, t: float | None, x: Tensor) -> Tensor:
        """Values at time t (ignored when time-independent) and positions x (nx,): (N, nx)."""
        space = self.space(x)
        return torch.bmm(self.weights(t).to(space.dtype)[:, None], space)[:, 0]

    def to(self, device: torch.device | str) -> Gaussians:
        """The same functions with their parameters on ``device``."""
        return Gaussians(*(None if v is None else v.to(device)
                           for v in (self.amp, self.x_center, self.x_width, self.t_center,
                                     self.t_width)))

    def on_grid(self, t: Tensor, x: Tensor) -> Tensor:
        """Values on a (nt,) x (nx,) grid: (N, nt, nx)."""
        return torch.stack([self(float(tk), x) for tk in t], dim=1)


@dataclass(frozen=True)
class BurgersProblem:
    """A batch of N problems: initial states and forcings as analytic functions."""

    initial: Gaussians
    forcing: Gaussians

    def u0(self, x: Tensor) -> Tensor:
        """Initial state at positions x (nx,): (N, nx)."""
        return self.initial(None, x)

    def to(self, device: torch.device | str) -> BurgersProblem:
        """The same problems with their parameters on ``device``."""
        return BurgersProblem(self.initial.to(device), self.forcing.to(device))


def _uniform(g: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64)


def sample_burgers_problem(n: int, grid: BurgersGrid, generator: torch.Generator,
                           *, n_forces: int = 8) -> BurgersProblem:
    """Draw n initial states and forcings from the WDNO distribution (see the module doc)."""
    g, s = generator, (n, 1)
    amp = torch.cat([_uniform(g, s, 0.0, 2.0), _uniform(g, s, -2.0, 0.0)], 1)
    centre = torch.cat([_uniform(g, s, 0.2, 0.4), _uniform(g, s, 0.6, 0.8)], 1) * grid.length
    width = _uniform(g, (n, 2), 0.05, 0.15) * grid.length
    initial = Gaussians(amp, centre, width)
    k = (n, n_forces)
    on = torch.ones(k, dtype=torch.float64)
    on[:, 1:] = (torch.rand((n, n_forces - 1), generator=g) < 0.5).to(torch.float64)
    forcing = Gaussians(
        amp=2.0 * on * _uniform(g, k, -1.5, 1.5),
        x_center=_uniform(g, k, 0.0, 1.0) * grid.length,
        x_width=_uniform(g, k, 0.1, 0.4) * grid.length,
        t_center=_uniform(g, k, 0.0, 1.0) * grid.t_final,
        t_width=_uniform(g, k, 0.1, 0.4) * grid.t_final,
    )
    return BurgersProblem(initial, forcing)


def sample_periodic_initial(n: int, grid: BurgersGrid, generator: torch.Generator) -> Tensor:
    """PDEBench-style random periodic initial states on the saved grid: (n, nx) float64."""
    return random_sine_waves(n, grid.x(), generator, length=grid.length)


def burgers_rhs(u: Tensor, nu: float, dx: float, periodic: bool) -> Tensor:
    """-(u^2/2)_x + nu u_xx at the nodes; u (N, n). Dirichlet: u = 0 just outside both ends."""
    if periodic:
        ghost = torch.cat([u[..., -1:], u, u[..., :1]], -1)
    else:
        ghost = torch.nn.functional.pad(u, (1, 1))
    a, b = ghost[..., :-1], ghost[..., 1:]
    flux = (a * a + a * b + b * b) / 6.0  # F at the n + 1 faces
    return (flux[..., :-1] - flux[..., 1:]) / dx + (nu / dx**2) * (
        ghost[..., 2:] - 2.0 * u + ghost[..., :-2])


def default_refine(grid: BurgersGrid, nu: float, u_max: float) -> int:
    """The internal refinement used unless one is given: 2 (Dirichlet) or 1 (periodic), or
    more where the cell Peclet number u_max dx / nu would exceed 2 (the central scheme
    oscillates beyond that); odd on periodic grids."""
    need = u_max * grid.dx / (2.0 * max(nu, 1e-12))
    if not math.isfinite(need):
        raise ValueError(f"no refinement keeps the cell Peclet number at u_max = {u_max:g}, "
                         f"nu = {nu:g}")
    refine = max(math.ceil(need), 1 if grid.periodic else 2)
    return refine + 1 if grid.periodic and refine % 2 == 0 else refine


def _max_dt(dx: float, nu: float, speed: float, cfl: float) -> float:
    """The SSP-RK3 step limit of the scheme: advective dx / |u| and diffusive dx^2 / (2 nu)."""
    return cfl * min(dx / max(speed, 1e-12), dx * dx / (2.0 * max(nu, 1e-12)))


def burgers_cost(grid: BurgersGrid, n: int, *, nu: float, u_max: float,
                 refine: int | None = None, cfl: float = 0.9) -> SolverCost:
    """What :func:`solve_burgers` of ``n`` states of amplitude ``u_max`` takes at least (the
    flow may speed up under forcing, which shortens the steps further)."""
    refine = refine or default_refine(grid, nu, u_max)
    points = float(grid.nx * refine if grid.periodic else (grid.nx + 1) * refine - 1)
    dx = grid.dx / refine
    steps = grid.t_final / _max_dt(dx, nu, u_max, cfl) + (grid.nt - 1)
    forcing_bytes = 8.0 * n * grid.nt * points  # saved-grid forcings prolonged inside
    return SolverCost(points, steps, n, march_bytes(n, points, grid.nt) + forcing_bytes)


def _prolong(u: Tensor, grid: BurgersGrid, refine: int) -> Tensor:
    """Saved-grid values (..., nx) -> refined grid, by linear interpolation (u = 0 at the ends)."""
    if refine == 1:
        return u
    if grid.periodic:
        padded = torch.cat([u[..., -1:], u, u[..., :1]], -1)
        fine = torch.nn.functional.interpolate(
            padded.reshape(-1, 1, grid.nx + 2), scale_factor=refine, mode="linear",
            align_corners=False)[..., refine:-refine]
        return fine.reshape(*u.shape[:-1], grid.nx * refine)
    zero = torch.zeros_like(u[..., :1])
    padded = torch.cat([zero, u, zero], -1)
    fine = torch.nn.functional.interpolate(
        padded.reshape(-1, 1, grid.nx + 2), size=(grid.nx + 1) * refine + 1, mode="linear",
        align_corners=True)[..., 1:-1]
    return fine.reshape(*u.shape[:-1], (grid.nx + 1) * refine - 1)


def solve_burgers(
    u0: Tensor | Callable[[Tensor], Tensor],
    grid: BurgersGrid,
    *,
    nu: float = 0.01,
    forcing: Forcing | Tensor | None = None,
    refine: int | None = None,
    cfl: float = 0.9,
    progress: bool = False,
    device: torch.device | str | None = None,
) -> Tensor:
    """Solve Burgers on ``grid`` and return u at the saved times and points: (N, nt, nx) float64.

    Args:
        u0: the initial state, either values on the saved grid (N, nx) (linearly interpolated
            onto the internal grid) or a function of positions x (n,) -> (N, n).
        grid: the saved grid (and the boundary conditions, ``grid.periodic``).
        nu: viscosity (length^2 per time unit).
        forcing: None, a function (t, x (n,)) -> (N, n), or values on the saved grid
            (N, nt, nx), interpolated linearly in time and space.
        refine: internal grid spacing = saved spacing / refine (default:
            :func:`default_refine`). On a periodic grid it must be odd, so that the internal
            cell centres contain the saved ones. On the WDNO grid (120 x 81, forced) refine
            1 / 2 differ from refine 4 by a relative RMS of 2.6e-3 / 5e-4.
        cfl: safety factor on the advective and diffusive step limits (<= 1).
        device: where to compute (default: u0's device, or the CPU when u0 is a function,
            which must then accept positions on ``device``). The result stays there.
    """
    if device is None:
        device = u0.device if isinstance(u0, Tensor) else torch.device("cpu")
    if callable(u0):
        u_max = float(u0(grid.x().to(device)).abs().max())
    else:
        if u0.ndim != 2 or u0.shape[-1] != grid.nx:
            raise ValueError(f"u0 must have shape (N, {grid.nx}), got {tuple(u0.shape)}")
        u_max = float(u0.abs().max())
    refine = refine or default_refine(grid, nu, u_max)
    index = grid.saved_index(refine)
    x = grid.x(refine).to(device)
    if callable(u0):
        u = u0(x).to(torch.float64)
    else:
        u = _prolong(u0.to(device, torch.float64), grid, refine)
    force = _forcing_function(forcing, grid, refine, x)
    if isinstance(forcing, Gaussians):  # the spatial factors do not change: evaluate them once
        forcing = forcing.to(device)
        space = forcing.space(x)

        def force(t: float, _x: Tensor) -> Tensor:
            return torch.bmm(forcing.weights(t)[:, None], space)[:, 0]

    dx = grid.dx / refine

    def rhs(t: float, v: Tensor) -> Tensor:
        out = burgers_rhs(v, nu, dx, grid.periodic)
        return out if force is None else out + force(t, x)

    def max_dt(v: Tensor) -> float:
        return _max_dt(dx, nu, float(v.abs().max()), cfl)

    fine = march(rhs, u, grid.t(), max_dt, progress=progress, desc="burgers")
    return fine[..., index]


def _forcing_function(forcing: Forcing | Tensor | None, grid: BurgersGrid, refine: int,
                      x: Tensor) -> Forcing | None:
    """Turn saved-grid forcing values (N, nt, nx) into a function of (t, x); pass others on."""
    if forcing is None or callable(forcing):
        return forcing
    if forcing.ndim != 3 or forcing.shape[1:] != (grid.nt, grid.nx):
        raise ValueError(f"forcing must have shape (N, {grid.nt}, {grid.nx}), "
                         f"got {tuple(forcing.shape)}")
    fine = _prolong(forcing.to(x.device, torch.float64), grid, refine)  # (N, nt, n)
    step = grid.t_final / (grid.nt - 1)

    def at(t: float, _x: Tensor) -> Tensor:
        s = min(max(t / step, 0.0), grid.nt - 1.0)
        k = min(int(s), grid.nt - 2)
        w = s - k
        return (1.0 - w) * fine[:, k] + w * fine[:, k + 1]

    return at
