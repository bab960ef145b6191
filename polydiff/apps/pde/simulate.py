"""``polydiff pde simulate``: Burgers trajectories from an initial state (and forcing) by WDNO."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from polydiff.apps.pde.dataset import from_model_grid, grid_level
from polydiff.apps.pde.model import PDEModel, superres_for
from polydiff.apps.pde.output import TrajectorySet
from polydiff.apps.pde.pipeline import simulate_fields
from polydiff.physics.burgers import BurgersGrid, sample_burgers_problem
from polydiff.runtime import UserError, make_generator


@dataclass
class Request:
    """What to simulate: ``u0`` (nx,) on interior nodes, ``forcing`` (nt + 1, nx) or None
    (no forcing), ``members`` samples, ``steps`` reverse steps (None: the model's default)."""

    u0: np.ndarray
    forcing: np.ndarray | None = None
    members: int = 1
    steps: int | None = None
    seed: int = 0


def level_grid(model: PDEModel, nx: int) -> tuple[int, BurgersGrid]:
    """The level (2x refinements over the base) serving ``nx`` points, and its solver grid."""
    try:
        level = grid_level(nx, model.config.data.nx)
    except ValueError as err:
        raise UserError(str(err)) from err
    return level, model.config.data.grid(level)


def draw_initial(model: PDEModel, nx: int, seed: int) -> np.ndarray:
    """One initial state (nx,) from the training distribution, drawn with ``seed``."""
    _, grid = level_grid(model, nx)
    problem = sample_burgers_problem(1, grid, torch.Generator().manual_seed(seed))
    return problem.u0(grid.x())[0].float().numpy()


def check_request(model: PDEModel, req: Request) -> tuple[int, BurgersGrid]:
    """Refuse what the model cannot serve, naming the problem; return level and grid."""
    if req.u0.ndim != 1:
        raise UserError(f"the initial state must be one profile (nx,), got shape {req.u0.shape}")
    if not np.all(np.isfinite(req.u0)):
        raise UserError("the initial state holds NaN or infinite values")
    level, grid = level_grid(model, req.u0.shape[0])
    if req.forcing is not None:
        if req.forcing.shape != (grid.nt, grid.nx):
            raise UserError(f"the forcing must have shape (nt + 1, nx) = {(grid.nt, grid.nx)} "
                            f"for this grid, got {req.forcing.shape}")
        if not np.all(np.isfinite(req.forcing)):
            raise UserError("the forcing holds NaN or infinite values")
    if req.members < 1 or (req.steps is not None and req.steps < 1):
        raise UserError("--members and --steps must be at least 1")
    return level, grid


def simulate(model: PDEModel, req: Request, *, superres_folder: Path | None = None,
             progress: bool = False) -> TrajectorySet:
    """Sample ``req.members`` trajectories; finer grids than the base go through the SR model.

    Returns the trajectories in the solver layout (u0 at t_0 read back from the sample).
    """
    level, grid = check_request(model, req)
    superres = superres_for(model, superres_folder, model.device) if level > 0 else None
    pad = torch.nn.functional.pad
    u0 = pad(torch.as_tensor(req.u0, dtype=torch.float32), (1, 0))
    u0 = u0[None].expand(req.members, -1).contiguous()  # (M, n) on the model grid
    f = np.zeros((grid.nt, grid.nx), np.float32) if req.forcing is None else req.forcing
    f = pad(torch.as_tensor(f, dtype=torch.float32)[:-1], (1, 0))  # t_0..t_{nt-1}, (nt, n)
    f = f[None].expand(req.members, -1, -1).contiguous()
    generator = make_generator(req.seed, model.device)
    fields = simulate_fields(model, u0.to(model.device), f.to(model.device), level=level,
                             superres=superres, steps=req.steps, generator=generator,
                             progress=progress)
    u, forcing = (v.detach().cpu().numpy() for v in from_model_grid(fields))
    steps = req.steps or model.config.sampling.steps
    attrs = {"equation": "burgers", "nu": model.config.data.nu, "model": str(model.folder),
             "model_kind": f"WDNO ({model.config.layout.domain} domain)",
             "superres_levels": level, "steps": steps, "seed": req.seed,
             "forcing": "given" if req.forcing is not None else "none (f = 0)"}
    return TrajectorySet(u=u, f=forcing, t=grid.t().numpy(), x=grid.x().numpy(),
                         u0=req.u0.astype(np.float32), attrs=attrs)
