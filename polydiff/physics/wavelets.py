"""Differentiable discrete wavelet transform of whole trajectories, sub-bands as channels.

A trajectory ``(B, C, T, X)`` (1-D equations) or ``(B, C, T, X, Y)`` (2-D equations) is
transformed over every axis after the channel axis with PyWavelets' filters in
``periodization`` mode, so each axis halves per level and the 2^d sub-bands of one level
become channels: ``(B, C, T, X) -> (B, 4C, T/2, X/2)`` for one level, ``(B, 16C, T/4, X/4)``
for two. Deeper levels split every sub-band again (a full wavelet-packet tree), so all
channels keep one shape and feed a U-Net. The transform is a product of small matrices
(one per axis), written in torch, so gradients flow through it (guidance) and it runs on
any device. Coefficients agree with ``pywt.dwtn(x, family, mode="periodization")``.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pywt
import torch

FAMILIES = ("haar", "bior2.4", "db4", "sym4", "bior1.3")
"""Families used in WDNO; any discrete family PyWavelets knows is accepted."""


def check_family(family: str) -> pywt.Wavelet:
    """PyWavelets' wavelet named ``family``; ValueError naming it when unknown or continuous."""
    if family not in pywt.wavelist(kind="discrete"):
        raise ValueError(f"unknown discrete wavelet family {family!r} (e.g. {', '.join(FAMILIES)})")
    return pywt.Wavelet(family)


@functools.lru_cache(maxsize=64)
def _filter_matrix(family: str, n: int, synthesis: bool) -> np.ndarray:
    """Periodized one-level filter bank on ``n`` samples as an (n, n) float64 matrix.

    Analysis: rows ``[0, n/2)`` give the approximation, rows ``[n/2, n)`` the detail,
    ``c[i] = sum_j h[j] x[(2i + F/2 - j) mod n]`` (F the filter length), as in PyWavelets.
    Synthesis: the transpose of the same construction with the reversed reconstruction
    filters, the exact inverse for orthogonal and biorthogonal families.
    """
    dec_lo, dec_hi, rec_lo, rec_hi = check_family(family).filter_bank
    lo, hi = (rec_lo[::-1], rec_hi[::-1]) if synthesis else (dec_lo, dec_hi)
    half, shift = n // 2, len(lo) // 2
    m = np.zeros((n, n))
    for i, (j, (a, d)) in itertools.product(range(half), enumerate(zip(lo, hi))):
        col = (2 * i + shift - j) % n
        m[i, col] += a
        m[half + i, col] += d
    return m.T if synthesis else m


def _check_shape(shape: torch.Size, levels: int, what: str) -> None:
    if len(shape) < 3:
        raise ValueError(f"{what} must be (B, C, T, X[, Y]), got shape {tuple(shape)}")
    if levels < 1:
        raise ValueError(f"wavelet levels must be >= 1, got {levels}")
    step = 2**levels
    if any(n % step for n in shape[2:]):
        raise ValueError(
            f"every grid length must be divisible by 2^levels = {step}, got {tuple(shape[2:])}"
        )


@functools.lru_cache(maxsize=64)
def _filter_tensor(family: str, n: int, synthesis: bool, dtype: torch.dtype,
                   device: torch.device) -> torch.Tensor:
    """:func:`_filter_matrix` as a tensor on ``device``, made once: a transform inside a
    sampling loop copies nothing from the host."""
    return torch.as_tensor(_filter_matrix(family, n, synthesis), dtype=dtype, device=device)


def _apply_axes(x: torch.Tensor, family: str, synthesis: bool) -> torch.Tensor:
    """Multiply every axis after the channel axis by its filter matrix."""
    for axis in range(2, x.dim()):
        m = _filter_tensor(family, x.shape[axis], synthesis, x.dtype, x.device)
        x = torch.movedim(torch.movedim(x, axis, -1) @ m.T, -1, axis)
    return x


def _dwt_level(x: torch.Tensor, family: str) -> torch.Tensor:
    """One level: ``(B, C, n1..nd) -> (B, C * 2^d, n1/2..nd/2)``."""
    b, c, *grid = x.shape
    d = len(grid)
    y = _apply_axes(x, family, synthesis=False)
    y = y.reshape(b, c, *itertools.chain.from_iterable((2, n // 2) for n in grid))
    # (B, C, 2, h1, 2, h2, ...) -> (B, C, 2, 2, ..., h1, h2, ...): band bits lead, first axis first
    y = y.permute(0, 1, *range(2, 2 + 2 * d, 2), *range(3, 3 + 2 * d, 2))
    return y.reshape(b, c * 2**d, *(n // 2 for n in grid))


def _idwt_level(y: torch.Tensor, family: str) -> torch.Tensor:
    """Inverse of :func:`_dwt_level`: ``(B, C * 2^d, h1..hd) -> (B, C, 2h1..2hd)``."""
    b, cb, *half = y.shape
    d = len(half)
    c = cb // 2**d
    x = y.reshape(b, c, *([2] * d), *half)
    order = [0, 1] + list(itertools.chain.from_iterable((2 + k, 2 + d + k) for k in range(d)))
    x = x.permute(*order).reshape(b, c, *(2 * h for h in half))
    return _apply_axes(x, family, synthesis=True)


def dwt(x: torch.Tensor, family: str = "bior2.4", levels: int = 1) -> torch.Tensor:
    """Wavelet coefficients of a trajectory, sub-bands as channels.

    Args:
        x: ``(B, C, T, X)`` or ``(B, C, T, X, Y)``; every grid length divisible by 2^levels.
        family: PyWavelets family name (``haar``, ``bior2.4``, ``db4``, ``sym4`` ...).
        levels: decomposition depth >= 1 (every sub-band is split again at each level).

    Returns:
        ``(B, C * 2^(d * levels), T / 2^levels, ...)``; the channels of input channel ``c``
        are ``c * 2^(d*levels) ... (c+1) * 2^(d*levels) - 1`` in the order of
        :func:`subband_names`.
    """
    _check_shape(x.shape, levels, "trajectory")
    check_family(family)
    for _ in range(levels):
        x = _dwt_level(x, family)
    return x


def idwt(coeffs: torch.Tensor, family: str = "bior2.4", levels: int = 1) -> torch.Tensor:
    """Exact inverse of :func:`dwt`: ``(B, C * 2^(d*levels), ...) -> (B, C, T, X[, Y])``."""
    d = coeffs.dim() - 2
    if coeffs.dim() < 3 or coeffs.shape[1] % 2 ** (d * levels):
        raise ValueError(
            f"coefficients of shape {tuple(coeffs.shape)} do not hold 2^{d * levels} "
            "sub-bands per channel"
        )
    check_family(family)
    for _ in range(levels):
        coeffs = _idwt_level(coeffs, family)
    return coeffs


def subband_names(ndim: int, levels: int = 1) -> list[str]:
    """Names of the sub-band channels of one input channel, PyWavelets ``dwtn`` keys.

    ``subband_names(2) == ["aa", "ad", "da", "dd"]`` (first letter: first axis, time);
    deeper levels join the keys of the first split to the last with dots, e.g. ``"ad.da"``.
    """
    one = ["".join(k) for k in itertools.product("ad", repeat=ndim)]
    return [".".join(p) for p in itertools.product(one, repeat=levels)]


def coefficient_shape(grid: tuple[int, ...], channels: int, levels: int) -> tuple[int, ...]:
    """Shape ``(C', n1', ...)`` of the coefficients of a ``(channels, *grid)`` trajectory."""
    step = 2**levels
    return (channels * step ** len(grid), *(n // step for n in grid))
