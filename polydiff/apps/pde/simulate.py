"""``polydiff pde simulate``: trajectories from an initial state (and forcing) by WDNO (Burgers,
the whole trajectory at once) or PDE-Refiner (Kuramoto–Sivashinsky or Burgers, step by step)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from polydiff.apps.pde.dataset import from_model_grid, grid_level
from polydiff.apps.pde.model import PDEModel, RefinerModel, superres_for
from polydiff.apps.pde.sampling import sampling_bytes, simulate_fields
from polydiff.apps.pde.trajectories import TrajectorySet
from polydiff.physics.burgers import BurgersGrid, sample_burgers_problem
from polydiff.runtime import UserError, check_memory, make_generator

KNOWN_RANGE = 10.0
"""Inputs may reach this many times the RMS of the model's training data (from its
normalisation); the training data themselves stay within about 3x (u0) and 7x (forcing)."""

FIELD_NAMES = {"u0": "initial states", "f": "forcings", "u": "states"}


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


def check_range(model: PDEModel, values: np.ndarray, field: str, what: str) -> None:
    """Refuse ``values`` of the physical channel ``field`` (``u0``, ``f`` or ``u``) that are
    not finite or reach beyond :data:`KNOWN_RANGE` times the RMS of the training data."""
    if not np.all(np.isfinite(values)):
        raise UserError(f"{what} holds NaN or infinite values")
    rms = model.config.layout.field_rms(field)
    limit = KNOWN_RANGE * rms
    peak = float(np.abs(values).max()) if values.size else 0.0
    if peak > limit:
        raise UserError(f"{what} reaches |value| = {peak:.3g}, outside what the model knows: "
                        f"it was trained on {FIELD_NAMES[field]} of RMS {rms:.3g} (its "
                        f"normalisation) and takes values up to {limit:.3g} "
                        f"({KNOWN_RANGE:g} x that RMS)")


def check_request(model: PDEModel, req: Request, *, grad: bool = False,
                  ) -> tuple[int, BurgersGrid]:
    """Refuse what the model cannot serve, naming the problem; return level and grid.

    Checks shapes, finiteness and range of the inputs, and the memory of sampling
    ``req.members`` trajectories (``grad``: with guidance gradients).
    """
    if req.u0.ndim != 1:
        raise UserError(f"the initial state must be one profile (nx,), got shape {req.u0.shape}")
    level, grid = level_grid(model, req.u0.shape[0])
    check_range(model, req.u0, "u0", "the initial state")
    if req.forcing is not None:
        if req.forcing.shape != (grid.nt, grid.nx):
            raise UserError(f"the forcing must have shape (nt + 1, nx) = {(grid.nt, grid.nx)} "
                            f"for this grid, got {req.forcing.shape}")
        check_range(model, req.forcing, "f", "the forcing")
    if req.members < 1 or (req.steps is not None and req.steps < 1):
        raise UserError("--members and --steps must be at least 1")
    check_memory(sampling_bytes(model.config, req.members, level, grad=grad),
                 f"sampling {req.members} member(s) on the {grid.nt} x {grid.nx} grid")
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


# ============================================================ PDE-Refiner
def refiner_grid(model: RefinerModel) -> tuple[np.ndarray, float]:
    """Positions (nx,) of the refiner's states and the time of one model step."""
    c = model.config
    if c.ks is not None:
        return c.ks.grid().x()[:: c.ks.refine].numpy(), c.step_dt
    return c.burgers.grid(0).x().numpy(), c.step_dt


def draw_refiner_initial(model: RefinerModel, seed: int) -> np.ndarray:
    """One initial state (nx,) of the refiner's training distribution, drawn with ``seed``
    (KS: a random state after the solver's burn-in)."""
    from polydiff.apps.pde.refiner_data import make_trajectories

    nt = 1 if model.config.ks is not None else None  # Burgers: its grid (the state at t_0)
    return make_trajectories(model.config, n=1, nt=nt, seed=seed).u[0, 0].numpy()


def simulate_refiner(model: RefinerModel, req: Request, *, model_steps: int | None = None,
                     progress: bool = False) -> TrajectorySet:
    """Roll PDE-Refiner out from ``req.u0`` (nx,) for ``model_steps`` steps (default: the
    Burgers grid's nt / stride; KS needs it); ``req.members`` rollouts with independent
    refinement noise (identical for an MSE model, K = 0). ``req.forcing`` (nt + 1, nx) on
    the saved grid (Burgers) or None. Returns states at the model's steps."""
    from polydiff.apps.pde.refiner import rollout

    c = model.config
    x, dt = refiner_grid(model)
    if req.u0.shape != x.shape:
        raise UserError(f"the initial state must have the model's {x.size} points, got shape "
                        f"{req.u0.shape}")
    if req.steps is not None:
        raise UserError(f"PDE-Refiner refines each step {c.refinement_steps} times, as "
                        "trained; --steps does not apply")
    for values, what, rms in ((req.u0, "the initial state", c.scales.u),
                              (req.forcing, "the forcing", c.scales.f)):
        if values is not None and not np.all(np.isfinite(values)):
            raise UserError(f"{what} holds NaN or infinite values")
        if values is not None and np.abs(values).max() > KNOWN_RANGE * rms:
            raise UserError(f"{what} reaches |value| = {np.abs(values).max():.3g}, beyond "
                            f"{KNOWN_RANGE:g} x the RMS {rms:.3g} of the model's training data")
    if c.burgers is not None:
        model_steps = model_steps or c.burgers.nt // c.stride
        saved = model_steps * c.stride + 1
        if req.forcing is not None and req.forcing.shape != (saved, x.size):
            raise UserError(f"the forcing must have shape (nt + 1, nx) = {(saved, x.size)}, "
                            f"got {req.forcing.shape}")
    elif req.forcing is not None:
        raise UserError("Kuramoto-Sivashinsky has no forcing")
    if not model_steps or model_steps < 1:
        raise UserError("the number of model steps must be at least 1")
    check_memory(4.0 * req.members * (model_steps + 1) * x.size * 4,
                 f"{req.members} rollout(s) of {model_steps} steps")
    u0 = torch.as_tensor(req.u0, dtype=torch.float32)[None].expand(req.members, -1)
    forcing = None
    if req.forcing is not None:
        forcing = torch.as_tensor(req.forcing, dtype=torch.float32)[None]
        forcing = forcing.expand(req.members, -1, -1)
    generator = make_generator(req.seed, model.device)
    u = rollout(model, u0, model_steps, forcing, generator=generator,
                progress=progress).cpu().numpy()
    f = np.zeros_like(u) if forcing is None else \
        forcing[:, :: c.stride][:, : model_steps + 1].numpy()
    kind = f"PDE-Refiner (K = {c.refinement_steps})" if c.refinement_steps else \
        "MSE one-step U-Net (K = 0)"
    attrs = {"equation": "kuramoto-sivashinsky" if c.ks is not None else "burgers",
             "model": str(model.folder), "model_kind": kind, "seed": req.seed,
             "step_dt": dt, "forcing": "given" if req.forcing is not None else "none (f = 0)"}
    names = {}
    if c.ks is not None:
        attrs["length"] = c.ks.length
        names = {"u_name": "Kuramoto-Sivashinsky state u",
                 "x_name": f"position on the periodic domain [0, {c.ks.length:g})"}
    else:
        attrs["nu"] = c.burgers.nu
    return TrajectorySet(u=u, f=f, t=np.arange(model_steps + 1) * dt, x=x,
                         u0=req.u0.astype(np.float32), attrs=attrs, **names)
