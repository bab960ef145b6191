"""diffusers schedulers by name, and the noise level ᾱ each one is at."""

from __future__ import annotations

import inspect

import diffusers
import torch
from torch import Tensor

# One explicit table: short name -> (diffusers class, extra constructor arguments).
SCHEDULERS: dict[str, tuple[type, dict]] = {
    "ddpm": (diffusers.DDPMScheduler, {}),
    "ddim": (diffusers.DDIMScheduler, {}),
    "dpmsolver++": (diffusers.DPMSolverMultistepScheduler,
                    {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "unipc": (diffusers.UniPCMultistepScheduler, {}),
    "euler": (diffusers.EulerDiscreteScheduler, {}),
    "euler_ancestral": (diffusers.EulerAncestralDiscreteScheduler, {}),
    "lcm": (diffusers.LCMScheduler, {}),
}


def make_scheduler(
    name: str,
    *,
    prediction_type: str = "epsilon",
    num_train_timesteps: int = 1000,
    beta_schedule: str = "squaredcos_cap_v2",
    **kwargs,
):
    """A diffusers scheduler by short name (see ``SCHEDULERS``); kwargs go to its constructor."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose from {sorted(SCHEDULERS)}")
    cls, extra = SCHEDULERS[name]
    if "clip_sample" in inspect.signature(cls.__init__).parameters:
        extra = {"clip_sample": False, **extra}  # data are not assumed to lie in [-1, 1]
    return cls(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
               prediction_type=prediction_type, **{**extra, **kwargs})


def switch_scheduler(scheduler, name: str, **kwargs):
    """The scheduler ``name`` built from another scheduler's config (same noise schedule)."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose from {sorted(SCHEDULERS)}")
    cls, extra = SCHEDULERS[name]
    return cls.from_config(scheduler.config, **{**extra, **kwargs})


def is_sigma_parameterised(scheduler) -> bool:
    """True for schedulers that keep x = x₀ + σ·ε (Euler, Heun, …) rather than VP x_t."""
    return float(getattr(scheduler, "init_noise_sigma", 1.0)) != 1.0


def alpha_bar_at(scheduler, timestep: Tensor | int | float, index: int) -> Tensor:
    """ᾱ at the ``index``-th step of the current ``scheduler.timesteps`` (timestep ``timestep``).

    σ-parameterised schedulers give ᾱ = 1 / (1 + σ²) from their own σ table, so
    fractional and Karras timesteps are exact; the others read ``alphas_cumprod``.
    """
    if is_sigma_parameterised(scheduler):
        sigma = scheduler.sigmas[index].to(torch.float64)
        return (1.0 / (1.0 + sigma**2)).float()
    t = int(torch.as_tensor(timestep).round().item())
    return scheduler.alphas_cumprod[t].float()


def alpha_bar_of_timestep(scheduler, timestep: Tensor | float) -> Tensor:
    """ᾱ at a (possibly fractional) training timestep, as σ-schedulers interpolate it.

    Integer timesteps give ``alphas_cumprod[t]`` exactly; fractional ones interpolate
    σ = √((1−ᾱ)/ᾱ) linearly between neighbours (diffusers' "linear" interpolation).
    """
    ac = scheduler.alphas_cumprod.to(torch.float64)
    sigmas = ((1 - ac) / ac).sqrt()
    t = torch.as_tensor(timestep, dtype=torch.float64).clamp(0, len(ac) - 1)
    lo = t.floor().long()
    hi = (lo + 1).clamp(max=len(ac) - 1)
    frac = t - lo
    sigma = sigmas[lo] * (1 - frac) + sigmas[hi] * frac
    return (1 / (1 + sigma**2)).float()
