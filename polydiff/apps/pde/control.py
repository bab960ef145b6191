"""``polydiff pde control``: the forcing that drives Burgers from u0 to a target final state
with least energy, by guidance on the joint (state, forcing) trajectory (WDNO's control task).

Objective (WDNO Burgers control), on the interior nodes:

    J(f) = sum_x (u(T, x) - u_target(x))^2 dx + alpha * sum_{t,x} f(t, x)^2 dt dx

The diffusion model samples (u, f) given u0 (``ReplaceKnown``) while the backbone's
``MeasurementGuidance`` pulls every particle's clean estimate towards small J, through
two linear read-outs of the decoded sample (final state minus target; weighted forcing)
stacked into one operator, so that misfit = J / (2 sigma^2). Each member's forcing is then
checked with the numerical solver, and J is reported for the solver's trajectory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from polydiff.apps.pde.dataset import from_model_grid
from polydiff.apps.pde.model import PDEModel
from polydiff.apps.pde.representation import Layout
from polydiff.apps.pde.sampling import conditions, sample_level
from polydiff.apps.pde.simulate import Request, check_range, check_request
from polydiff.apps.pde.trajectories import TrajectorySet
from polydiff.diffusion.guidance import MeasurementGuidance
from polydiff.diffusion.operators import Operator, Stack
from polydiff.physics.burgers import solve_burgers
from polydiff.runtime import UserError, check_finite, make_generator


class Readout(Operator):
    """y = read(decode(x)): a linear map of a normalised sample's physical channels.

    ``read`` takes the decoded channels (B, 3, nt, n) (u, f, u0 repeated) to (B, ...);
    the adjoint is its vector-Jacobian product on samples of shape ``(B, *item_shape)``.
    """

    def __init__(self, layout: Layout, read: Callable[[Tensor], Tensor], sigma: float,
                 item_shape: tuple[int, ...]) -> None:
        self.layout, self.read, self.sigma = layout, read, float(sigma)
        self.item_shape = tuple(item_shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.read(self.layout.decode_all(x))

    def adjoint(self, y: Tensor) -> Tensor:
        zero = torch.zeros(y.shape[0], *self.item_shape, dtype=y.dtype, device=y.device)
        _, vjp = torch.func.vjp(self.forward, zero)
        return vjp(y)[0]


def control_operator(layout: Layout, item_shape: tuple[int, ...], dt: float, dx: float,
                     alpha: float, sigma: float) -> Stack:
    """Operator on samples (B, *item_shape) whose misfit against ``control_measurement`` is
    J / (2 sigma^2)."""
    final = Readout(layout, lambda p: p[:, 0, -1, 1:] * math.sqrt(dx), sigma, item_shape)
    energy = Readout(layout, lambda p: p[:, 1, :, 1:] * math.sqrt(alpha * dt * dx), sigma,
                     item_shape)
    return Stack([final, energy])


def control_measurement(target: Tensor, nt: int, dx: float) -> list[Tensor]:
    """y for :func:`control_operator`: the scaled target (B, nx) and zero forcing."""
    b, nx = target.shape
    return [target * math.sqrt(dx), torch.zeros(b, nt, nx).to(target)]


def objective(u: np.ndarray, f: np.ndarray, target: np.ndarray, dt: float, dx: float,
              alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(terminal misfit, energy) per member of trajectories u, f (M, nt + 1, nx):
    sum (u_T - target)^2 dx and sum f^2 dt dx over the nt intervals."""
    misfit = ((u[:, -1] - target) ** 2).sum(-1) * dx
    energy = (f[:, :-1] ** 2).sum((-2, -1)) * dt * dx
    return misfit, alpha * energy


@dataclass
class ControlSettings:
    """``alpha``: energy weight in J; ``sigma``: likelihood std (smaller: stronger pull);
    ``weight``: guidance step weight; ``mode``/``variance_inflation``: as in the backbone's
    ``MeasurementGuidance``; ``guided``: False samples the forcing unguided."""

    alpha: float = 0.01
    sigma: float = 0.2  # tuned on 16 problems (seed 555) for the 113 000-step bundle
    weight: float = 1.0
    mode: str = "score"
    variance_inflation: bool = False
    guided: bool = True


def control(model: PDEModel, u0: np.ndarray, target: np.ndarray, *, members: int = 4,
            steps: int | None = None, seed: int = 0,
            settings: ControlSettings | None = None, progress: bool = False) -> TrajectorySet:
    """Sample ``members`` (state, forcing) trajectories from u0 towards ``target`` (both
    (nx,) on the base grid); re-solve each forcing with the solver and rank by J.

    Returns a TrajectorySet with the model's u, the forcing, and extra variables
    ``u_solver`` (member, t, x), ``target`` (x), ``misfit``/``energy``/``objective``
    (member) from the solver's trajectories, and attribute ``best_member``.
    """
    settings = settings or ControlSettings()
    if not (settings.alpha > 0 and settings.sigma > 0):  # also refuses NaN
        raise UserError(f"--alpha and --sigma must be positive numbers, got {settings.alpha} "
                        f"and {settings.sigma}")
    level, grid = check_request(model, Request(u0=u0, members=members, steps=steps),
                                grad=settings.guided)
    if level != 0:
        raise UserError(f"control runs on the model's base grid (nx = {model.config.data.nx})")
    if target.shape != u0.shape:
        raise UserError(f"the target must be a profile of {u0.shape[0]} points like the "
                        f"initial state, got shape {target.shape}")
    check_range(model, target, "u", "the target")
    layout, nt = model.config.layout, model.config.data.nt
    dt, dx = grid.t_final / nt, grid.dx
    pad = torch.nn.functional.pad
    u0_t = pad(torch.as_tensor(u0), (1, 0))[None].expand(members, -1).to(model.device)
    target_t = torch.as_tensor(target)[None].expand(members, -1).to(model.device)
    hooks = []
    if settings.guided:
        shape = layout.sample_shape(nt, grid.nx + 1)
        op = control_operator(layout, shape, dt, dx, settings.alpha, settings.sigma)
        y = control_measurement(target_t, nt, dx)
        hooks.append(MeasurementGuidance(op, y, weight=settings.weight, mode=settings.mode,
                                         variance_inflation=settings.variance_inflation))
    x = sample_level(model, conditions(u0_t, None, nt), forcing_known=False,
                     steps=steps or model.config.sampling.steps,
                     generator=make_generator(seed, model.device), hooks=hooks,
                     progress=progress, desc="control")
    u, f = (v.detach().cpu() for v in from_model_grid(layout.decode(x)))
    too_strong = (f"guidance too strong (it grows as 1 / sigma^2 = {settings.sigma ** -2:.3g} "
                  f"and with alpha = {settings.alpha:g}): use a larger --sigma or a smaller "
                  "--alpha")
    check_finite(torch.cat([u, f], 1), "the guided sample", too_strong)
    try:  # the solver check below would crawl through a forcing far beyond the model's
        check_range(model, f.numpy(), "f", "the guided forcing")
    except UserError as err:
        raise UserError(f"{err}; likely cause: {too_strong}") from err
    try:
        solved = solve_burgers(torch.as_tensor(u0, dtype=torch.float64)[None].expand(members, -1),
                               grid, nu=model.config.data.nu, forcing=f.double()).float().numpy()
    except FloatingPointError as err:
        raise UserError(f"the solver check of the sampled forcings failed ({err}); use a larger "
                        "--sigma") from err
    f = f.numpy()
    misfit, energy = objective(solved, f, target, dt, dx, settings.alpha)
    total = misfit + energy
    attrs = {"equation": "burgers", "nu": model.config.data.nu, "model": str(model.folder),
             "steps": steps or model.config.sampling.steps, "seed": seed,
             "alpha": settings.alpha, "guidance_sigma": settings.sigma,
             "guided": int(settings.guided), "best_member": int(np.argmin(total)),
             "objective": "sum (u_T - target)^2 dx + alpha sum f^2 dt dx, solver-checked"}
    extra = {
        "u_solver": (("member", "t", "x"), solved.astype(np.float32),
                     {"long_name": "solver trajectory under the sampled forcing"}),
        "target": (("x",), target.astype(np.float32), {"long_name": "target final state"}),
        "misfit": (("member",), misfit, {"long_name": "sum (u_T - target)^2 dx"}),
        "energy": (("member",), energy, {"long_name": "alpha sum f^2 dt dx"}),
        "objective": (("member",), total, {"long_name": "J = misfit + energy"}),
    }
    return TrajectorySet(u=u.numpy(), f=f, t=grid.t().numpy(), x=grid.x().numpy(),
                         u0=u0.astype(np.float32), attrs=attrs, extra=extra)
