"""2-D incompressible Navier–Stokes in vorticity form on a periodic square, pseudo-spectral.

    ∂ω/∂t + u·∇ω = ν Δω − α ω + f,     u = (∂ψ/∂y, −∂ψ/∂x),   Δψ = −ω

on [0, L)² with L = ``length`` (default 2π). Fields are batched tensors of shape
``(..., ny, nx)``: the last axis is x, the one before it y (rows = y, as latitude in a map).
The nonlinear term is evaluated in physical space with 2/3-rule dealiasing; time stepping is
the integrating-factor 4th-order Runge–Kutta scheme (IF-RK4): the linear part (viscosity and
drag) is integrated exactly, so it never limits the time step, and the advection obeys a CFL
condition (see :func:`stable_dt`). Units are whatever the caller's are (ω in 1/time,
ν in length²/time).
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from polydiff.physics.advection import SolverCost
from polydiff.runtime import UserError

TWO_PI = 2.0 * math.pi


def wavenumbers(
    size: int, length: float = TWO_PI, *, device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Angular wavenumbers ``(ky, kx)`` in ``rfft2`` layout: (size, 1) and (1, size//2+1)."""
    scale = TWO_PI / length
    ky = torch.fft.fftfreq(size, 1.0 / size, device=device, dtype=dtype) * scale
    kx = torch.fft.rfftfreq(size, 1.0 / size, device=device, dtype=dtype) * scale
    return ky[:, None], kx[None, :]


def _dealias_mask(size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """1 where both integer wavenumbers are below 2/3 of the Nyquist wavenumber, else 0."""
    ky, kx = wavenumbers(size, TWO_PI, device=device, dtype=dtype)
    cutoff = size / 3.0
    return ((ky.abs() < cutoff) & (kx.abs() < cutoff)).to(dtype)


def _check_field(w: torch.Tensor) -> int:
    if w.ndim < 2 or w.shape[-1] != w.shape[-2]:
        raise UserError(f"vorticity must have shape (..., n, n), got {tuple(w.shape)}")
    if not torch.isfinite(w).all():
        raise UserError("vorticity contains NaN or infinite values")
    return w.shape[-1]


def _psi_hat(w: torch.Tensor, length: float):
    """Spectral stream function of ``w`` (..., n, n) with its wavenumbers ``(ky, kx)``."""
    n = _check_field(w)
    ky, kx = wavenumbers(n, length, device=w.device, dtype=w.dtype)
    k2 = kx**2 + ky**2
    k2[0, 0] = 1.0
    psi_hat = torch.fft.rfft2(w) / k2
    psi_hat[..., 0, 0] = 0.0
    return psi_hat, ky, kx


def stream_function(w: torch.Tensor, length: float = TWO_PI) -> torch.Tensor:
    """ψ with Δψ = −ω and zero mean; ``w`` (..., n, n) → ψ (..., n, n)."""
    psi_hat, _, _ = _psi_hat(w, length)
    return torch.fft.irfft2(psi_hat, s=w.shape[-2:])


def velocity(w: torch.Tensor, length: float = TWO_PI) -> tuple[torch.Tensor, torch.Tensor]:
    """Velocity ``(u, v) = (∂ψ/∂y, −∂ψ/∂x)`` from vorticity (..., n, n), each (..., n, n)."""
    psi_hat, ky, kx = _psi_hat(w, length)
    u = torch.fft.irfft2(1j * ky * psi_hat, s=w.shape[-2:])
    v = torch.fft.irfft2(-1j * kx * psi_hat, s=w.shape[-2:])
    return u, v


def stable_dt(w: torch.Tensor, length: float = TWO_PI, cfl: float = 0.5) -> float:
    """Largest time step with advective CFL number ``cfl`` for vorticity (..., n, n)."""
    u, v = velocity(w, length)
    speed = float(torch.sqrt(u**2 + v**2).max())
    return cfl * (length / w.shape[-1]) / max(speed, 1e-12)


class _Spectral:
    """Wavenumbers, inverse Laplacian and dealiasing mask of an n × n periodic grid."""

    def __init__(self, n: int, length: float, like: torch.Tensor):
        self.n = n
        self.ky, self.kx = wavenumbers(n, length, device=like.device, dtype=like.dtype)
        self.k2 = self.kx**2 + self.ky**2
        self.inv_k2 = torch.where(self.k2 > 0, 1.0 / self.k2.clamp_min(1e-30), 0.0 * self.k2)
        self.mask = _dealias_mask(n, like.device, like.dtype)

    def real(self, f_hat: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(f_hat, s=(self.n, self.n))

    def advection(self, w_hat: torch.Tensor, c_hat: torch.Tensor):
        """Dealiased spectral u·∇c for the flow of vorticity ``w_hat``, and the velocity v."""
        psi_hat = w_hat * self.inv_k2
        u, v = self.real(1j * self.ky * psi_hat), self.real(-1j * self.kx * psi_hat)
        cx, cy = self.real(1j * self.kx * c_hat), self.real(1j * self.ky * c_hat)
        return torch.fft.rfft2(u * cx + v * cy) * self.mask, v


def _integrate(
    fields: torch.Tensor, rates: torch.Tensor, rhs, *, dt: float, n_steps: int,
    save_every: int | None, progress: bool,
) -> torch.Tensor:
    """IF-RK4 for ∂f̂/∂t = −rates·f̂ + rhs(f̂) on stacked fields (F, ..., n, n) → (F, ..., S, n, n).

    ``rates`` (F, n, n//2+1) are the linear decay rates (integrated exactly); ``rhs`` maps the
    stacked spectra (F, ..., n, n//2+1) to their nonlinear tendencies.
    """
    if dt <= 0 or n_steps < 0:
        raise UserError("need dt > 0 and n_steps >= 0")
    n = fields.shape[-1]
    save_every = save_every or max(n_steps, 1)
    rates = rates.reshape(rates.shape[0], *[1] * (fields.ndim - 3), *rates.shape[1:])
    half = torch.exp(-rates * dt / 2)  # integrating factor over dt/2
    full = half * half
    f_hat = torch.fft.rfft2(fields)
    saved = [fields]
    for step in tqdm(range(1, n_steps + 1), desc="ns2d", disable=not progress, leave=False):
        k1 = rhs(f_hat)
        k2 = rhs(half * (f_hat + 0.5 * dt * k1))
        k3 = rhs(half * f_hat + 0.5 * dt * k2)
        k4 = rhs(full * f_hat + dt * half * k3)
        f_hat = full * f_hat + dt / 6 * (full * k1 + 2 * half * (k2 + k3) + k4)
        if step % save_every == 0 or (step == n_steps and n_steps % save_every):
            f = torch.fft.irfft2(f_hat, s=(n, n))
            if not torch.isfinite(f).all():
                raise UserError(f"the Navier–Stokes solution blew up at step {step}: "
                                "use a smaller dt (see stable_dt) or a larger viscosity")
            saved.append(f)
    return torch.stack(saved, dim=-3)


def ns2d_cost(n: int, size: int, steps: float, saves: int) -> SolverCost:
    """What :func:`solve_ns2d` of ``n`` fields on ``size`` x ``size`` for ``steps`` steps,
    keeping ``saves`` states, takes: the saved float64 states and their stacked copy, and
    about 24 complex spectra of the IF-RK4 stages."""
    points = float(size) * size
    nbytes = 8.0 * n * points * (2 * saves + 2) + 16.0 * n * points * 24
    return SolverCost(points, steps, n, nbytes)


def solve_ns2d(
    w0: torch.Tensor,
    *,
    nu: float,
    dt: float,
    n_steps: int,
    save_every: int | None = None,
    forcing: torch.Tensor | None = None,
    drag: float = 0.0,
    length: float = TWO_PI,
    progress: bool = False,
) -> torch.Tensor:
    """Integrate vorticity ``w0`` (..., n, n) for ``n_steps`` steps of ``dt`` (IF-RK4).

    Args:
        w0: initial vorticity, shape (..., n, n), any leading batch shape; real float dtype.
        nu: kinematic viscosity ν (length²/time), ≥ 0.
        dt: time step; advection needs ``dt ≤ stable_dt(w)`` (viscosity never limits it).
        n_steps: number of steps.
        save_every: keep every ``save_every``-th state (default: only the last).
        forcing: vorticity forcing f, shape (n, n) or broadcastable to ``w0``; constant in time.
        drag: linear (Rayleigh) drag α ≥ 0, a sink −αω that balances forcing at large scales.
        length: side L of the periodic square.
        progress: show a tqdm bar on stderr.

    Returns:
        Saved states, shape (..., n_saves + 1, n, n): the initial state first, then every
        ``save_every``-th step (with ``save_every=None``, the initial and the final state).
    """
    n = _check_field(w0)
    if nu < 0 or drag < 0:
        raise UserError("need nu >= 0 and drag >= 0")
    grid = _Spectral(n, length, w0)
    f_hat = torch.fft.rfft2(forcing.to(w0)) if forcing is not None else 0.0

    def rhs(w_hat: torch.Tensor) -> torch.Tensor:
        adv, _ = grid.advection(w_hat[0], w_hat[0])
        return (f_hat - adv)[None]

    rates = (nu * grid.k2 + drag)[None]
    return _integrate(w0[None], rates, rhs, dt=dt, n_steps=n_steps, save_every=save_every,
                      progress=progress)[0]


def solve_ns2d_tracer(
    w0: torch.Tensor,
    c0: torch.Tensor,
    *,
    nu: float,
    kappa: float,
    dt: float,
    n_steps: int,
    gradient: float = 0.0,
    tracer_damping: float = 0.0,
    save_every: int | None = None,
    forcing: torch.Tensor | None = None,
    drag: float = 0.0,
    length: float = TWO_PI,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Vorticity as :func:`solve_ns2d` plus a tracer anomaly c advected by the flow.

        ∂c/∂t + u·∇c = κ Δc − γ c + G v

    The term G v is the advection of a background tracer that decreases with y at rate G
    (c̄ = −G y, e.g. temperature colder to the north), so c stays periodic; γ relaxes it.

    Args:
        w0, c0: initial vorticity and tracer anomaly, same shape (..., n, n).
        kappa: tracer diffusivity κ ≥ 0; gradient: background gradient G;
            tracer_damping: relaxation rate γ ≥ 0. Others as :func:`solve_ns2d`.

    Returns:
        ``(w, c)``, each (..., n_saves + 1, n, n).
    """
    n = _check_field(w0)
    if c0.shape != w0.shape or not torch.isfinite(c0).all():
        raise UserError(f"tracer must be finite with the vorticity's shape {tuple(w0.shape)}")
    if min(nu, kappa, drag, tracer_damping) < 0:
        raise UserError("need nu, kappa, drag and tracer_damping >= 0")
    grid = _Spectral(n, length, w0)
    f_hat = torch.fft.rfft2(forcing.to(w0)) if forcing is not None else 0.0

    def rhs(s_hat: torch.Tensor) -> torch.Tensor:
        adv_w, _ = grid.advection(s_hat[0], s_hat[0])
        adv_c, v = grid.advection(s_hat[0], s_hat[1])
        return torch.stack([f_hat - adv_w, gradient * torch.fft.rfft2(v) - adv_c])

    rates = torch.stack([nu * grid.k2 + drag, kappa * grid.k2 + tracer_damping])
    out = _integrate(torch.stack([w0, c0.to(w0)]), rates, rhs, dt=dt, n_steps=n_steps,
                     save_every=save_every, progress=progress)
    return out[0], out[1]


def _smooth_random(
    shape: tuple[int, ...], size: int, length: float, peak_wavenumber: float,
    generator: torch.Generator, dtype: torch.dtype,
) -> torch.Tensor:
    """Gaussian random field (*shape, size, size), spectrum ∝ k² exp(−k²/k0²) below 2/3 Nyquist,
    unit RMS."""
    noise = torch.randn(*shape, size, size, generator=generator, dtype=dtype,
                        device=generator.device)
    ky, kx = wavenumbers(size, TWO_PI, device=noise.device, dtype=dtype)
    k = torch.sqrt(kx**2 + ky**2)
    amplitude = (k / peak_wavenumber) * torch.exp(-0.5 * (k / peak_wavenumber) ** 2)
    amplitude = amplitude * _dealias_mask(size, noise.device, dtype)  # resolved: no Nyquist
    field = torch.fft.irfft2(torch.fft.rfft2(noise) * amplitude, s=(size, size))
    return field / field.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt().clamp_min(1e-12)


def random_vorticity(
    n: int, size: int, generator: torch.Generator, *, peak_wavenumber: float = 4.0,
    rms: float = 1.0, length: float = TWO_PI, dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``n`` seeded random vorticity fields (n, size, size), zero mean, RMS ``rms``.

    The energy peaks near integer wavenumber ``peak_wavenumber`` (cycles per domain).
    """
    return rms * _smooth_random((n,), size, length, peak_wavenumber, generator, dtype)


def kolmogorov_forcing(
    size: int, *, wavenumber: int = 4, amplitude: float = 1.0, length: float = TWO_PI,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Vorticity forcing (size, size) of the body force ``F_x = A sin(k y)``: f = −A k cos(k y)."""
    y = torch.arange(size, dtype=dtype) * (length / size)
    k = wavenumber * TWO_PI / length
    return (-amplitude * k * torch.cos(k * y))[:, None].expand(size, size).clone()


def random_forcing(
    size: int, generator: torch.Generator, *, peak_wavenumber: float = 4.0,
    amplitude: float = 1.0, length: float = TWO_PI, dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A seeded random smooth vorticity forcing (size, size) with RMS ``amplitude``."""
    return amplitude * _smooth_random((), size, length, peak_wavenumber, generator, dtype)
