"""1-D linear advection u_t + beta u_x = 0 on a periodic domain, and the 1-D method of lines.

Besides the advection scheme this module holds what every 1-D solver of polydiff shares:
``march`` (SSP-RK3 time stepping that lands exactly on the saved times, batched over
trajectories) and ``random_sine_waves`` (PDEBench-style random initial states). The Burgers
solver imports both from here.

The advection scheme is a conservative finite-volume method with the third-order
upwind-biased (kappa = 1/3) reconstruction and SSP-RK3, so it converges at third order in
dx when dt is proportional to dx. The exact solution is the initial state shifted by
beta * t (``shift_periodic``: an exact Fourier phase shift of grid values).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

Tensor = torch.Tensor
RHS = Callable[[float, Tensor], Tensor]


def ssp_rk3_step(rhs: RHS, t: float, u: Tensor, dt: float) -> Tensor:
    """One step of the three-stage strong-stability-preserving Runge-Kutta method (Shu-Osher)."""
    u1 = u + dt * rhs(t, u)
    u2 = 0.75 * u + 0.25 * (u1 + dt * rhs(t + dt, u1))
    return u / 3.0 + (2.0 / 3.0) * (u2 + dt * rhs(t + 0.5 * dt, u2))


MAX_WORK = 1e12
"""The most point-updates (grid points x time steps x trajectories) one command may ask of a
solver: about an hour of this package's finite-difference solvers on a CPU core."""


class SolverCost(NamedTuple):
    """What a solve takes at least: ``points`` per trajectory, ``steps`` in time, ``n``
    trajectories and ``nbytes`` of peak memory (floats: an absurd request stays a number)."""

    points: float
    steps: float
    n: int
    nbytes: float

    @property
    def work(self) -> float:
        """Point-updates in all (each one a few stages of the time integrator)."""
        return self.points * self.steps * self.n

    def check(self, what: str, hint: str) -> None:
        """Refuse (UserError with the numbers) a solve beyond :data:`MAX_WORK` or beyond the
        memory this machine can give; ``hint`` says what to change."""
        from polydiff.runtime import UserError, check_memory

        if not math.isfinite(self.work) or self.work > MAX_WORK:
            raise UserError(f"{what} needs about {self.steps:.3g} time steps on {self.points:.3g} "
                            f"points for each of {self.n} trajectories ({self.work:.3g} "
                            f"point-updates), beyond the {MAX_WORK:.0e} a command may ask of "
                            f"the solver; {hint}")
        check_memory(self.nbytes, what)


def march_bytes(n: int, points: float, nt: int) -> float:
    """Peak bytes of :func:`march` in float64: the ``nt`` saved states, their stacked copy
    and the stages of one step."""
    return 8.0 * n * points * (2 * nt + 12)


def march(
    rhs: RHS,
    u0: Tensor,
    times: Sequence[float] | Tensor,
    max_dt: Callable[[Tensor], float],
    *,
    progress: bool = False,
    desc: str = "solve",
) -> Tensor:
    """Integrate du/dt = rhs(t, u) with SSP-RK3 from ``times[0]`` and save at every time.

    Args:
        rhs: ``(t, u) -> du/dt`` with ``u`` of shape (N, nx).
        u0: state at ``times[0]``, shape (N, nx).
        times: increasing save times, length nt (the first is the initial time).
        max_dt: the largest stable step for the current state (re-evaluated every step);
            steps are shortened to land exactly on each save time.
        progress: show a tqdm bar (stderr) over simulated time.
    Returns:
        The saved states, shape (N, nt, nx); entry 0 is ``u0``.
    """
    times = [float(t) for t in times]
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError("save times must be strictly increasing")
    out = [u0]
    u, t = u0, times[0]
    with tqdm(total=times[-1] - times[0], desc=desc, unit="t", disable=not progress,
              bar_format="{l_bar}{bar}| {n:.3g}/{total:.3g} [{elapsed}<{remaining}]") as bar:
        for t_save in times[1:]:
            while t < t_save:
                dt = min(max_dt(u), t_save - t)
                if t_save - (t + dt) < 1e-12 * max(1.0, abs(t_save)):
                    dt = t_save - t
                u = ssp_rk3_step(rhs, t, u, dt)
                bar.update(dt)
                t = t_save if dt == t_save - t else t + dt
            if not torch.isfinite(u).all():
                raise FloatingPointError(f"the solution blew up before t = {t_save:g}")
            out.append(u)
    return torch.stack(out, dim=1)


def periodic_grid(nx: int, length: float = 1.0, dtype: torch.dtype = torch.float64) -> Tensor:
    """Cell centres (i + 1/2) * length / nx, i = 0..nx-1, as PDEBench stores them; shape (nx,)."""
    return (torch.arange(nx, dtype=dtype) + 0.5) * (length / nx)


def random_sine_waves(
    n: int,
    x: Tensor,
    generator: torch.Generator,
    *,
    length: float = 1.0,
    n_waves: int = 2,
    max_wavenumber: int = 4,
) -> Tensor:
    """PDEBench-style random periodic states sum_i A_i sin(2 pi k_i x / length + phi_i).

    A_i ~ U(0, 1), k_i uniform in {1..max_wavenumber}, phi_i ~ U(0, 2 pi), drawn from
    ``generator``. Args: x (nx,) positions. Returns: (n, nx) in the dtype of ``x``.
    """
    shape = (n, n_waves, 1)
    amp = torch.rand(shape, generator=generator, dtype=torch.float64)
    k = torch.randint(1, max_wavenumber + 1, shape, generator=generator).to(torch.float64)
    phase = 2 * math.pi * torch.rand(shape, generator=generator, dtype=torch.float64)
    waves = amp * torch.sin(2 * math.pi * k * x.to(torch.float64) / length + phase)
    return waves.sum(dim=1).to(x.dtype)


def shift_periodic(u: Tensor, shift: float | Tensor, length: float = 1.0) -> Tensor:
    """u(x - shift) for periodic grid values u (..., nx), by an exact Fourier phase shift.

    Exact for trigonometric polynomials resolved by the grid (band-limited interpolation).
    ``shift`` is in the units of ``length``; a tensor of shifts broadcasts against u's
    leading dimensions with a trailing singleton, e.g. (nt, 1) for a trajectory.
    """
    nx = u.shape[-1]
    k = torch.fft.rfftfreq(nx, d=length / nx).to(u.device)  # cycles per unit length
    shift = torch.as_tensor(shift, dtype=torch.float64, device=u.device)
    phase = torch.exp(-2j * math.pi * k * shift)
    if nx % 2 == 0:  # the Nyquist mode of a real signal cannot carry a phase: keep its cosine part
        nyquist = torch.cos(2 * math.pi * k[-1:] * shift).to(phase.dtype)
        phase = torch.cat([phase[..., :-1], nyquist], -1)
    return torch.fft.irfft(torch.fft.rfft(u.to(torch.float64)) * phase, n=nx).to(u.dtype)


def advection_rhs(u: Tensor, beta: float, dx: float) -> Tensor:
    """-beta u_x by third-order upwind-biased finite volumes on a periodic grid; u (N, nx)."""
    if beta < 0:  # mirror the stencil: solve for the reflected field
        return advection_rhs(u.flip(-1), -beta, dx).flip(-1)
    um, up = torch.roll(u, 1, -1), torch.roll(u, -1, -1)
    face = (-um + 5.0 * u + 2.0 * up) / 6.0  # u at x_{i+1/2}, upwind for beta > 0
    return -beta * (face - torch.roll(face, 1, -1)) / dx


def solve_advection(
    u0: Tensor,
    times: Sequence[float] | Tensor,
    *,
    beta: float,
    length: float = 1.0,
    cfl: float = 0.8,
    progress: bool = False,
) -> Tensor:
    """Numerical solution of u_t + beta u_x = 0, periodic on [0, length).

    Args:
        u0: initial cell values, shape (N, nx) (float64 recommended).
        times: save times, length nt, starting with the initial time.
        beta: advection speed (length per time unit).
        cfl: Courant number |beta| dt / dx (stable up to about 1.6 with this scheme).
    Returns:
        (N, nt, nx), entry 0 equal to u0.
    """
    dx = length / u0.shape[-1]
    dt = _advection_dt(dx, beta, cfl)
    return march(lambda t, u: advection_rhs(u, beta, dx), u0, times, lambda u: dt,
                 progress=progress, desc="advection")


def _advection_dt(dx: float, beta: float, cfl: float) -> float:
    return cfl * dx / max(abs(beta), 1e-12)


def advection_cost(n: int, nx: int, times: int, t_final: float, *, beta: float,
                   length: float = 1.0, cfl: float = 0.8) -> SolverCost:
    """What :func:`solve_advection` of ``n`` states on ``nx`` cells, saved at ``times``
    times spanning ``t_final``, takes."""
    steps = max(t_final / _advection_dt(length / nx, beta, cfl), 0.0) + (times - 1)
    return SolverCost(float(nx), steps, n, march_bytes(n, nx, times))


def advection_exact(u0: Tensor, times: Sequence[float] | Tensor, *, beta: float,
                    length: float = 1.0) -> Tensor:
    """Exact solution u(t, x) = u0(x - beta t) for grid values u0 (N, nx) -> (N, nt, nx)."""
    times = torch.as_tensor(times, dtype=torch.float64).reshape(-1, 1)
    return shift_periodic(u0[:, None, :], beta * times, length)
