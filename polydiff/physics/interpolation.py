"""Classical baselines for atmospheric super-resolution.

* :func:`bicubic_upsample`: bicubic (cubic-spline) interpolation of a coarse field, cell
  centres aligned, periodic or mirrored borders.
* :class:`StationaryGaussian` and :func:`optimal_interpolation`: Gaussian-process regression /
  optimal interpolation with the field's own covariance, a multivariate stationary (circulant)
  covariance estimated from sample fields by their cross-spectra. The posterior mean is the OI
  analysis; posterior samples (Matheron's rule) give a calibrated-by-construction ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from polydiff.diffusion import Operator


def bicubic_upsample(coarse: np.ndarray, factor: int, *, periodic: bool = True) -> np.ndarray:
    """(..., h, w) → (..., h·factor, w·factor) by cubic-spline interpolation (scipy.ndimage).

    Coarse values sit at the centres of the fine blocks (``grid_mode``); borders wrap
    (``periodic``) or mirror.
    """
    zoom = (1,) * (coarse.ndim - 2) + (factor, factor)
    return ndimage.zoom(np.asarray(coarse, dtype=np.float64), zoom, order=3, grid_mode=True,
                        mode="grid-wrap" if periodic else "mirror")


class StationaryGaussian:
    """Zero-mean stationary Gaussian field (C, H, W) on a periodic grid.

    ``spectrum`` (H, W, C, C) complex: the cross-spectral density S(k) = E[x̂(k) x̂(k)ᴴ]/(HW),
    so that the covariance acts as C·x = ifft2(S(k) fft2(x)).
    """

    def __init__(self, spectrum: Tensor) -> None:
        self.spectrum = spectrum
        eye = torch.eye(spectrum.shape[-1], dtype=spectrum.dtype)
        self._sqrt = torch.linalg.cholesky(spectrum + 1e-9 * eye)  # L Lᴴ = S per wavenumber

    @classmethod
    def fit(cls, fields: Tensor) -> StationaryGaussian:
        """Estimate S(k) from sample fields (N, C, H, W) (their mean over N is removed)."""
        x = (fields - fields.mean(0, keepdim=True)).to(torch.float64)
        h, w = x.shape[-2:]
        xh = torch.fft.fft2(x).permute(0, 2, 3, 1)  # (N, H, W, C)
        s = torch.einsum("nhwc,nhwd->hwcd", xh, xh.conj()) / (len(x) * h * w)
        return cls(s)

    def _apply(self, matrix: Tensor, x: Tensor) -> Tensor:
        xh = torch.fft.fft2(x.to(torch.float64)).permute(0, 2, 3, 1)[..., None]  # (B,H,W,C,1)
        out = (matrix @ xh)[..., 0].permute(0, 3, 1, 2)
        return torch.fft.ifft2(out).real

    def covariance(self, x: Tensor) -> Tensor:
        """C·x for x (B, C, H, W), float64."""
        return self._apply(self.spectrum, x)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` samples (n, C, H, W), float64."""
        c, (h, w) = self.spectrum.shape[-1], self.spectrum.shape[:2]
        z = torch.randn(n, c, h, w, generator=generator, dtype=torch.float64)
        return self._apply(self._sqrt, z)


def _flat(y) -> Tensor:
    if isinstance(y, (list, tuple)):
        return torch.cat([_flat(v) for v in y], dim=1)
    return y.reshape(y.shape[0], -1).to(torch.float64)


def _noise_std(operators: Sequence[Operator], ys: Sequence[Tensor]) -> Tensor:
    return torch.cat([torch.full((y[0].numel(),), float(op.sigma), dtype=torch.float64)
                      for op, y in zip(operators, ys)])


def optimal_interpolation(
    prior: StationaryGaussian, operators: Sequence[Operator], ys: Sequence[Tensor], *,
    members: int = 0, generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor | None]:
    """GP posterior given y_k = A_k x + n_k, n_k ~ N(0, σ_k²), for one field (C, H, W).

    Args:
        prior: the field's zero-mean stationary covariance (work on anomalies).
        operators, ys: the measurement operators and their data, each y of batch size 1.
        members: number of posterior samples to draw (Matheron's rule), 0 for none.
    Returns:
        the posterior mean (1, C, H, W) and the samples (members, C, H, W) or None.
    """
    shape = prior.spectrum.shape
    item = (shape[-1], shape[0], shape[1])
    n = item[0] * item[1] * item[2]
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *item)

    def forward(x: Tensor) -> Tensor:
        return torch.cat([_flat(op.forward(x.to(torch.float32))) for op in operators], 1)

    a = forward(eye).T.to(torch.float64)  # (m, n)
    sigma = _noise_std(operators, ys)
    ct = prior.covariance(a.reshape(-1, *item)).reshape(len(a), n)  # rows: (C Aᵀ)ᵀ = A C
    gram = ct @ a.T + torch.diag(sigma**2)  # A C Aᵀ + R, (m, m)
    chol = torch.linalg.cholesky(gram)
    y = torch.cat([_flat(v) for v in ys], dim=1)  # (1, m)
    weights = torch.cholesky_solve(y.T, chol)  # (m, 1)
    mean = (ct.T @ weights).T.reshape(1, *item)
    if not members:
        return mean, None
    x = prior.sample(members, generator)
    noise = sigma * torch.randn(members, len(sigma), generator=generator, dtype=torch.float64)
    innovation = y - (x.reshape(members, n) @ a.T + noise)  # (members, m)
    update = (ct.T @ torch.cholesky_solve(innovation.T, chol)).T.reshape(members, *item)
    return mean, x + update
