"""Burgers solver against Cole-Hopf exact solutions, conservation and convergence order."""

import math

import pytest
import torch

from polydiff.physics.burgers import (
    BurgersGrid,
    default_refine,
    sample_burgers_problem,
    sample_periodic_initial,
    solve_burgers,
)
from tests.physics.solver_testing import count_steps

NU = 0.02


def cole_hopf(x: torch.Tensor, t: float, periodic: bool) -> torch.Tensor:
    """u = -2 nu phi_x / phi, phi = 1 + 0.8 e^{-nu k^2 t} cos(kx) + 0.15 e^{-4 nu k^2 t} cos(2kx).

    phi solves the heat equation phi_t = nu phi_xx, so u solves unforced Burgers exactly;
    k = pi gives phi_x = 0 at x = 0, 1 (u = 0 there, zero Dirichlet), k = 2 pi is 1-periodic.
    """
    k = 2 * math.pi if periodic else math.pi
    e1, e2 = math.exp(-NU * k * k * t), math.exp(-4 * NU * k * k * t)
    phi = 1 + 0.8 * e1 * torch.cos(k * x) + 0.15 * e2 * torch.cos(2 * k * x)
    phi_x = -0.8 * e1 * k * torch.sin(k * x) - 0.3 * e2 * k * torch.sin(2 * k * x)
    return -2 * NU * phi_x / phi


def max_error(nx: int, periodic: bool, refine: int = 1) -> float:
    grid = BurgersGrid(nx=nx, nt=3, t_final=1.0, periodic=periodic)
    u = solve_burgers(lambda x: cole_hopf(x, 0.0, periodic)[None], grid, nu=NU, refine=refine)
    exact = torch.stack([cole_hopf(grid.x(), float(t), periodic) for t in grid.t()])
    assert u.shape == (1, 3, nx)
    return float((u[0] - exact).abs().max())


@pytest.mark.parametrize("periodic", [False, True])
def test_cole_hopf_second_order(periodic):
    sizes = (32, 64, 128) if periodic else (31, 63, 127)  # Dirichlet: dx = 1/32, 1/64, 1/128
    errors = [max_error(n, periodic) for n in sizes]
    assert errors[-1] < 1e-4  # against |u| up to ~0.3
    for coarse, fine in zip(errors, errors[1:]):
        assert 3.6 < coarse / fine < 4.4  # second order in dx


def test_internal_refinement_samples_the_saved_nodes():
    # refining internally must make the saved-grid answer closer to the exact one
    assert max_error(31, False, refine=4) < max_error(31, False, refine=1) / 10
    assert max_error(32, True, refine=3) < max_error(32, True, refine=1) / 6


def test_periodic_unforced_conserves_integral():
    grid = BurgersGrid(nx=64, nt=5, t_final=0.5, periodic=True)
    u0 = sample_periodic_initial(3, grid, torch.Generator().manual_seed(1))
    u = solve_burgers(u0, grid, nu=0.005, refine=1)
    mass = u.sum(-1) * grid.dx  # (N, nt)
    assert torch.allclose(mass, mass[:, :1].expand_as(mass), atol=1e-12)
    assert (u[:, -1] - u[:, 0]).abs().max() > 0.05  # it did evolve


def test_forcing_adds_its_integral():
    # zero Dirichlet is not conservative; periodic with forcing: d/dt int u = int f
    grid = BurgersGrid(nx=50, nt=3, t_final=0.4, periodic=True)
    u0 = torch.zeros(1, 50, dtype=torch.float64)
    u = solve_burgers(u0, grid, nu=0.01, refine=1, forcing=lambda t, x: 0.0 * x[None] + 2.0)
    assert torch.allclose(u[0, -1], torch.full((50,), 0.8, dtype=torch.float64), atol=1e-12)


def test_wdno_sampling_is_seeded_and_in_distribution():
    grid = BurgersGrid()
    a = sample_burgers_problem(64, grid, torch.Generator().manual_seed(3))
    b = sample_burgers_problem(64, grid, torch.Generator().manual_seed(3))
    c = sample_burgers_problem(64, grid, torch.Generator().manual_seed(4))
    assert torch.equal(a.initial.amp, b.initial.amp) and torch.equal(a.forcing.amp, b.forcing.amp)
    assert not torch.equal(a.initial.amp, c.initial.amp)
    centres = a.initial.x_center
    assert ((centres[:, 0] >= 0.2) & (centres[:, 0] <= 0.4)).all()
    assert ((centres[:, 1] >= 0.6) & (centres[:, 1] <= 0.8)).all()
    assert (a.initial.amp[:, 0] >= 0).all() and (a.initial.amp[:, 1] <= 0).all()
    assert a.forcing.amp.shape == (64, 8) and (a.forcing.amp.abs() <= 3).all()
    f = a.forcing.on_grid(grid.t(), grid.x())
    assert f.shape == (64, grid.nt, grid.nx)


def test_wdno_trajectory_boundaries_and_grid_forcing():
    grid = BurgersGrid(nx=40, nt=33, t_final=2.0)
    problem = sample_burgers_problem(2, grid, torch.Generator().manual_seed(0))
    u = solve_burgers(problem.u0, grid, forcing=problem.forcing, refine=2)
    assert u.shape == (2, 33, 40) and torch.isfinite(u).all()
    assert torch.allclose(u[:, 0], problem.u0(grid.x()))
    # the same forcing given as saved-grid values (linear in t and x) gives nearly the same answer
    f_grid = problem.forcing.on_grid(grid.t(), grid.x())
    u_grid = solve_burgers(u[:, 0], grid, forcing=f_grid, refine=2)
    assert (u_grid - u).abs().max() < 0.05 * u.abs().max()


def test_bad_shapes_raise():
    grid = BurgersGrid(nx=20, nt=3, t_final=0.1)
    with pytest.raises(ValueError):
        solve_burgers(torch.zeros(1, 21), grid)
    with pytest.raises(ValueError):
        solve_burgers(torch.zeros(1, 20), grid, forcing=torch.zeros(1, 2, 20))
    with pytest.raises(ValueError):
        solve_burgers(torch.zeros(1, 20), BurgersGrid(nx=20, nt=3, periodic=True), refine=2)


def test_forced_wdno_self_convergence():
    # second order: e(r) ~ C (dx/r)^2, so (u_1 - u_4) / (u_2 - u_4) = (1 - 1/16) / (1/4 - 1/16) = 5
    grid = BurgersGrid(nx=47, nt=5, t_final=1.0)
    problem = sample_burgers_problem(3, grid, torch.Generator().manual_seed(2))
    u = {r: solve_burgers(problem.u0, grid, forcing=problem.forcing, refine=r) for r in (1, 2, 4)}
    ratio = (u[1] - u[4])[:, 1:].norm() / (u[2] - u[4])[:, 1:].norm()
    assert 4.0 < ratio < 6.0


def test_unforced_energy_never_grows():
    # the skew-symmetric flux conserves sum u^2 in the advective part: only viscosity removes it
    grid = BurgersGrid(nx=63, nt=21, t_final=2.0)
    problem = sample_burgers_problem(4, grid, torch.Generator().manual_seed(5))
    u = solve_burgers(problem.u0, grid, nu=1e-4, refine=1)
    energy = (u**2).sum(-1)
    assert (energy[:, 1:] <= energy[:, :-1] * (1 + 1e-12)).all()
    assert torch.isfinite(u).all()


def test_default_refinement_keeps_the_maximum_principle():
    # unforced viscous Burgers: max |u| never grows; nu = 1e-3 needs refine 8 on dx = 1/64
    grid = BurgersGrid(nx=63, nt=11, t_final=2.0)
    problem = sample_burgers_problem(2, grid, torch.Generator().manual_seed(5))
    u_max = float(problem.u0(grid.x()).abs().max())
    assert default_refine(grid, 1e-3, u_max) >= 8
    u = solve_burgers(problem.u0, grid, nu=1e-3)
    peak = u.abs().amax(-1)  # (N, nt)
    assert (peak <= peak[:, :1] * 1.01).all()


@pytest.mark.parametrize("nu, refine", [(0.02, None), (0.005, 3)])
def test_cost_estimate_counts_the_solvers_steps(monkeypatch, nu, refine):
    """Without forcing the amplitude only decays: the estimate from the initial amplitude
    is the solver's step count, up to the shortened steps that land on the save times."""
    from polydiff.physics.burgers import burgers_cost

    calls = count_steps(monkeypatch)
    grid = BurgersGrid(nx=40, nt=6, t_final=0.5)
    u0 = cole_hopf(grid.x(), 0.0, periodic=False)[None].expand(2, -1)
    u_max = float(u0.abs().max())
    solve_burgers(u0, grid, nu=nu, refine=refine)
    cost = burgers_cost(grid, 2, nu=nu, u_max=u_max, refine=refine)
    assert cost.points == (grid.nx + 1) * (refine or default_refine(grid, nu, u_max)) - 1
    assert calls[0] <= cost.steps <= calls[0] + grid.nt
    assert cost.work == cost.points * cost.steps * 2


def test_cost_of_absurd_requests_is_refused_with_its_numbers():
    from polydiff.physics.burgers import burgers_cost
    from polydiff.runtime import UserError

    grid = BurgersGrid(nx=100_000, nt=81, t_final=8.0)
    cost = burgers_cost(grid, 16, nu=0.01, u_max=2.0)
    assert cost.points == 200_001 and cost.steps > 7e9  # dt = 0.9 dx^2 / (2 nu), dx = 5e-6
    with pytest.raises(UserError, match=r"7.11e\+09 time steps on 2e\+05 points"):
        cost.check("this solve", "ask for less")
    with pytest.raises(ValueError, match="Peclet"):
        default_refine(BurgersGrid(), 0.01, float("inf"))
