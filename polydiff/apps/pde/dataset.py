"""Burgers trajectories on the model's grid: solver data, nested resolutions, grid checks.

The solver (:mod:`polydiff.physics.burgers`, WDNO setting) stores ``nx`` interior nodes
x_i = i/(nx+1) and ``nt + 1`` times t_k = k T/nt including the initial state. The model's
grid adds the left wall x_0 = 0 (where u = 0), so it has ``n = nx + 1`` points, a power of
two times the base size, and levels nest exactly: the node i of one level is the node 2i of
the next finer one (nx = 31, 63, 127 ... for n = 32, 64, 128 ...). Fields on the model grid
(:class:`~polydiff.apps.pde.representation.Fields`) hold u at t_1..t_nt, the forcing at
t_0..t_{nt-1} (the forcing acting over each saved interval) and u0 at t_0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from polydiff.apps.pde.representation import Fields
from polydiff.physics.burgers import (
    INITIAL_AMPLITUDE,
    BurgersGrid,
    burgers_cost,
    sample_burgers_problem,
    solve_burgers,
)


@dataclass
class BurgersData:
    """Training-set settings (the WDNO Burgers setting at reduced resolution).

    Attributes:
        n: number of trajectories.
        nx: interior nodes of the base grid (nx + 1 a power of two).
        nt: saved time intervals of the base grid (t_0..t_nt).
        t_final: final time T.
        nu: viscosity.
        unforced_fraction: share of trajectories with zero forcing (so that ``simulate``
            without a forcing stays in the training distribution).
        finer: how many 2x finer levels to solve on (the base level is subsampled from it).
        refine: the solver's internal refinement on the finest level.
        seed: seed of the random problems.
    """

    n: int = 2000
    nx: int = 31
    nt: int = 32
    t_final: float = 8.0
    nu: float = 0.01
    unforced_fraction: float = 0.2
    finer: int = 1
    refine: int = 2
    seed: int = 0

    def grid(self, level: int = 0) -> BurgersGrid:
        """The solver grid ``level`` times 2x finer than the base."""
        k = 2**level
        return BurgersGrid(nx=(self.nx + 1) * k - 1, nt=self.nt * k + 1, t_final=self.t_final)


def to_model_grid(u: Tensor, f: Tensor | None) -> Fields:
    """Solver layout -> model fields.

    Args:
        u: (N, nt + 1, nx) states at t_0..t_nt on the interior nodes.
        f: (N, nt + 1, nx) forcing at the same times, or None for zero forcing.
    Returns:
        Fields with u (N, nt, nx + 1), f (N, nt, nx + 1), u0 (N, nx + 1), float32.
    """
    f = torch.zeros_like(u) if f is None else f
    pad = torch.nn.functional.pad
    u, f = pad(u.float(), (1, 0)), pad(f.float(), (1, 0))
    return Fields(u[:, 1:], f[:, :-1], u[:, 0])


def from_model_grid(fields: Fields) -> tuple[Tensor, Tensor]:
    """Model fields -> solver layout ``(u, f)``, each (N, nt + 1, nx) on the interior nodes.

    u at t_0 is ``fields.u0``; the forcing at t_nt repeats the one at t_{nt-1}.
    """
    u = torch.cat([fields.u0[:, None], fields.u], dim=1)[..., 1:]
    f = torch.cat([fields.f, fields.f[:, -1:]], dim=1)[..., 1:]
    return u, f


def coarsen(fields: Fields, times: int = 1) -> Fields:
    """The same trajectories ``times`` levels coarser (exact subsampling of nested nodes)."""
    for _ in range(times):
        fields = Fields(fields.u[:, 1::2, ::2], fields.f[:, ::2, ::2], fields.u0[:, ::2])
    return fields


MAX_LEVELS = 3
"""Super-resolution levels served above the base grid: 8x, WDNO's 80 x 120 -> 640 x 960."""


def grid_level(nx: int, base_nx: int, max_levels: int = MAX_LEVELS) -> int:
    """How many 2x levels ``nx`` interior nodes lie above the base; ValueError if none, or
    if more than ``max_levels``."""
    n, base = nx + 1, base_nx + 1
    level = 0
    while base * 2**level < n:
        level += 1
    sizes = ", ".join(str(base * 2**k - 1) for k in range(max_levels + 1))
    served = (f"the model serves nx = {sizes} interior points (its base grid and up to "
              f"{max_levels} super-resolution levels)")
    if base * 2**level != n:
        raise ValueError(f"{served}, not {nx}")
    if level > max_levels:
        raise ValueError(f"{served}; nx = {nx} would need {level} levels")
    return level


def solve_trajectories(data: BurgersData, level: int, generator: torch.Generator,
                       n: int | None = None, refine: int | None = None,
                       progress: bool = False, device: torch.device | str = "cpu") -> Fields:
    """Draw ``n`` WDNO Burgers problems and solve them on ``data.grid(level)``.

    Returns model fields at that level (u (n, nt, nx + 1) ...) on the CPU, a share
    ``data.unforced_fraction`` of them without forcing. The problems are drawn on the CPU
    (the same for every ``device``); ``device`` is where the solver runs (a GPU solves a
    large batch in one pass per time step).
    """
    n = data.n if n is None else n
    grid = data.grid(level)
    burgers_cost(grid, n, nu=data.nu, u_max=INITIAL_AMPLITUDE, refine=refine or data.refine).check(
        f"solving {n} training trajectories on the {grid.nt} x {grid.nx} grid",
        "choose a smaller data block (n, nx, nt, finer) or a larger nu")
    problem = sample_burgers_problem(n, grid, generator)
    x, t = grid.x(), grid.t()
    f = problem.forcing.on_grid(t, x)
    unforced = torch.rand(n, generator=generator) < data.unforced_fraction
    f[unforced] = 0.0
    f[:, -1] = f[:, -2]  # the model does not store f(t_nt): make it what from_model_grid assumes
    u = solve_burgers(problem.to(device).u0, grid, nu=data.nu, forcing=f,
                      refine=refine or data.refine, progress=progress, device=device).cpu()
    return to_model_grid(u, f)
