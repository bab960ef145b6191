"""k-space, the one home of MRI's Fourier concepts: the centred orthonormal FFTs, the masked
single-coil operator, crops, coil combination and multi-coil SENSE.

Images are complex ``(..., H, W)`` tensors or 2-channel real ``(B, 2, H, W)`` (real, imag);
k-space is centred (fastMRI convention: DC at index ``(H//2, W//2)``), orthonormal. The
operators follow the backbone's ``Operator`` interface, so its guidance and data consistency
use them unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from polydiff.diffusion.operators import (
    Operator,
    channels_to_complex,
    complex_to_channels,
    inner,
)

__all__ = [
    "MaskedFFT2", "SenseOperator", "center_crop", "crop_kspace", "estimate_sensitivities",
    "fft2c", "ifft2c", "rss", "zero_filled",
]


def fft2c(x: Tensor) -> Tensor:
    """Centred orthonormal 2-D FFT over the last two dims (fastMRI convention), complex."""
    x = torch.fft.ifftshift(x, dim=(-2, -1))
    x = torch.fft.fft2(x, dim=(-2, -1), norm="ortho")
    return torch.fft.fftshift(x, dim=(-2, -1))


def ifft2c(k: Tensor) -> Tensor:
    """Centred orthonormal inverse 2-D FFT over the last two dims, complex."""
    k = torch.fft.ifftshift(k, dim=(-2, -1))
    k = torch.fft.ifft2(k, dim=(-2, -1), norm="ortho")
    return torch.fft.fftshift(k, dim=(-2, -1))


def center_crop(x: Tensor, shape: Sequence[int]) -> Tensor:
    """The central ``shape = (h, w)`` window of the last two dims (fastMRI placement)."""
    h, w = shape
    H, W = x.shape[-2:]
    if h > H or w > W:
        raise ValueError(f"cannot crop {(H, W)} to the larger {(h, w)}")
    top, left = (H - h) // 2, (W - w) // 2
    return x[..., top:top + h, left:left + w]


def crop_kspace(kspace: Tensor, shape: Sequence[int]) -> Tensor:
    """k-space of the image centre-cropped to ``shape``: ifft2c, crop in image space, fft2c."""
    return fft2c(center_crop(ifft2c(kspace), shape))


def rss(x: Tensor, dim: int = 1) -> Tensor:
    """Root-sum-of-squares coil combination of complex coil images along ``dim``."""
    return x.abs().square().sum(dim).sqrt()


def zero_filled(kspace: Tensor, mask: Tensor) -> Tensor:
    """Magnitude of the zero-filled inverse FFT: (..., H, W) complex, (W,) bool -> real."""
    return ifft2c(kspace * mask.to(kspace.device)).abs()


def estimate_sensitivities(kspace: Tensor, center_cols: Tensor, eps: float = 1e-6) -> Tensor:
    """Coil maps (C, H, W) from the fully sampled centre columns: low-resolution coil images
    divided by their root-sum-of-squares (so Σ_c |S_c|² = 1 wherever there is signal)."""
    low = torch.zeros_like(kspace)
    low[..., center_cols] = kspace[..., center_cols]
    coil = ifft2c(low)
    return coil / rss(coil, 0).clamp_min(eps)


class MaskedFFT2(Operator):
    """Single-coil Cartesian MRI: y = M · fft2c(x) for a (B, 2, H, W) real/imag image x.

    ``mask`` is (W,) over k-space columns, (H, W), or (B, H, W) per item; it may be
    changed in place (acquisition). y is complex (B, H, W), zero outside the mask.
    A·Aᴴ = M is a projection, so the backbone's ``pinv`` (gain 1) is exact.
    """

    def __init__(self, mask: Tensor, sigma: float = 1.0) -> None:
        self.mask, self.sigma, self.gain = mask.bool(), float(sigma), 1.0

    def _mask(self, like: Tensor) -> Tensor:
        m = self.mask.to(like.device)
        return m[None, :] if m.dim() == 1 else m  # (W,) -> (1, W): columns

    def forward(self, x: Tensor) -> Tensor:
        k = fft2c(channels_to_complex(x))
        return k * self._mask(k)

    def adjoint(self, y: Tensor) -> Tensor:
        return complex_to_channels(ifft2c(y * self._mask(y)))


class SenseOperator(Operator):
    """Multi-coil Cartesian SENSE: y_c = M · fft2c(S_c · x) for a (B, 2, H, W) image x.

    ``maps`` (C, H, W) complex sensitivities, ``mask`` (W,) columns or (H, W); y is complex
    (B, C, H, W). With one coil of ones it is ``MaskedFFT2``. A·Aᴴ is not a multiple of the
    identity, so ``project`` solves (A·Aᴴ + μI) z = r by conjugate gradients.
    """

    def __init__(self, maps: Tensor, mask: Tensor, sigma: float = 1.0, cg_iters: int = 20,
                 damping: float = 1e-3):
        self.maps, self.mask, self.sigma, self.cg_iters = maps, mask.bool(), float(sigma), cg_iters
        self.gain = float(maps.abs().square().mean())  # mean diagonal of A·Aᴴ
        self.damping = damping  # μ relative to the gain: (A·Aᴴ + μ·gain·I) stays invertible

    def _mask(self, like: Tensor) -> Tensor:
        m = self.mask.to(like.device)
        return m[None, :] if m.dim() == 1 else m

    def forward(self, x: Tensor) -> Tensor:
        k = fft2c(self.maps.to(x.device) * channels_to_complex(x)[:, None])
        return k * self._mask(k)

    def adjoint(self, y: Tensor) -> Tensor:
        img = ifft2c(y * self._mask(y))
        return complex_to_channels((self.maps.to(y.device).conj() * img).sum(1))

    def pinv(self, y: Tensor) -> Tensor:
        """Aᴴ(A·Aᴴ + μI)⁻¹y by conjugate gradients on the measured entries, per batch item
        (damped least squares: estimated maps make A·Aᴴ singular)."""
        mu = self.damping * self.gain
        y = y * self._mask(y)
        z, r = torch.zeros_like(y), y.clone()
        p, rr = r.clone(), inner(r, r)
        for _ in range(self.cg_iters):
            ap = self.forward(self.adjoint(p)) + mu * p
            alpha = rr / inner(p, ap).clamp_min(1e-30)
            z = z + alpha.view(-1, 1, 1, 1) * p
            r = r - alpha.view(-1, 1, 1, 1) * ap
            rr_new = inner(r, r)
            p = r + (rr_new / rr.clamp_min(1e-30)).view(-1, 1, 1, 1) * p
            rr = rr_new
        return self.adjoint(z)
