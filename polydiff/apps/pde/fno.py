"""Fourier neural operator baselines for 1-D PDE trajectories (Li et al., ICLR 2021).

Two tasks, one network class:

* ``step``: a 1-D FNO maps (u(t_k), f(t_k), f(t_k+1)) on x to u(t_k+1) - u(t_k); trajectories
  come from an autoregressive rollout from u0.
* ``trajectory``: a 2-D FNO over the (t, x) grid maps (u0 repeated along t, f(t, x)) to the
  whole trajectory u(t, x) at once (the operator-learning setting of WDNO's FNO baseline).

The network is a diffusers ``ModelMixin``/``ConfigMixin``, so ``save_pretrained`` writes
safetensors and ``from_pretrained`` reads them back; the normalisation scales and the task
are part of its config. Non-periodic axes (time, Dirichlet space) are zero-padded by a
fraction ``padding`` of their length before the Fourier layers and cropped after, as in the
FNO paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import Tensor, nn
from tqdm.auto import tqdm

from polydiff.physics.pde_data import Trajectories

TASKS = ("step", "trajectory")


class SpectralConv(nn.Module):
    """Fourier layer: FFT over the last d axes, a complex channel mix of the lowest modes.

    Weights hold (real, imag) in a trailing axis so that they save as plain safetensors.
    Shapes: input and output (B, C, *S) with len(S) = d = len(modes) in {1, 2}.
    """

    def __init__(self, channels: int, modes: tuple[int, ...]):
        super().__init__()
        self.modes = tuple(modes)
        corners = 2 ** (len(modes) - 1)  # non-last axes keep positive and negative frequencies
        self.weight = nn.Parameter(torch.zeros(corners, channels, channels, *modes, 2))

    def _mix(self, coeffs: Tensor, corner: int) -> Tensor:
        w = torch.view_as_complex(self.weight[corner])
        return torch.einsum("bi...,io...->bo...", coeffs, w)

    def forward(self, x: Tensor) -> Tensor:
        # transform only what is kept: rFFT over the last axis, cut, then FFT over the first
        xf = torch.fft.rfft(x, norm="ortho")[..., : self.modes[-1]]
        if len(self.modes) == 1:
            out = self._mix(xf, 0)
        else:
            m0 = self.modes[0]
            xf = torch.fft.fft(xf, dim=-2, norm="ortho")
            out = torch.zeros(*xf.shape[:1], self.weight.shape[2], *xf.shape[2:],
                              dtype=xf.dtype, device=xf.device)
            out[..., :m0, :] = self._mix(xf[..., :m0, :], 0)
            out[..., -m0:, :] = self._mix(xf[..., -m0:, :], 1)
            out = torch.fft.ifft(out, dim=-2, norm="ortho")
        return torch.fft.irfft(out, n=x.shape[-1], norm="ortho")  # missing modes are zero


class FNO(ModelMixin, ConfigMixin):
    """A small FNO: lift (1x1) -> ``n_layers`` x (spectral + 1x1, GELU) -> project (1x1, 1x1).

    Args:
        in_channels: input fields (the grid coordinates are appended inside).
        out_channels: output fields.
        width: channels of the Fourier layers.
        modes: retained Fourier modes per axis; its length (1 or 2) is the grid's dimension.
        n_layers: Fourier layers.
        padding: zeros appended to every axis, as a fraction of its length (for non-periodic
            problems); a fraction, so that the same model serves finer grids (zero-shot).
        task: ``step`` or ``trajectory`` (read by :func:`predict`).
        u_scale, f_scale: the state and forcing are divided by these before the network.
        out_scale: the network's output is multiplied by this (the RMS of the one-step change
            for ``step``, of u for ``trajectory``).
    """

    @register_to_config
    def __init__(self, in_channels: int = 3, out_channels: int = 1, width: int = 32,
                 modes: tuple[int, ...] = (12,), n_layers: int = 4, padding: float = 0.25,
                 task: str = "step", u_scale: float = 1.0, f_scale: float = 1.0,
                 out_scale: float = 1.0):
        super().__init__()
        if task not in TASKS or len(modes) not in (1, 2):
            raise ValueError(f"need task in {TASKS} and 1 or 2 modes, got {task!r}, {modes}")
        conv = nn.Conv1d if len(modes) == 1 else nn.Conv2d
        self.lift = conv(in_channels + len(modes), width, 1)
        self.spectral = nn.ModuleList(SpectralConv(width, tuple(modes)) for _ in range(n_layers))
        self.pointwise = nn.ModuleList(conv(width, width, 1) for _ in range(n_layers))
        self.project = nn.Sequential(conv(width, 2 * width, 1), nn.GELU(),
                                     conv(2 * width, out_channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, *S) normalised inputs -> (B, out_channels, *S)."""
        size = x.shape[2:]
        grids = [torch.linspace(0, 1, n, dtype=x.dtype, device=x.device) for n in size]
        coords = torch.stack(torch.meshgrid(*grids, indexing="ij"))
        x = torch.cat([x, coords.expand(x.shape[0], *coords.shape)], 1)
        pad = [round(self.config.padding * n) for n in size]
        h = F.pad(self.lift(x), [p for n in reversed(pad) for p in (0, n)])
        for k, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise)):
            h = spectral(h) + pointwise(h)
            if k < len(self.spectral) - 1:
                h = F.gelu(h)
        h = h[(..., *(slice(0, n) for n in size))]
        return self.project(h)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Seeded initialisation: 1x1 convs U(+-1/sqrt(fan_in)), zero biases, spectral weights
        U(0, 1/(C_in C_out)) (the FNO paper's scale); no global random state is touched."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
                elif name.startswith("spectral"):
                    p.copy_(torch.rand(p.shape, generator=generator) / (p.shape[1] * p.shape[2]))
                else:
                    bound = 1.0 / math.sqrt(p.shape[1])
                    p.copy_((2 * torch.rand(p.shape, generator=generator) - 1) * bound)


@dataclass
class FNOTrainConfig:
    """Training of one FNO baseline (seeded, CPU-sized defaults)."""

    task: str = "step"
    width: int = 32
    modes: tuple[int, ...] = (12,)
    n_layers: int = 4
    padding: float = 0.25
    steps: int = 1000
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0


class FNOResult(NamedTuple):
    """A trained FNO and its training losses (one per step)."""

    model: FNO
    losses: list[float]


def _forcing(data: Trajectories) -> Tensor:
    return torch.zeros_like(data.u) if data.forcing is None else data.forcing


def _scale(a: Tensor) -> float:
    return float(a.pow(2).mean().sqrt().clamp_min(1e-6))


def _step_inputs(u: Tensor, f_now: Tensor, f_next: Tensor, model: FNO) -> Tensor:
    """(B, nx) each -> (B, 3, nx) normalised."""
    c = model.config
    return torch.stack([u / c.u_scale, f_now / c.f_scale, f_next / c.f_scale], 1)


def _trajectory_inputs(u0: Tensor, f: Tensor, model: FNO) -> Tensor:
    """u0 (B, nx), f (B, nt, nx) -> (B, 2, nt, nx) normalised."""
    c = model.config
    return torch.stack([u0[:, None].expand_as(f) / c.u_scale, f / c.f_scale], 1)


def _training_pairs(data: Trajectories, model: FNO) -> tuple[Tensor, Tensor]:
    """Inputs and normalised targets of every training example of the model's task."""
    u, f = data.u, _forcing(data)
    if model.config.task == "step":
        x = _step_inputs(u[:, :-1].flatten(0, 1), f[:, :-1].flatten(0, 1),
                         f[:, 1:].flatten(0, 1), model)
        y = (u[:, 1:] - u[:, :-1]).flatten(0, 1)[:, None]
    else:
        x, y = _trajectory_inputs(u[:, 0], f, model), u[:, None]
    return x, y / model.config.out_scale


def train_fno(data: Trajectories, cfg: FNOTrainConfig, *, progress: bool = False) -> FNOResult:
    """Fit an FNO of ``cfg.task`` to ``data`` (1-D trajectories) by Adam on the MSE.

    Deterministic for a given ``cfg.seed`` (initialisation and batches come from seeded
    generators). The scales of u and f are set from ``data`` and stored in the model.
    """
    if data.y is not None:
        raise ValueError("the FNO baselines serve 1-D equations")
    step = cfg.task == "step"
    g = torch.Generator().manual_seed(cfg.seed)
    model = FNO(in_channels=3 if step else 2, width=cfg.width, modes=tuple(cfg.modes),
                n_layers=cfg.n_layers, padding=cfg.padding, task=cfg.task,
                u_scale=_scale(data.u),
                f_scale=1.0 if data.forcing is None else _scale(data.forcing),
                out_scale=_scale(data.u[:, 1:] - data.u[:, :-1]) if step else _scale(data.u))
    model.reset_parameters(g)
    x, y = _training_pairs(data, model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    losses = []
    for _ in tqdm(range(cfg.steps), desc=f"fno-{cfg.task}", disable=not progress):
        idx = torch.randint(len(x), (min(cfg.batch_size, len(x)),), generator=g)
        loss = F.mse_loss(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return FNOResult(model, losses)


@torch.no_grad()
def predict(model: FNO, u0: Tensor, forcing: Tensor | None, nt: int) -> Tensor:
    """Trajectories from initial states u0 (N, nx) and forcing (N, nt, nx) or None: (N, nt, nx).

    ``step`` models roll out nt - 1 steps autoregressively; ``trajectory`` models predict all
    times at once. Entry 0 is u0 in both.
    """
    u0 = u0.to(torch.float32)
    f = torch.zeros(u0.shape[0], nt, u0.shape[-1]) if forcing is None else forcing.float()
    if model.config.task == "trajectory":
        out = model(_trajectory_inputs(u0, f, model))[:, 0] * model.config.out_scale
        return torch.cat([u0[:, None], out[:, 1:]], 1)
    states = [u0]
    for k in range(nt - 1):
        delta = model(_step_inputs(states[-1], f[:, k], f[:, k + 1], model))[:, 0]
        states.append(states[-1] + delta * model.config.out_scale)
    return torch.stack(states, 1)
