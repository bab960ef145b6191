"""Conservative coarse-graining and classical baselines for atmospheric super-resolution.

* :func:`cell_area_weights`, :class:`ConservativePool` and :func:`conservative_coarsen`:
  area-weighted (first-order conservative) averaging of a regular latitude-longitude grid
  over factor x factor blocks, as ERA5 regridding does; on equal-area (Cartesian) cells it
  is the plain block mean. The same operator makes the coarse files and measures the
  super-resolved fields (the guidance's and OI's observation operator).

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
from polydiff.runtime import UserError


def cell_area_weights(lat: np.ndarray) -> np.ndarray:
    """Relative areas (H,) of the cells of a regular latitude grid (centres in degrees).

    A cell between latitudes φs and φn spanning Δλ has area R² Δλ (sin φn − sin φs); the
    edges lie half way between centres, clipped to ±90°. Normalised to mean 1.
    """
    lat = np.asarray(lat, dtype=np.float64)
    if lat.ndim != 1 or len(lat) < 1:
        raise UserError("latitudes must be a 1-D array of at least one point")
    step = float(lat[1] - lat[0]) if len(lat) > 1 else 1.0
    north = np.radians(np.clip(lat + step / 2, -90.0, 90.0))
    south = np.radians(np.clip(lat - step / 2, -90.0, 90.0))
    area = np.abs(np.sin(north) - np.sin(south))
    if not (area > 0).all():
        raise UserError("latitude cells of zero area (points beyond the poles?)")
    return area / area.mean()


class ConservativePool(Operator):
    """Area-weighted means over ``factor`` × ``factor`` blocks of (..., H, W) fields.

    ``lat``: the fine cell-centre latitudes (H,), degrees, regular; ``None`` for equal-area
    (Cartesian) cells, where the operator is the plain block mean. Every coarse cell gets
    Σ aᵢ x_ij over its block with aᵢ = wᵢ / (factor · Σ_block w), wᵢ the cell areas of the
    fine rows (cells of one row have equal areas). A Aᵀ is diagonal, one value per coarse
    row, so :meth:`pinv` (hard data consistency) is exact.
    """

    def __init__(self, factor: int, lat: np.ndarray | None = None, sigma: float = 1.0,
                 height: int | None = None) -> None:
        self.factor, self.sigma = int(factor), float(sigma)
        if self.factor < 1:
            raise UserError(f"the coarse-graining factor must be >= 1, got {factor}")
        if lat is None:
            if height is None:
                raise UserError("ConservativePool needs the latitudes or the grid height")
            area = np.ones(height)
        else:
            area = cell_area_weights(lat)
        if len(area) % self.factor:
            raise UserError(f"{len(area)} latitudes are not a multiple of the factor {factor}")
        block = area.reshape(-1, self.factor).sum(1)  # (h,)
        self._row = torch.as_tensor(area / (self.factor * np.repeat(block, self.factor)))
        self._diag = torch.as_tensor(self.factor * (self._row.numpy() ** 2).reshape(
            -1, self.factor).sum(1))  # (h,): the diagonal of A Aᵀ per coarse row
        self.gain = float(self._diag.mean())

    def _check(self, x: Tensor) -> None:
        h, w = x.shape[-2:]
        if h != len(self._row) or w % self.factor:
            raise UserError(f"grid {h}x{w} does not fit {len(self._row)} latitudes in blocks "
                            f"of {self.factor}")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        h, w = x.shape[-2:]
        f = self.factor
        weighted = x * self._row.to(x)[:, None]
        return weighted.reshape(*x.shape[:-2], h // f, f, w // f, f).sum(dim=(-3, -1))

    def adjoint(self, y: Tensor) -> Tensor:
        f = self.factor
        up = y.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1)
        return up * self._row.to(y)[:, None]

    def pinv(self, y: Tensor) -> Tensor:
        return self.adjoint(y / self._diag.to(y)[:, None])


def conservative_coarsen(x: np.ndarray | Tensor, lat: np.ndarray | None, factor: int
                         ) -> np.ndarray:
    """Area-weighted block means (..., H/f, W/f) of fields (..., H, W) on latitudes ``lat``
    (``None``: equal-area cells, the plain block mean), float64."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    op = ConservativePool(factor, lat, height=x.shape[-2])
    return op.forward(x).numpy()


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
