"""Data of the PDE-Refiner models: solver trajectories, normalisation and one-step pairs.

Trajectories are :class:`~polydiff.physics.pde_data.Trajectories` in the solver layout
(N, nt + 1, nx): Kuramoto–Sivashinsky from :mod:`polydiff.physics.kuramoto_sivashinsky`,
Burgers from the pde app's WDNO training data (the same problems, the same solver). On the
network's grid a Burgers state gets the left wall x = 0 (where u = 0) in front of its nx
interior nodes, as the WDNO model grid does, so that n = nx + 1 is a power of two.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.functional import pad

from polydiff.apps.pde.config import RefinerConfig, Scales
from polydiff.apps.pde.dataset import from_model_grid, solve_trajectories
from polydiff.physics.kuramoto_sivashinsky import sample_ks_trajectories
from polydiff.physics.pde_data import Trajectories


def make_trajectories(config: RefinerConfig, *, n: int | None = None, nt: int | None = None,
                      seed: int | None = None, progress: bool = False) -> Trajectories:
    """Solver trajectories of the config's equation: the training set by default; ``n``,
    ``nt`` (KS only: saved intervals) and ``seed`` draw other sets (held-out seeds)."""
    if config.ks is not None:
        data = config.ks
        grid = data.grid(nt)
        g = torch.Generator().manual_seed(data.seed if seed is None else seed)
        u = sample_ks_trajectories(n or data.n, grid, g, progress=progress)
        r = data.refine
        return Trajectories(u[..., ::r].float(), grid.x()[::r], grid.t(),
                            equation="kuramoto-sivashinsky", params={"L": data.length})
    data = config.burgers
    if nt is not None and nt != data.nt:
        raise ValueError(f"Burgers trajectories have nt = {data.nt} saved intervals")
    g = torch.Generator().manual_seed(data.seed if seed is None else seed)
    fields = solve_trajectories(data, 0, g, n=n or data.n, progress=progress)
    u, f = from_model_grid(fields)
    grid = data.grid(0)
    return Trajectories(u, grid.x(), grid.t(), forcing=f, equation="burgers",
                        params={"Nu": data.nu})


def to_network(config: RefinerConfig, u: Tensor) -> Tensor:
    """States (..., nx) on the network's grid (..., n): Burgers gets its left wall (0)."""
    return u if config.periodic else pad(u, (1, 0))


def from_network(config: RefinerConfig, u: Tensor) -> Tensor:
    """The inverse of :func:`to_network`."""
    return u if config.periodic else u[..., 1:]


def _rms(a: Tensor) -> float:
    return float(a.double().pow(2).mean().sqrt().clamp_min(1e-6))


def targets(config: RefinerConfig, u_now: Tensor, u_next: Tensor) -> Tensor:
    """What the model predicts before scaling: the change of the state, or the next state."""
    return u_next - u_now if config.predict_difference else u_next


def pairs(config: RefinerConfig, traj: Trajectories) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Every (state, state ``stride`` saved intervals later) pair, with the forcing at both
    times (zeros when there is none): u_now, u_next, f_now, f_next, each (P, nx)."""
    s = config.stride
    if traj.u.shape[1] <= s:
        raise ValueError(f"trajectories of {traj.u.shape[1]} states hold no pair {s} apart")
    f = torch.zeros_like(traj.u) if traj.forcing is None else traj.forcing
    return (traj.u[:, :-s].flatten(0, 1), traj.u[:, s:].flatten(0, 1),
            f[:, :-s].flatten(0, 1), f[:, s:].flatten(0, 1))


def fit_scales(config: RefinerConfig, traj: Trajectories) -> Scales:
    """RMS of u, of the forcing (1 without one) and of the prediction target."""
    u_now, u_next, _, _ = pairs(config, traj)
    f = 1.0 if traj.forcing is None or not traj.forcing.abs().max() > 0 else _rms(traj.forcing)
    return Scales(u=_rms(traj.u), f=f, out=_rms(targets(config, u_now, u_next)))


def condition(config: RefinerConfig, u: Tensor, f_now: Tensor | None,
              f_next: Tensor | None) -> Tensor:
    """The network's condition channels (B, C, n) from states u (B, nx) and, for Burgers, the
    forcing (B, nx) at the step's start and end (None: zero forcing)."""
    s = config.scales
    channels = [u / s.u]
    if config.cond_channels == 3:
        zeros = torch.zeros_like(u)
        channels += [(zeros if f_now is None else f_now) / s.f,
                     (zeros if f_next is None else f_next) / s.f]
    return to_network(config, torch.stack(channels, 1).float())


def training_set(config: RefinerConfig, traj: Trajectories) -> dict[str, Tensor]:
    """The backbone's dataset: ``x`` the normalised targets (P, 1, n), ``cond`` (P, C, n)."""
    u_now, u_next, f_now, f_next = pairs(config, traj)
    y = targets(config, u_now, u_next) / config.scales.out
    return {"x": to_network(config, y[:, None].float()),
            "cond": condition(config, u_now, f_now, f_next)}
