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
    """Hold ``values`` where ``mask`` is True (WDNO conditions, inpainting).

    ``noised=True`` (RePaint-style, for a model trained on fully noised data): before each
    model call the known entries are set to ``values`` noised to the current level. This is
    an approximation: for a 2-D Gaussian with correlation 0.8 it gives E[x₁ | x₀ = 1] ≈ 0.49
    instead of 0.8 (tests/diffusion/test_sampling.py).
    ``noised=False`` (for a model trained with ``denoising_loss(..., known_clean=True)``):
    the model sees the clean known values at every step, which is exact conditioning.
    In both modes x̂₀ and the final sample hold ``values`` exactly.
    ``mask`` and ``values`` broadcast to the sample shape (B, ...).
    """

    def __init__(self, mask: Tensor, values: Tensor, noised: bool = True) -> None:
        self.mask, self.values, self.noised = mask.bool(), values, noised

    def before_model(self, state: StepState, x: Tensor) -> Tensor:
        values = self.values.to(x).expand_as(x)
        if self.noised:
            noise = randn_tensor(x.shape, generator=state.generator, device=x.device,
                                 dtype=x.dtype)
            values = noise_to_level(state.scheduler, values, noise, state.alpha_bar)
        elif is_sigma_parameterised(state.scheduler):  # the model sees x/√(1+σ²) = x·√ᾱ
            values = values / state.alpha_bar.to(x).sqrt()
        return torch.where(self.mask.to(x.device), values, x)

    def on_x0(self, state: StepState, x0: Tensor) -> Tensor:
        return torch.where(self.mask.to(x0.device), self.values.to(x0).expand_as(x0), x0)

    def finalize(self, x: Tensor) -> Tensor:
        return torch.where(self.mask.to(x.device), self.values.to(x).expand_as(x), x)


class MeasurementGuidance(SamplerHook):
    """Posterior sampling given y = A(x) + n, each batch item (particle) guided on its own.

    mode ``"score"`` (default; any scheduler): the Gaussian likelihood score at x_t,
        ∇ log p(y|x_t) ≈ −∇_{x_t} Σ|y − A x̂₀|² / (2(σ² + gain·r²)), with r² = v(1 − ᾱ)/(ᾱv
        + 1 − ᾱ) the variance of x₀ given x_t for data of variance v = ``data_variance``
        (ΠGDM; v = 1 gives r² = 1 − ᾱ) or r² = 0 (plain DPS, ``variance_inflation=False``),
        moves x̂₀ by weight·(1 − ᾱ)/√ᾱ·∇ (Tweedie).
    mode ``"dps"`` (Chung et al. 2023): x_{t−1} ← x_{t−1} − weight·∇_{x_t}‖y − A x̂₀‖ after
        the scheduler's step, per particle; ‖·‖ is σ-weighted for a Stack.
    ``weight`` is a constant or a function of the StepState (a schedule).
    Score mode is exact for exact denoisers (tests/diffusion/test_guidance.py), but its
    (1 − ᾱ)/√ᾱ factor amplifies a trained network's gradient errors at the noisiest steps,
    and ``gain`` treats measured entries as independent (a pooled correlated field has more
    variance than gain·r²); with small trained priors the DPS mode is often the robust choice
    (the atmos app uses it).
    ``operator`` and ``y`` may be replaced between steps (active acquisition).
    """

    needs_grad = True

    def __init__(self, operator: Operator, y, weight: Weight = 1.0, mode: str = "score",
                 variance_inflation: bool = True, data_variance: float = 1.0) -> None:
        if mode not in ("score", "dps"):
            raise ValueError(f"unknown guidance mode {mode!r} (score or dps)")
        self.operator, self.y, self.weight, self.mode = operator, y, weight, mode
        self.variance_inflation, self.data_variance = variance_inflation, data_variance
        self.last_misfit: Tensor | None = None

    def _gradient(self, state: StepState) -> Tensor:
        if self.mode == "score":
            ab, v = state.alpha_bar, self.data_variance
            r2 = v * (1 - ab) / (ab * v + 1 - ab) if self.variance_inflation else 0.0
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
