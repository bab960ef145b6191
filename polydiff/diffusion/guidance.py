"""Conditioning and guidance as sampler hooks and model wrappers.

- ``ReplaceKnown``: known entries (initial conditions, inpainting) held at every step.
- ``MeasurementGuidance``: posterior sampling for y = A(x) + n, per particle (batch item).
- ``DataConsistency``: hard projection of x̂₀ (every step) or of the final sample onto A(x) = y.
- ``classifier_free``: classifier-free guidance as a model wrapper.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from polydiff.diffusion.operators import Operator
from polydiff.diffusion.sampling import ModelFn, SamplerHook, StepState, noise_to_level
from polydiff.diffusion.schedulers import is_sigma_parameterised

Weight = float | Callable[[StepState], float]


def _weight(weight: Weight, state: StepState) -> float:
    return float(weight(state)) if callable(weight) else float(weight)


class ReplaceKnown(SamplerHook):
    """Hold ``values`` where ``mask`` is True: noised to the current level before every model
    call, exact in x̂₀ and in the final sample (WDNO conditions, RePaint-style inpainting).

    ``mask`` and ``values`` broadcast to the sample shape (B, ...).
    """

    def __init__(self, mask: Tensor, values: Tensor) -> None:
        self.mask, self.values = mask.bool(), values

    def before_model(self, state: StepState, x: Tensor) -> Tensor:
        values = self.values.to(x).expand_as(x)
        noise = randn_tensor(x.shape, generator=state.generator, device=x.device, dtype=x.dtype)
        noisy = noise_to_level(state.scheduler, values, noise, state.alpha_bar)
        return torch.where(self.mask.to(x.device), noisy, x)

    def on_x0(self, state: StepState, x0: Tensor) -> Tensor:
        return torch.where(self.mask.to(x0.device), self.values.to(x0).expand_as(x0), x0)

    def finalize(self, x: Tensor) -> Tensor:
        return torch.where(self.mask.to(x.device), self.values.to(x).expand_as(x), x)


class MeasurementGuidance(SamplerHook):
    """Posterior sampling given y = A(x) + n, each batch item (particle) guided on its own.

    mode ``"score"`` (default; any scheduler): the Gaussian likelihood score at x_t,
        ∇ log p(y|x_t) ≈ −∇_{x_t} Σ|y − A x̂₀|² / (2(σ² + gain·r²)), with r² = 1 − ᾱ the
        variance of x₀ given x_t for unit-variance data (ΠGDM) or r² = 0 (plain DPS, with
        ``variance_inflation=False``), moves x̂₀ by weight·(1 − ᾱ)/√ᾱ·∇ (Tweedie).
    mode ``"dps"`` (Chung et al. 2023): x_{t−1} ← x_{t−1} − weight·∇_{x_t}‖y − A x̂₀‖ after
        the scheduler's step, per particle; ‖·‖ is σ-weighted for a Stack.
    ``weight`` is a constant or a function of the StepState (a schedule).
    ``operator`` and ``y`` may be replaced between steps (active acquisition).
    """

    needs_grad = True

    def __init__(self, operator: Operator, y, weight: Weight = 1.0, mode: str = "score",
                 variance_inflation: bool = True) -> None:
        if mode not in ("score", "dps"):
            raise ValueError(f"unknown guidance mode {mode!r} (score or dps)")
        self.operator, self.y, self.weight, self.mode = operator, y, weight, mode
        self.variance_inflation = variance_inflation
        self.last_misfit: Tensor | None = None

    def _gradient(self, state: StepState) -> Tensor:
        if self.mode == "score":
            r2 = (1 - state.alpha_bar) if self.variance_inflation else 0.0
            loss = self.operator.misfit(state.x0, self.y, r2)
        else:
            loss = (2 * self.operator.misfit(state.x0, self.y)).clamp_min(1e-20).sqrt()
        self.last_misfit = loss.detach()
        (grad,) = torch.autograd.grad(loss.sum(), state.x_t)
        return grad

    def on_x0(self, state: StepState, x0: Tensor) -> Tensor:
        if self.mode != "score":
            return x0
        w = _weight(self.weight, state)
        if w == 0:
            return x0
        grad = _to_vp_gradient(state, self._gradient(state))
        ab = state.alpha_bar.to(x0)
        return x0 - w * (1 - ab) / ab.sqrt() * grad

    def after_step(self, state: StepState, x_prev: Tensor) -> Tensor:
        if self.mode != "dps":
            return x_prev
        w = _weight(self.weight, state)
        return x_prev if w == 0 else x_prev - w * self._gradient(state)


def _to_vp_gradient(state: StepState, grad: Tensor) -> Tensor:
    """A gradient w.r.t. the scheduler's x turned into one w.r.t. VP x_t = x/√(1+σ²)."""
    if is_sigma_parameterised(state.scheduler):
        return grad / state.alpha_bar.to(grad).sqrt()  # dx/dx_vp = √(1+σ²) = 1/√ᾱ
    return grad


class DataConsistency(SamplerHook):
    """Hard data consistency A(x) = y: on x̂₀ at every step (``every_step``) and at the end."""

    def __init__(self, operator: Operator, y, every_step: bool = False) -> None:
        self.operator, self.y, self.every_step = operator, y, every_step

    def on_x0(self, state: StepState, x0: Tensor) -> Tensor:
        return self.operator.project(x0, self.y) if self.every_step else x0

    def finalize(self, x: Tensor) -> Tensor:
        return self.operator.project(x, self.y)


def classifier_free(conditional: ModelFn, unconditional: ModelFn, scale: float) -> ModelFn:
    """ε_uncond + scale·(ε_cond − ε_uncond) (Ho & Salimans, 2022); scale 1 is conditional."""

    def guided(x_t: Tensor, t: Tensor) -> Tensor:
        u = unconditional(x_t, t)
        return u + scale * (conditional(x_t, t) - u)

    return guided
