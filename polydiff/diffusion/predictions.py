"""Conversions between ε-, x₀- and v-prediction for variance-preserving diffusion.

With ᾱ = alpha_bar (the scheduler's ``alphas_cumprod`` at t), the forward process is
x_t = √ᾱ·x₀ + √(1−ᾱ)·ε and v = √ᾱ·ε − √(1−ᾱ)·x₀ (Salimans & Ho, 2022).
``alpha_bar`` is a float or a tensor broadcastable to x_t.
"""

from __future__ import annotations

import torch
from torch import Tensor

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def _coefficients(alpha_bar: Tensor | float, like: Tensor) -> tuple[Tensor, Tensor]:
    alpha_bar = torch.as_tensor(alpha_bar, dtype=like.dtype, device=like.device)
    return alpha_bar.sqrt(), (1 - alpha_bar).sqrt()


def x0_from_eps(eps: Tensor, x_t: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """x̂₀ = (x_t − √(1−ᾱ)·ε) / √ᾱ."""
    a, s = _coefficients(alpha_bar, x_t)
    return (x_t - s * eps) / a


def eps_from_x0(x0: Tensor, x_t: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """ε = (x_t − √ᾱ·x₀) / √(1−ᾱ)."""
    a, s = _coefficients(alpha_bar, x_t)
    return (x_t - a * x0) / s


def x0_from_v(v: Tensor, x_t: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """x̂₀ = √ᾱ·x_t − √(1−ᾱ)·v."""
    a, s = _coefficients(alpha_bar, x_t)
    return a * x_t - s * v


def v_from_x0(x0: Tensor, x_t: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """v = (√ᾱ·x_t − x₀) / √(1−ᾱ)."""
    a, s = _coefficients(alpha_bar, x_t)
    return (a * x_t - x0) / s


def to_x0(output: Tensor, x_t: Tensor, alpha_bar: Tensor | float, prediction_type: str) -> Tensor:
    """The clean estimate x̂₀ from a network output read as ``prediction_type``."""
    if prediction_type == "epsilon":
        return x0_from_eps(output, x_t, alpha_bar)
    if prediction_type == "sample":
        return output
    if prediction_type == "v_prediction":
        return x0_from_v(output, x_t, alpha_bar)
    raise ValueError(f"unknown prediction_type {prediction_type!r}; expected {PREDICTION_TYPES}")


def from_x0(x0: Tensor, x_t: Tensor, alpha_bar: Tensor | float, prediction_type: str) -> Tensor:
    """The network output of kind ``prediction_type`` that corresponds to the estimate x̂₀."""
    if prediction_type == "epsilon":
        return eps_from_x0(x0, x_t, alpha_bar)
    if prediction_type == "sample":
        return x0
    if prediction_type == "v_prediction":
        return v_from_x0(x0, x_t, alpha_bar)
    raise ValueError(f"unknown prediction_type {prediction_type!r}; expected {PREDICTION_TYPES}")


def convert(
    output: Tensor, x_t: Tensor, alpha_bar: Tensor | float, source: str, target: str
) -> Tensor:
    """Re-express a network output of kind ``source`` as kind ``target``."""
    if source == target:
        return output
    return from_x0(to_x0(output, x_t, alpha_bar, source), x_t, alpha_bar, target)


def training_target(
    x0: Tensor, noise: Tensor, alpha_bar: Tensor | float, prediction_type: str
) -> Tensor:
    """What a network trained for ``prediction_type`` should output for (x₀, ε) at ᾱ."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return x0
    if prediction_type == "v_prediction":
        a, s = _coefficients(alpha_bar, x0)
        return a * noise - s * x0
    raise ValueError(f"unknown prediction_type {prediction_type!r}; expected {PREDICTION_TYPES}")
