"""The 2-D Navier–Stokes solver against exact solutions, its order, and its invariants."""

import math

import pytest
import torch

from polydiff.physics.navier_stokes import (
    kolmogorov_forcing,
    random_forcing,
    random_vorticity,
    solve_ns2d,
    solve_ns2d_tracer,
    stable_dt,
    stream_function,
    velocity,
)
from polydiff.runtime import UserError, make_generator


def _grid(n: int, length: float = 2 * math.pi) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(n, dtype=torch.float64) * (length / n)
    return torch.meshgrid(x, x, indexing="ij")  # (y, x)


@pytest.mark.parametrize("drag", [0.0, 0.3])
def test_taylor_green_decays_as_the_exact_solution(drag):
    n, k, nu, dt, steps = 32, 3, 0.05, 0.01, 100
    y, x = _grid(n)
    w0 = 2 * k**2 * torch.cos(k * x) * torch.cos(k * y)
    out = solve_ns2d(w0[None], nu=nu, dt=dt, n_steps=steps, save_every=25, drag=drag)
    assert out.shape == (1, 5, n, n)
    for i, t in enumerate(torch.arange(5) * 25 * dt):
        exact = w0 * math.exp(-(2 * nu * k**2 + drag) * float(t))
        assert torch.allclose(out[0, i], exact, atol=1e-10)


def test_kolmogorov_flow_reaches_the_laminar_steady_state():
    n, k, nu, drag, amplitude = 16, 2, 0.1, 0.5, 1.0
    f = kolmogorov_forcing(n, wavenumber=k, amplitude=amplitude, dtype=torch.float64)
    steady = f / (nu * k**2 + drag)
    out = solve_ns2d(torch.zeros(n, n, dtype=torch.float64), nu=nu, dt=0.2, n_steps=100,
                     forcing=f, drag=drag)
    assert torch.allclose(out[-1], steady, atol=1e-6 * steady.abs().max())
    u, _ = velocity(out[-1])  # body force A sin(ky) drives u = A sin(ky) / (ν k² + α)
    yy, _ = _grid(n)
    assert torch.allclose(u, amplitude * torch.sin(k * yy) / (nu * k**2 + drag), atol=1e-6)


def test_time_stepping_is_fourth_order():
    w0 = random_vorticity(2, 32, make_generator(1), dtype=torch.float64)
    nu, t_end = 0.01, 0.8
    ref = solve_ns2d(w0, nu=nu, dt=t_end / 256, n_steps=256)[:, -1]
    errors = []
    for steps in (8, 16, 32):
        w = solve_ns2d(w0, nu=nu, dt=t_end / steps, n_steps=steps)[:, -1]
        errors.append(float((w - ref).abs().max()))
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(3.5 < p < 4.7 for p in orders), (errors, orders)


def test_inviscid_flow_conserves_energy_and_enstrophy():
    w0 = random_vorticity(1, 64, make_generator(2), peak_wavenumber=3, dtype=torch.float64)
    dt = stable_dt(w0, cfl=0.3)
    out = solve_ns2d(w0, nu=0.0, dt=dt, n_steps=200, save_every=200)

    def energy(w):
        return float((-stream_function(w) * w).mean())  # ∫ |u|² = ∫ ψ ω

    def enstrophy(w):
        return float((w**2).mean())

    assert out[0, -1].sub(w0[0]).abs().max() > 0.1  # the flow did evolve
    assert energy(out[0, -1]) == pytest.approx(energy(w0[0]), rel=1e-6)
    assert enstrophy(out[0, -1]) == pytest.approx(enstrophy(w0[0]), rel=1e-4)


def test_velocity_is_divergence_free_and_its_curl_is_the_vorticity():
    w = random_vorticity(3, 32, make_generator(3), dtype=torch.float64)
    u, v = velocity(w)
    n = 32
    ky = torch.fft.fftfreq(n, 1 / n, dtype=torch.float64)[:, None]
    kx = torch.fft.fftfreq(n, 1 / n, dtype=torch.float64)[None, :]

    def d(f, k):
        return torch.fft.ifft2(1j * k * torch.fft.fft2(f)).real

    assert torch.allclose(d(u, kx) + d(v, ky), torch.zeros_like(u), atol=1e-10)
    assert torch.allclose(d(v, kx) - d(u, ky), w - w.mean(dim=(-2, -1), keepdim=True),
                          atol=1e-10)


def test_random_fields_are_seeded_and_normalised():
    a = random_vorticity(4, 32, make_generator(7), rms=2.0)
    b = random_vorticity(4, 32, make_generator(7), rms=2.0)
    c = random_vorticity(4, 32, make_generator(8), rms=2.0)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(a.pow(2).mean(dim=(-2, -1)).sqrt(), torch.full((4,), 2.0), atol=1e-4)
    assert a.mean(dim=(-2, -1)).abs().max() < 1e-5
    f = random_forcing(32, make_generator(7), amplitude=0.5)
    assert f.shape == (32, 32) and f.pow(2).mean().sqrt() == pytest.approx(0.5, rel=1e-4)


def test_bad_input_and_blow_up_are_user_errors():
    with pytest.raises(UserError):
        solve_ns2d(torch.zeros(4, 8), nu=0.1, dt=0.1, n_steps=1)
    with pytest.raises(UserError):
        solve_ns2d(torch.full((8, 8), float("nan")), nu=0.1, dt=0.1, n_steps=1)
    w0 = random_vorticity(1, 32, make_generator(0), rms=50.0, dtype=torch.float64)
    with pytest.raises(UserError, match="blew up"):
        solve_ns2d(w0, nu=0.0, dt=5.0, n_steps=50)


def test_tracer_is_advected_by_a_steady_shear_flow_exactly():
    n, k, m, amp, t_end = 64, 1, 1, 0.5, 1.0
    y, x = _grid(n)
    w0 = -amp * k * torch.cos(k * y)  # u = amp sin(ky), v = 0: a steady Euler flow
    c0 = torch.cos(m * x)
    w, c = solve_ns2d_tracer(w0, c0, nu=0.0, kappa=0.0, dt=0.01, n_steps=100)
    assert torch.allclose(w[-1], w0, atol=1e-12)
    exact = torch.cos(m * (x - amp * torch.sin(k * y) * t_end))
    assert torch.allclose(c[-1], exact, atol=1e-6)


def test_tracer_background_gradient_and_relaxation_match_the_closed_form():
    n, k, amp, g, gamma, t_end = 32, 2, 0.7, 3.0, 0.5, 2.0
    y, x = _grid(n)
    w0 = amp * k * torch.cos(k * x)  # v = amp sin(kx), u = 0
    w, c = solve_ns2d_tracer(w0, torch.zeros_like(w0), nu=0.0, kappa=0.1, dt=0.02,
                             n_steps=100, gradient=g, tracer_damping=gamma)
    exact = g * amp * torch.sin(k * x) * (1 - math.exp(-(gamma + 0.1 * k**2) * t_end))
    exact = exact / (gamma + 0.1 * k**2)
    assert torch.allclose(c[-1], exact, atol=1e-8)
