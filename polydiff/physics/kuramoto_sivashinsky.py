"""Periodic 1-D Kuramoto–Sivashinsky equation u_t + u u_x + u_xx + u_xxxx = 0, by ETDRK4.

Pseudo-spectral in space on [0, L) with ``nx`` points: in Fourier space the equation reads
v_t = λ v + N(v) with the linear symbol λ(k) = k² − k⁴ (k = 2π m / L) and the nonlinear term
N(v) = −(i k / 2) F[(u_trunc)²], where the product is formed from the retained modes only and
truncated again (the 2/3 rule: modes m > (nx − 1) // 3 are dropped before and after the
product, so no aliased mode survives and the nonlinear term exchanges energy without
creating any). The mean (m = 0) is left untouched, so it is conserved exactly.

Time stepping: the fourth-order exponential time-differencing Runge–Kutta scheme of Cox &
Matthews (2002), with the φ-function coefficients evaluated by the contour integrals of
Kassam & Trefethen (2005) (``points`` nodes on a circle of radius 1 around each h λ), which
avoids the cancellation of the closed forms for small |h λ|.

Random problems follow PDE-Refiner / Brandstetter et al.: a sum of random sine waves, run
through a burn-in so that the saved states lie on the chaotic attractor. The PDE-Refiner
setting is L = 64 on 256 points, saved every 0.2 time units; the neural solvers step 0.8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from polydiff.physics.advection import periodic_grid, random_sine_waves

Tensor = torch.Tensor


@dataclass(frozen=True)
class KSGrid:
    """Space and time grid of saved KS trajectories.

    Attributes:
        nx: points in space (cell centres (i + 1/2) L / nx, as PDEBench stores them).
        length: domain length L.
        dt: interval between saved states.
        nt: saved intervals (a trajectory holds nt + 1 states, the first after the burn-in).
        substeps: ETDRK4 steps per saved interval (solver step dt / substeps).
        burn_in: time integrated and discarded before the first saved state.
    """

    nx: int = 256
    length: float = 64.0
    dt: float = 0.2
    nt: int = 140
    substeps: int = 4
    burn_in: float = 72.0

    def __post_init__(self) -> None:
        if self.nx < 8 or self.nx % 2 or self.length <= 0 or self.dt <= 0 or self.nt < 1 \
                or self.substeps < 1 or self.burn_in < 0:
            raise ValueError(f"invalid KS grid {self}")

    def x(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """Positions (nx,)."""
        return periodic_grid(self.nx, self.length, dtype)

    def t(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """Saved times (nt + 1,), counted from the end of the burn-in."""
        return torch.arange(self.nt + 1, dtype=dtype) * self.dt


def wavenumbers(nx: int, length: float) -> Tensor:
    """Angular wavenumbers k_m = 2π m / L of the rfft modes m = 0..nx/2; (nx // 2 + 1,) float64."""
    return 2 * math.pi / length * torch.arange(nx // 2 + 1, dtype=torch.float64)


def dealias_mask(nx: int) -> Tensor:
    """True for the modes kept by the 2/3 rule: m <= (nx - 1) // 3; (nx // 2 + 1,) bool.

    A product of two kept modes reaches at most 2 m_max, which aliases onto nx - 2 m_max >
    m_max: outside the kept band, so it is removed by the second truncation.
    """
    return torch.arange(nx // 2 + 1) <= (nx - 1) // 3


def linear_symbol(nx: int, length: float) -> Tensor:
    """λ(k) = k² − k⁴ of −u_xx − u_xxxx; (nx // 2 + 1,) float64."""
    k = wavenumbers(nx, length)
    return k**2 - k**4


def nonlinear_term(v: Tensor, ik: Tensor, mask: Tensor, nx: int) -> Tensor:
    """Fourier coefficients of −(u²)_x / 2 with 2/3-rule dealiasing.

    Args:
        v: (B, nx // 2 + 1) complex rfft coefficients of u.
        ik: (nx // 2 + 1,) complex i k; mask: (nx // 2 + 1,) kept modes.
    """
    u = torch.fft.irfft(v * mask, n=nx)
    return -0.5 * ik * torch.fft.rfft(u * u) * mask


class ETDRK4(NamedTuple):
    """Coefficients of one ETDRK4 step of size h for v_t = λ v + N(v), each (K,) float64."""

    e: Tensor    # exp(h λ)
    e2: Tensor   # exp(h λ / 2)
    q: Tensor    # h φ₁(h λ / 2) / 2 (the half-step weight)
    f1: Tensor   # weights of N(v), N(a) + N(b) (times 2), N(c) in the final combination
    f2: Tensor
    f3: Tensor


def etdrk4_coefficients(lam: Tensor, h: float, points: int = 64) -> ETDRK4:
    """ETDRK4 coefficients for the real symbol ``lam`` (K,) and step ``h`` (Kassam & Trefethen).

    The φ-functions are averaged over ``points`` nodes r_j on the unit circle around each
    h λ (Cauchy's integral formula), exact to round-off for these entire functions.
    """
    lam = lam.to(torch.float64)
    hl = h * lam
    angle = 2 * math.pi * (torch.arange(1, points + 1, dtype=torch.float64) - 0.5) / points
    lr = hl[:, None] + torch.polar(torch.ones_like(angle), angle)[None, :]  # (K, M) complex
    ex = torch.exp(lr)
    q = h * ((torch.exp(lr / 2) - 1) / lr).mean(-1).real
    f1 = h * ((-4 - lr + ex * (4 - 3 * lr + lr**2)) / lr**3).mean(-1).real
    f2 = h * ((2 + lr + ex * (lr - 2)) / lr**3).mean(-1).real
    f3 = h * ((-4 - 3 * lr - lr**2 + ex * (4 - lr)) / lr**3).mean(-1).real
    return ETDRK4(torch.exp(hl), torch.exp(hl / 2), q, f1, f2, f3)


def etdrk4_step(v: Tensor, c: ETDRK4, nonlinear) -> Tensor:
    """One ETDRK4 step (Cox & Matthews 2002) of v_t = λ v + N(v); v (B, K) complex."""
    nv = nonlinear(v)
    a = c.e2 * v + c.q * nv
    na = nonlinear(a)
    b = c.e2 * v + c.q * na
    nb = nonlinear(b)
    cc = c.e2 * a + c.q * (2 * nb - nv)
    nc = nonlinear(cc)
    return c.e * v + nv * c.f1 + 2 * (na + nb) * c.f2 + nc * c.f3


class KSSolver:
    """ETDRK4 for KS on one grid and step: ``advance`` maps states (B, nx) ``steps`` steps on."""

    def __init__(self, nx: int, length: float, h: float, device: torch.device | str = "cpu"):
        self.nx, self.h = nx, h
        c = etdrk4_coefficients(linear_symbol(nx, length), h)
        self.coeffs = ETDRK4(*(t.to(device) for t in c))
        self.ik = (1j * wavenumbers(nx, length)).to(device)
        self.mask = dealias_mask(nx).to(device)

    def nonlinear(self, v: Tensor) -> Tensor:
        return nonlinear_term(v, self.ik, self.mask, self.nx)

    def advance(self, u: Tensor, steps: int) -> Tensor:
        """u (B, nx) real -> the state ``steps`` steps of size h later, (B, nx) float64."""
        v = torch.fft.rfft(u.to(torch.float64))
        for _ in range(steps):
            v = etdrk4_step(v, self.coeffs, self.nonlinear)
        return torch.fft.irfft(v, n=self.nx)


def solve_ks(u0: Tensor, grid: KSGrid, *, burn_in: bool = False, progress: bool = False,
             chunk: int = 256) -> Tensor:
    """KS trajectories from ``u0`` (B, nx), saved every ``grid.dt`` for ``grid.nt`` intervals.

    With ``burn_in`` the first ``grid.burn_in`` time units are integrated and dropped (the
    saved trajectory starts on the attractor). Trajectories are solved ``chunk`` at a time.

    Returns:
        (B, nt + 1, nx) float64; entry 0 is u0 (or the state after the burn-in).
    """
    if u0.ndim != 2 or u0.shape[-1] != grid.nx:
        raise ValueError(f"u0 must be (B, {grid.nx}), got {tuple(u0.shape)}")
    h = grid.dt / grid.substeps
    solver = KSSolver(grid.nx, grid.length, h, u0.device)
    burn = round(grid.burn_in / h) if burn_in else 0
    out = []
    with tqdm(total=(burn + grid.nt * grid.substeps) * math.ceil(len(u0) / chunk),
              desc="kuramoto-sivashinsky", disable=not progress) as bar:
        for part in u0.split(chunk):
            u = solver.advance(part, burn)
            bar.update(burn)
            states = [u]
            for _ in range(grid.nt):
                u = solver.advance(u, grid.substeps)
                bar.update(grid.substeps)
                states.append(u)
            traj = torch.stack(states, dim=1)
            if not torch.isfinite(traj).all():
                raise FloatingPointError("the KS solution blew up; reduce dt / substeps")
            out.append(traj)
    return torch.cat(out)


def random_initial_states(n: int, grid: KSGrid, generator: torch.Generator, *,
                          n_waves: int = 10, max_wavenumber: int = 8) -> Tensor:
    """Sums of ``n_waves`` random sines sum A sin(2π l x / L + φ), l <= ``max_wavenumber``;
    (n, nx) float64, zero mean (the mean is conserved, so every trajectory keeps mean 0)."""
    return random_sine_waves(n, grid.x(), generator, length=grid.length, n_waves=n_waves,
                             max_wavenumber=max_wavenumber)


def sample_ks_trajectories(n: int, grid: KSGrid, generator: torch.Generator, *,
                           progress: bool = False) -> Tensor:
    """``n`` random KS trajectories after the burn-in: (n, nt + 1, nx) float64."""
    u0 = random_initial_states(n, grid, generator)
    return solve_ks(u0, grid, burn_in=True, progress=progress)


def energy_spectrum(u: Tensor) -> Tensor:
    """Mean energy |û_m|² / nx² of the modes m = 0..nx/2 of states u (..., nx) -> (nx // 2 + 1,)
    averaged over the leading dimensions (the spectrum PDE-Refiner compares)."""
    v = torch.fft.rfft(u.to(torch.float64)) / u.shape[-1]
    return (v.abs() ** 2).reshape(-1, v.shape[-1]).mean(0)
