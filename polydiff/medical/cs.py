"""Compressed-sensing baseline: ℓ1-wavelet reconstruction by FISTA (Beck & Teboulle 2009).

Solves  min_x ½‖M·F x − y‖² + λ‖Ψ x‖₁  for a complex image x (H, W), with F the centred
orthonormal FFT (torch) and Ψ an orthonormal periodized wavelet transform (PyWavelets), whose
coarsest approximation band is not penalised. Random circular shifts at every
iteration (cycle spinning) make the prior nearly shift-invariant. ‖M·F‖ = 1, so the step size is 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pywt
import torch
from torch import Tensor

from polydiff.medical.kspace import fft2c, ifft2c


@dataclass(frozen=True)
class CSConfig:
    """FISTA settings; ``lam`` is relative to the zero-filled image's maximum magnitude."""

    lam: float = 0.003
    iters: int = 100
    wavelet: str = "haar"
    levels: int = 3
    cycle_spin: bool = True  # random circular shifts per iteration (as BART's pics does)
    seed: int = 0  # of the private generator drawing the shifts


def _soft(c: np.ndarray, t: float) -> np.ndarray:
    """Complex soft threshold: c · max(|c| − t, 0) / |c|."""
    mag = np.abs(c)
    return c * np.maximum(mag - t, 0) / np.maximum(mag, 1e-30)


def wavelet_shrink(x: np.ndarray, t: float, cfg: CSConfig, shift=(0, 0)) -> np.ndarray:
    """prox of t‖Ψ·‖₁ for orthonormal Ψ: Ψᵀ soft(Ψ x, t), approximation band untouched;
    ``shift`` circularly shifts x first and back after (cycle spinning)."""
    x = np.roll(x, shift, axis=(0, 1))
    coeffs = pywt.wavedec2(x, cfg.wavelet, mode="periodization", level=cfg.levels)
    coeffs = [coeffs[0]] + [tuple(_soft(d, t) for d in det) for det in coeffs[1:]]
    out = pywt.waverec2(coeffs, cfg.wavelet, mode="periodization")
    return np.roll(out, (-shift[0], -shift[1]), axis=(0, 1))


def fista_l1_wavelet(kspace: Tensor, mask: Tensor, cfg: CSConfig = CSConfig()) -> Tensor:
    """ℓ1-wavelet reconstruction of one slice: kspace (H, W) complex, mask (W,) bool ->
    complex image (H, W)."""
    m = mask.to(kspace.device)[None, :].to(kspace.dtype)
    y = kspace * m
    x = ifft2c(y)
    t = cfg.lam * float(x.abs().max())
    z, step = x, 1.0
    rng = np.random.default_rng(cfg.seed)
    for _ in range(cfg.iters):
        grad = ifft2c(fft2c(z) * m - y)
        v = (z - grad).cpu().numpy()
        shift = tuple(rng.integers(0, 2**cfg.levels, size=2)) if cfg.cycle_spin else (0, 0)
        x_new = torch.from_numpy(wavelet_shrink(v, t, cfg, shift)).to(kspace)
        step_new = (1 + np.sqrt(1 + 4 * step**2)) / 2
        z = x_new + ((step - 1) / step_new) * (x_new - x)
        x, step = x_new, step_new
    return x
