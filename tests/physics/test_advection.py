"""Advection scheme against the exact shifted initial state; third-order convergence."""

import math

import torch

from polydiff.physics.advection import (
    advection_exact,
    periodic_grid,
    random_sine_waves,
    shift_periodic,
    solve_advection,
)


def initial(x: torch.Tensor) -> torch.Tensor:
    return (torch.sin(2 * math.pi * x) + 0.5 * torch.cos(6 * math.pi * x + 0.3))[None]


def test_shift_is_exact_for_trigonometric_polynomials():
    x = periodic_grid(48)
    shifted = shift_periodic(initial(x), 0.37)
    assert torch.allclose(shifted, initial(x - 0.37), atol=1e-12)


def test_matches_shifted_initial_state_for_both_signs():
    x = periodic_grid(128)
    times = [0.0, 0.25, 1.0]
    for beta in (0.7, -1.3):
        u = solve_advection(initial(x), times, beta=beta)
        exact = torch.stack([initial(x - beta * t)[0] for t in times])[None]
        assert torch.allclose(advection_exact(initial(x), times, beta=beta), exact, atol=1e-12)
        assert (u - exact).abs().max() < 5e-3


def test_third_order_convergence():
    errors = []
    for nx in (64, 128, 256):  # dt = 0.8 dx / beta halves with dx
        x = periodic_grid(nx)
        u = solve_advection(initial(x), [0.0, 1.0], beta=1.0)
        errors.append(float((u[0, -1] - initial(x - 1.0)[0]).abs().max()))
    for coarse, fine in zip(errors, errors[1:]):
        assert 7.0 < coarse / fine < 9.0


def test_random_sine_waves_are_seeded_and_conserve_mass():
    x = periodic_grid(64)
    a = random_sine_waves(4, x, torch.Generator().manual_seed(0))
    b = random_sine_waves(4, x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == (4, 64)
    u = solve_advection(a, [0.0, 0.5], beta=2.0)
    assert torch.allclose(u.sum(-1)[:, 0], u.sum(-1)[:, 1], atol=1e-12)


def test_cost_estimate_counts_the_steps(monkeypatch):
    from polydiff.physics.advection import advection_cost
    from tests.physics.solver_testing import count_steps

    calls = count_steps(monkeypatch)
    x = periodic_grid(64)
    times = torch.linspace(0, 0.5, 5)
    solve_advection(initial(x), times, beta=-1.5)
    cost = advection_cost(1, 64, 5, 0.5, beta=-1.5)
    assert calls[0] <= cost.steps <= calls[0] + 5 and cost.points == 64
