"""One sampling loop for every app: a model callable, a diffusers scheduler and hooks.

The loop never owns a network. At each step it asks the model for its output at x_t,
reads it as ``scheduler.config.prediction_type`` to form the clean estimate x̂₀, lets the
hooks adjust x_t (conditioning by replacement), x̂₀ (guidance, data consistency) and
x_{t-1} (DPS steps, acquisition, logging), and hands the result to ``scheduler.step``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor
from tqdm.auto import tqdm

from polydiff.diffusion.predictions import from_x0, to_x0
from polydiff.diffusion.schedulers import alpha_bar_at, is_sigma_parameterised

ModelFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class StepState:
    """What hooks see at one step. ``x_t`` is in the scheduler's own space."""

    index: int
    num_steps: int
    timestep: Tensor
    alpha_bar: Tensor
    scheduler: object
    generator: torch.Generator | None
    x_t: Tensor | None = None
    x0: Tensor | None = None
    model_output: Tensor | None = None
    extras: dict = field(default_factory=dict)

    @property
    def progress(self) -> float:
        """Fraction of the reverse process done before this step, in [0, 1)."""
        return self.index / self.num_steps


class SamplerHook:
    """Base hook: override any method. ``needs_grad`` keeps x̂₀'s graph w.r.t. x_t."""

    needs_grad: bool = False

    def before_model(self, state: StepState, x: Tensor) -> Tensor:
        """Adjust x_t before the model sees it (e.g. replace known channels)."""
        return x

    def on_x0(self, state: StepState, x0: Tensor) -> Tensor:
        """Adjust the clean estimate x̂₀ that the scheduler steps with."""
        return x0

    def after_step(self, state: StepState, x_prev: Tensor) -> Tensor:
        """Adjust x_{t-1} after the scheduler's step (DPS, acquisition, logging)."""
        return x_prev

    def finalize(self, x: Tensor) -> Tensor:
        """Adjust the final sample."""
        return x


class SampleOutput(NamedTuple):
    """The final sample and, per step, the clean estimates if they were kept."""

    sample: Tensor
    x0_history: list[Tensor]


class ProgressBar(SamplerHook):
    """A tqdm bar over the reverse process (to stderr)."""

    def __init__(self, desc: str = "sampling", **tqdm_kwargs) -> None:
        self.desc, self.kwargs, self.bar = desc, tqdm_kwargs, None

    def after_step(self, state: StepState, x_prev: Tensor) -> Tensor:
        if self.bar is None:
            self.bar = tqdm(total=state.num_steps, desc=self.desc, leave=False, **self.kwargs)
        self.bar.update(1)
        return x_prev

    def finalize(self, x: Tensor) -> Tensor:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        return x


class StepCallback(SamplerHook):
    """Call ``fn(state, x_prev)`` after every step (logging, live plots, early inspection)."""

    def __init__(self, fn: Callable[[StepState, Tensor], None]) -> None:
        self.fn = fn

    def after_step(self, state: StepState, x_prev: Tensor) -> Tensor:
        self.fn(state, x_prev)
        return x_prev


_STEP_ARGS: dict[type, frozenset] = {}


def _step_parameters(scheduler) -> frozenset:
    cls = type(scheduler)
    if cls not in _STEP_ARGS:
        _STEP_ARGS[cls] = frozenset(inspect.signature(cls.step).parameters)
    return _STEP_ARGS[cls]


def noise_to_level(scheduler, x0: Tensor, noise: Tensor, alpha_bar: Tensor) -> Tensor:
    """x₀ noised to level ᾱ in the scheduler's space (VP: √ᾱx₀+√(1−ᾱ)ε; σ-form: x₀+σε)."""
    alpha_bar = alpha_bar.to(x0)
    if is_sigma_parameterised(scheduler):
        return x0 + ((1 - alpha_bar) / alpha_bar).sqrt() * noise
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise


def noise_to_step(scheduler, x0: Tensor, steps: int, start: int,
                  generator: torch.Generator | None = None) -> Tensor:
    """x₀ noised to the level of step ``start`` of a ``steps``-step schedule (for ``sample``)."""
    scheduler.set_timesteps(steps, device=x0.device)
    t = scheduler.timesteps[start]
    noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return noise_to_level(scheduler, x0, noise, alpha_bar_at(scheduler, t, start).to(x0.device))


def sample(
    model: ModelFn,
    scheduler,
    shape: Sequence[int],
    *,
    steps: int,
    generator: torch.Generator | None = None,
    hooks: Sequence[SamplerHook] = (),
    x_T: Tensor | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    keep_x0: bool = False,
    step_kwargs: dict | None = None,
    start: int = 0,
) -> SampleOutput:
    """Run the reverse process of ``scheduler`` for ``steps`` steps from noise.

    Args:
        model: callable (x_t (B, ...), t (scalar tensor)) -> output (B, ...), read as
            ``scheduler.config.prediction_type``; x_t is VP-scaled (``scale_model_input``).
        scheduler: any diffusers scheduler (DDPM, DDIM, DPM-Solver++, UniPC, Euler, LCM …).
        shape: (B, ...) of the sample; B particles are just the batch dimension.
        steps: number of reverse steps (model evaluations for one-step-per-NFE schedulers).
        generator: source of all randomness (initial noise, stochastic steps, hooks).
        hooks: SamplerHook instances, applied in order.
        x_T: start from this noise instead of drawing it (already scaled by the caller).
        step_kwargs: extra keyword arguments for ``scheduler.step`` (e.g. ``{"eta": 1.0}``).
        start: begin at step ``start`` of the ``steps``-step schedule (SDEdit, refinement);
            ``x_T`` must then be the sample noised to that step (``noise_to_step``).
    Returns:
        SampleOutput(sample (B, ...), x0_history: list of x̂₀ per step if ``keep_x0``).
    """
    device = torch.device(device) if device is not None else (
        x_T.device if x_T is not None else torch.device("cpu"))
    hooks = list(hooks) + ([ProgressBar()] if progress else [])
    scheduler.set_timesteps(steps, device=device)
    if start:
        if x_T is None or not 0 <= start < len(scheduler.timesteps):
            raise ValueError("start > 0 needs x_T noised to that step, and start < steps")
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(start)
    if x_T is None:
        x_T = randn_tensor(tuple(shape), generator=generator, device=device, dtype=dtype)
        x_T = x_T * scheduler.init_noise_sigma
    x = x_T.to(device=device, dtype=dtype)
    prediction_type = scheduler.config.prediction_type
    accepted = _step_parameters(scheduler)
    extra = dict(step_kwargs or {})
    if "generator" in accepted:
        extra["generator"] = generator
    needs_grad = any(h.needs_grad for h in hooks)
    history: list[Tensor] = []
    timesteps = scheduler.timesteps
    # read on the host once: inside the loop nothing goes back to the host (on CUDA a
    # .item() or a bool() of a device tensor waits for the GPU at every step)
    host_timesteps = timesteps.tolist()
    alpha_bars = torch.stack([alpha_bar_at(scheduler, t, i)
                              for i, t in enumerate(host_timesteps)]).to(device)
    for i, t in enumerate(timesteps):
        if i < start:
            continue
        state = StepState(i, len(timesteps), t, alpha_bars[i], scheduler, generator)
        for hook in hooks:
            x = hook.before_model(state, x)
        with torch.set_grad_enabled(needs_grad):
            x = x.detach().requires_grad_(needs_grad)
            x_in = scheduler.scale_model_input(x, t)
            output = model(x_in, t)
            x0 = to_x0(output, x_in, state.alpha_bar, prediction_type)
        state.x_t, state.x0, state.model_output = x, x0, output
        x0_model = x0_adjusted = x0.detach()
        for hook in hooks:
            x0_adjusted = hook.on_x0(state, x0_adjusted)
        if x0_adjusted is not x0_model:  # a hook changed x̂₀: step with the matching output
            output = from_x0(x0_adjusted, x_in.detach(), state.alpha_bar, prediction_type)
        x_prev = scheduler.step(output.detach(), host_timesteps[i], x.detach(),
                                **extra).prev_sample
        for hook in hooks:
            x_prev = hook.after_step(state, x_prev)
        if keep_x0:
            history.append(x0_adjusted.detach())
        x = x_prev.detach()
    for hook in hooks:
        x = hook.finalize(x)
    return SampleOutput(x, history)
