"""Verification metrics as WeatherBench2 defines them, on (..., latitude, longitude) arrays.

Latitude weights are cos(latitude) normalised to mean 1 over the grid's latitudes.
Ensembles carry the member axis first: (M, ..., latitude, longitude).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def latitude_weights(lat: np.ndarray) -> np.ndarray:
    """cos(latitude) / mean(cos(latitude)), shape (H,), for latitudes in degrees."""
    w = np.cos(np.radians(np.asarray(lat, dtype=np.float64)))
    return w / w.mean()


def weighted_mean(x: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Latitude-weighted mean over the last two axes (H, W)."""
    return (x * latitude_weights(lat)[:, None]).mean(axis=(-2, -1))


def lat_weighted_rmse(pred: np.ndarray, truth: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """sqrt(Σ w_i (pred − truth)² / (H·W)) over the last two axes; shape (...)."""
    return np.sqrt(weighted_mean((pred - truth) ** 2, lat))


def mean_mse_members_inf(members: np.ndarray, truth: np.ndarray, lat: np.ndarray
                         ) -> np.ndarray:
    """Unbiased estimate of the weighted MSE that the mean of infinitely many members
    would score, from M >= 2 members (M, ..., H, W): shape (...).

    The mean of M exchangeable members misses the truth by the infinite ensemble's error
    plus their sampling error, so E[MSE_M] = MSE_inf + σ²/M; σ² is estimated by the
    unbiased member variance. Noisy per point; meant for averages over many.
    """
    m = members.shape[0]
    if m < 2:
        raise ValueError("the estimate needs at least two members")
    mse = weighted_mean((members.mean(0) - truth) ** 2, lat)
    return mse - weighted_mean(members.var(axis=0, ddof=1), lat) / m


def crps_ensemble(members: np.ndarray, truth: np.ndarray, *, fair: bool = True) -> np.ndarray:
    """Pointwise CRPS of an ensemble (M, ...) against ``truth`` (...): shape (...).

    CRPS = E|X − y| − ½ E|X − X'|, with the pair term averaged over M(M−1) ordered pairs of
    distinct members (``fair``, unbiased for the underlying distribution) or over all M².
    Exact, in O(M log M) per point: Σ_{i,j}|x_i − x_j| = 2 Σ_k (2k − M + 1) x_(k) (sorted).
    One member gives its absolute error (no pairs).
    """
    m = members.shape[0]
    skill = np.abs(members - truth[None]).mean(axis=0)
    x = np.sort(members, axis=0)
    k = np.arange(m).reshape(-1, *[1] * (members.ndim - 1))
    pair_sum = 2 * ((2 * k - m + 1) * x).sum(axis=0)
    pairs = m * (m - 1) if fair else m * m
    return skill - 0.5 * pair_sum / max(pairs, 1)


def crps_gaussian(mu: np.ndarray, sigma: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Closed-form CRPS of N(μ, σ²): σ [z (2Φ(z) − 1) + 2 φ(z) − 1/√π], z = (y − μ)/σ."""
    from scipy.stats import norm

    z = (truth - mu) / sigma
    return sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))


class SpreadSkill(NamedTuple):
    """Ensemble spread, RMSE of the ensemble mean and their ratio (1 when calibrated)."""

    spread: np.ndarray
    skill: np.ndarray
    ratio: np.ndarray


def spread_skill(members: np.ndarray, truth: np.ndarray, lat: np.ndarray) -> SpreadSkill:
    """WeatherBench2 spread/skill over the last two axes of (M, ..., H, W) members.

    spread = sqrt(weighted mean of the unbiased ensemble variance), skill = weighted RMSE of
    the ensemble mean; ratio = sqrt((M + 1)/M) · spread / skill.
    """
    m = members.shape[0]
    spread = np.sqrt(weighted_mean(members.var(axis=0, ddof=1), lat))
    skill = lat_weighted_rmse(members.mean(axis=0), truth, lat)
    return SpreadSkill(spread, skill, np.sqrt((m + 1) / m) * spread / np.maximum(skill, 1e-30))


def radial_spectrum(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of (..., H, W) fields over the last two axes.

    Returns integer radial wavenumbers k = 0 … min(H, W)//2 (cycles per domain) and the power
    P(k) (..., K): the sum of |FFT|²/(H·W)² over the ring round(|k|) = k, so that Σ_k P(k)
    is the mean square of the field (Parseval) up to the corners beyond the last ring.
    """
    h, w = field.shape[-2:]
    power = np.abs(np.fft.fft2(field)) ** 2 / (h * w) ** 2
    ky = np.fft.fftfreq(h, 1.0 / h)[:, None]
    kx = np.fft.fftfreq(w, 1.0 / w)[None, :]
    ring = np.rint(np.sqrt(kx**2 + ky**2)).astype(int).ravel()
    k = np.arange(min(h, w) // 2 + 1)
    flat = power.reshape(*power.shape[:-2], -1)
    spectrum = np.stack([flat[..., ring == r].sum(-1) for r in k], axis=-1)
    return k, spectrum
