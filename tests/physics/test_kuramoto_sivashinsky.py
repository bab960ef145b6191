"""Kuramoto–Sivashinsky by ETDRK4: coefficients, exact linear modes, convergence order, a
finer run, exact conservation of the mean, dealiasing and the energy budget."""

import math

import pytest
import torch

from polydiff.physics.kuramoto_sivashinsky import (
    KSGrid,
    KSSolver,
    dealias_mask,
    energy_spectrum,
    etdrk4_coefficients,
    linear_symbol,
    nonlinear_term,
    sample_ks_trajectories,
    solve_ks,
    wavenumbers,
)

# Kassam & Trefethen (2005), section 6: L = 32π, N = 128, u0 = cos(x/16)(1 + sin(x/16))
KT_LENGTH, KT_NX = 32 * math.pi, 128


def kt_initial(nx: int = KT_NX) -> torch.Tensor:
    x = torch.arange(nx, dtype=torch.float64) * KT_LENGTH / nx
    return (torch.cos(x / 16) * (1 + torch.sin(x / 16)))[None]


def test_coefficients_match_closed_forms_and_rk4_at_zero():
    h = 0.25
    hl = torch.tensor([-3.0, -1.0, -0.5, 0.4], dtype=torch.float64)
    c = etdrk4_coefficients(hl / h, h)
    e = torch.exp(hl)
    # closed forms (accurate at these |h λ|): Cox & Matthews (2002)
    torch.testing.assert_close(c.q, h * (torch.exp(hl / 2) - 1) / hl, rtol=1e-12, atol=0)
    torch.testing.assert_close(c.f1, h * (-4 - hl + e * (4 - 3 * hl + hl**2)) / hl**3,
                               rtol=1e-11, atol=0)
    torch.testing.assert_close(c.f2, h * (2 + hl + e * (hl - 2)) / hl**3, rtol=1e-11, atol=0)
    torch.testing.assert_close(c.f3, h * (-4 - 3 * hl - hl**2 + e * (4 - hl)) / hl**3,
                               rtol=1e-11, atol=0)
    zero = etdrk4_coefficients(torch.zeros(1, dtype=torch.float64), h)
    # λ = 0: classical RK4, weights h/6, h/3 (= 2 f2), h/6 and half-step weight h/2
    for value, expected in ((zero.q, h / 2), (zero.f1, h / 6), (zero.f2, h / 6),
                            (zero.f3, h / 6)):
        assert abs(float(value) - expected) < 1e-14


def test_small_amplitude_modes_decay_and_grow_exactly():
    """At amplitude 1e-9 the nonlinear term is 1e-18: each mode follows exp((k² − k⁴) t)."""
    grid = KSGrid(nx=64, length=32.0, dt=0.5, nt=4, substeps=2, burn_in=0.0)
    x = grid.x()
    k = wavenumbers(64, 32.0)
    u0 = 1e-9 * (torch.cos(k[3] * x) + torch.sin(k[9] * x))[None]
    traj = solve_ks(u0, grid)
    t = grid.t()[-1]
    exact = 1e-9 * (torch.exp((k[3]**2 - k[3]**4) * t) * torch.cos(k[3] * x)
                    + torch.exp((k[9]**2 - k[9]**4) * t) * torch.sin(k[9] * x))
    assert k[3]**2 - k[3]**4 > 0 > k[9]**2 - k[9]**4  # one growing, one decaying mode
    torch.testing.assert_close(traj[0, -1], exact, rtol=0, atol=1e-16)


def test_fourth_order_convergence_against_a_much_finer_step():
    """Kassam–Trefethen's problem from t = 20 (past the transient) over 2 time units: the
    error against h/256 falls by 2^p with p close to 4 as h halves (p rises towards 4 as h
    shrinks, the stiff pre-asymptotic range of ETDRK4)."""
    start = KSSolver(KT_NX, KT_LENGTH, 0.25).advance(kt_initial(), 80)
    span = 2.0

    def run(h: float) -> torch.Tensor:
        return KSSolver(KT_NX, KT_LENGTH, h).advance(start, round(span / h))

    ref = run(span / 2048)
    errors = [float((run(h) - ref).norm() / ref.norm()) for h in (0.1, 0.05, 0.025, 0.0125)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert errors[0] < 1e-4
    assert all(b > a for a, b in zip(orders, orders[1:])), orders
    assert 3.6 < orders[-1] < 4.3, orders


def test_agrees_with_a_finer_run_in_space_and_time():
    """Kassam–Trefethen's problem to t = 30 with their step h = 1/4 on N = 256 (the 2/3 rule
    keeps 85 modes; their N = 128 without dealiasing would keep 42 here) against N = 512
    with h = 1/64: the chaotic transient amplifies the error, which stays below 1e-4."""
    coarse = KSSolver(2 * KT_NX, KT_LENGTH, 0.25).advance(kt_initial(2 * KT_NX), 120)
    fine = KSSolver(4 * KT_NX, KT_LENGTH, 0.25 / 16).advance(kt_initial(4 * KT_NX), 120 * 16)
    rel = float((coarse - fine[:, ::2]).norm() / fine.norm())
    assert rel < 1e-4, rel
    # the same run on N = 128: dealiasing leaves too few modes, 1e-3 off (so N matters)
    under = KSSolver(KT_NX, KT_LENGTH, 0.25).advance(kt_initial(), 120)
    assert float((under - fine[:, ::4]).norm() / fine.norm()) > 1e-4


def test_mean_is_conserved_exactly():
    grid = KSGrid(nx=64, length=32.0, dt=0.5, nt=40, substeps=4, burn_in=0.0)
    g = torch.Generator().manual_seed(3)
    u0 = torch.randn(3, 64, generator=g, dtype=torch.float64)
    u0 = torch.fft.irfft(torch.fft.rfft(u0) * (torch.arange(33) < 8), n=64) + 0.3
    traj = solve_ks(u0, grid)
    assert traj.std() > 0.1  # the states did change
    drift = (traj.mean(-1) - u0.mean(-1, keepdim=True)).abs().max()
    assert drift < 1e-13, float(drift)


def _band_limited(n: int, nx: int, top: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, nx // 2 + 1, dtype=torch.complex128, generator=g)
    v[:, 0] = v[:, 0].real
    return torch.fft.irfft(v * (torch.arange(nx // 2 + 1) <= top), n=nx)


def _exact_product_term(u: torch.Tensor, ik: torch.Tensor, nx: int) -> torch.Tensor:
    """−(u²)_x / 2 of grid values u (B, nx) computed on a 4x finer grid: no aliasing."""
    fine_u = torch.fft.irfft(torch.fft.rfft(u), n=4 * nx) * 4
    return -0.5 * ik * torch.fft.rfft(fine_u * fine_u)[:, : nx // 2 + 1] / 4


def test_nonlinear_term_is_the_exact_product_truncated():
    """For any u (here all modes up to nx/2 - 1 filled) the solver's term equals the
    unaliased product of u's kept band, inside the band, and is zero outside it. The naive
    grid product of the full u differs inside the band: aliasing is there to remove."""
    nx, length = 64, 20.0
    keep = dealias_mask(nx)
    ik = 1j * wavenumbers(nx, length)
    u = _band_limited(4, nx, nx // 2 - 1, seed=1)
    ours = nonlinear_term(torch.fft.rfft(u), ik, keep, nx)
    u_kept = torch.fft.irfft(torch.fft.rfft(u) * keep, n=nx)
    torch.testing.assert_close(ours[:, keep], _exact_product_term(u_kept, ik, nx)[:, keep],
                               rtol=1e-10, atol=1e-10)
    assert ours[:, ~keep].abs().max() == 0
    naive = -0.5 * ik * torch.fft.rfft(u * u)
    aliased = (naive - _exact_product_term(u, ik, nx))[:, keep].abs().max()
    assert aliased > 1e-2, float(aliased)


def test_nonlinear_term_neither_creates_nor_destroys_energy():
    nx, length = 128, 50.0
    keep = dealias_mask(nx)
    u = _band_limited(3, nx, int(keep.sum()) - 1, seed=2)
    n = torch.fft.irfft(nonlinear_term(torch.fft.rfft(u), 1j * wavenumbers(nx, length), keep, nx),
                        n=nx)
    assert (u * n).sum(-1).abs().max() < 1e-11 * (u.abs().max() ** 3 * nx)


def test_energy_budget():
    """d/dt ½∫u² = ∫(u_x² − u_xx²): the nonlinear term moves energy between scales only."""
    grid = KSGrid(nx=128, length=40.0, dt=0.005, nt=4, substeps=2, burn_in=0.0)
    u0 = _band_limited(2, 128, 10, seed=4) * 2
    traj = solve_ks(u0, grid)
    dx = grid.length / grid.nx
    energy = 0.5 * (traj**2).sum(-1) * dx
    e = energy.T  # fourth-order central difference at the middle state
    rate = (-e[4] + 8 * e[3] - 8 * e[1] + e[0]) / (12 * grid.dt)
    v, k = torch.fft.rfft(traj[:, 2]), wavenumbers(128, 40.0)
    ux = torch.fft.irfft(1j * k * v, n=128)
    uxx = torch.fft.irfft(-(k**2) * v, n=128)
    budget = ((ux**2 - uxx**2).sum(-1) * dx)
    torch.testing.assert_close(rate, budget, rtol=1e-6, atol=1e-9)


def test_random_trajectories_are_seeded_and_on_the_attractor():
    grid = KSGrid(nx=64, length=32.0, nt=5, burn_in=40.0)
    a = sample_ks_trajectories(3, grid, torch.Generator().manual_seed(0))
    b = sample_ks_trajectories(3, grid, torch.Generator().manual_seed(0))
    c = sample_ks_trajectories(3, grid, torch.Generator().manual_seed(1))
    assert a.shape == (3, 6, 64) and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert a.mean(-1).abs().max() < 1e-12  # the sines have zero mean, and it is conserved
    assert 0.5 < float(a.std()) < 2.5  # KS attractor amplitude, whatever the start
    spectrum = energy_spectrum(a[:, -1])
    assert spectrum.shape == (33,) and spectrum[1:8].max() > 1e3 * spectrum[25:].max()


def test_bad_grids_and_states_are_refused():
    with pytest.raises(ValueError):
        KSGrid(nx=63)
    with pytest.raises(ValueError):
        solve_ks(torch.zeros(2, 32, dtype=torch.float64), KSGrid(nx=64))


def test_linear_symbol_signs():
    lam = linear_symbol(64, 32.0)
    k = wavenumbers(64, 32.0)
    assert lam[0] == 0 and torch.all((lam > 0) == ((k > 0) & (k < 1)))
