"""Random ellipse phantoms with a smooth phase and analytic k-space, and small real images.

Geometry: the field of view is the unit square ``[-1/2, 1/2)^2``; pixel ``(i, j)`` of an
``N x N`` image sits at ``y = (i - N/2)/N``, ``x = (j - N/2)/N`` and k-space sample ``(m, n)``
at ``k_y = m - N/2``, ``k_x = n - N/2`` cycles per field of view, so that the centred
orthonormal FFT (``fft2c``) of the sampled image approximates ``N * F(k)``, with ``F`` the
continuous Fourier transform ``F(k) = integral f(r) exp(-2 pi i k.r) dr``.

An ellipse with semi-axes ``a, b``, rotation ``theta`` and centre ``c`` has
``F(k) = a b J1(2 pi rho) / rho * exp(-2 pi i k.c)`` with ``rho = |(a k'_1, b k'_2)|`` and
``k' = R(theta)^T k`` (``pi a b`` at ``rho = 0``). A phase ``phi0 + 2 pi g.r`` (smooth, so the
image is complex and k-space is not Hermitian-symmetric) shifts k-space by ``g``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import j1


@dataclass(frozen=True)
class Ellipse:
    """One ellipse: centre (x, y) and semi-axes in field-of-view units, angle in radians."""

    cx: float
    cy: float
    a: float
    b: float
    theta: float
    intensity: float


@dataclass(frozen=True)
class Phantom:
    """A sum of ellipses times ``exp(i (phase0 + 2 pi (gx x + gy y)))``."""

    ellipses: tuple[Ellipse, ...]
    phase0: float = 0.0  # radians
    gx: float = 0.0  # phase ramp, cycles per field of view
    gy: float = 0.0


def random_phantom(rng: np.random.Generator) -> Phantom:
    """A head-like phantom: a bright rim, 3-8 inner ellipses, a random smooth phase."""
    theta = rng.uniform(0, np.pi)
    cx, cy = rng.normal(0, 0.02, size=2)
    a, b = rng.uniform(0.3, 0.44, size=2)
    shrink = rng.uniform(0.88, 0.94)
    parts = [Ellipse(cx, cy, a, b, theta, 1.0),
             Ellipse(cx, cy, a * shrink, b * shrink, theta, -rng.uniform(0.5, 0.8))]
    for _ in range(int(rng.integers(3, 9))):
        r, ang = np.sqrt(rng.uniform(0, 0.45)), rng.uniform(0, 2 * np.pi)
        parts.append(Ellipse(cx + r * a * np.cos(ang), cy + r * b * np.sin(ang),
                             *rng.uniform(0.03, 0.15, size=2), rng.uniform(0, np.pi),
                             rng.uniform(-0.2, 0.4)))
    return Phantom(tuple(parts), rng.uniform(-np.pi, np.pi), *rng.uniform(-0.5, 0.5, size=2))


def _axis(n: int) -> np.ndarray:
    return (np.arange(n) - n // 2).astype(np.float64)


def phantom_kspace(p: Phantom, size: int) -> np.ndarray:
    """Analytic centred k-space of ``p`` on a ``size x size`` grid: (size, size) complex128."""
    ky, kx = np.meshgrid(_axis(size) - p.gy, _axis(size) - p.gx, indexing="ij")
    out = np.zeros((size, size), dtype=np.complex128)
    for e in p.ellipses:
        c, s = np.cos(e.theta), np.sin(e.theta)
        rho = np.hypot(e.a * (c * kx + s * ky), e.b * (-s * kx + c * ky))
        safe = np.where(rho > 0, rho, 1.0)
        disc = np.where(rho > 0, j1(2 * np.pi * safe) / safe, np.pi)
        out += e.intensity * e.a * e.b * disc * np.exp(-2j * np.pi * (kx * e.cx + ky * e.cy))
    return size * np.exp(1j * p.phase0) * out


def phantom_image(p: Phantom, size: int) -> np.ndarray:
    """``p`` sampled at the pixel centres of a ``size x size`` grid: (size, size) complex128."""
    y, x = np.meshgrid(_axis(size) / size, _axis(size) / size, indexing="ij")
    img = np.zeros((size, size), dtype=np.float64)
    for e in p.ellipses:
        c, s = np.cos(e.theta), np.sin(e.theta)
        u, v = c * (x - e.cx) + s * (y - e.cy), -s * (x - e.cx) + c * (y - e.cy)
        img += e.intensity * ((u / e.a) ** 2 + (v / e.b) ** 2 <= 1)
    return img * np.exp(1j * (p.phase0 + 2 * np.pi * (p.gx * x + p.gy * y)))


def phantom_volume(n: int, size: int, seed: int) -> np.ndarray:
    """``n`` random phantoms' analytic k-space from a private generator: (n, size, size) c64."""
    rng = np.random.default_rng(seed)
    return np.stack([phantom_kspace(random_phantom(rng), size) for _ in range(n)]).astype(
        np.complex64)


def shepp_logan(size: int) -> np.ndarray:
    """scikit-image's Shepp-Logan phantom (shipped in its wheel) resized: (size, size) float64."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    return resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)


def real_slices(size: int) -> dict[str, np.ndarray]:
    """Small real brain slices that installed wheels ship, as magnitudes (size, size) in [0, 1].

    nibabel's wheel ships a real EPI brain volume (``example4d.nii.gz``, 128x96x24); its middle
    slice is zero-padded to a square and resized. scikit-image's ``data.brain()`` is not in its
    wheel (it is downloaded at run time), so it is not used. Empty without nibabel.
    """
    from skimage.transform import resize

    found: dict[str, np.ndarray] = {}
    try:
        import nibabel
        from nibabel.testing import data_path
    except ImportError:
        return found
    vol = np.asarray(nibabel.load(f"{data_path}/example4d.nii.gz").dataobj)[..., 0]
    found["nibabel_example4d"] = np.rot90(vol[:, :, vol.shape[2] // 2]).astype(np.float64)
    return {k: resize(_pad_square(v / v.max()), (size, size), anti_aliasing=True)
            for k, v in found.items()}


def _pad_square(img: np.ndarray) -> np.ndarray:
    """Zero-pad the shorter axis of a 2-D image (centred), keeping its aspect ratio."""
    n = max(img.shape)
    pads = [((n - s) // 2, n - s - (n - s) // 2) for s in img.shape]
    return np.pad(img, pads)


def coil_maps(coils: int, size: int, width: float = 0.6) -> np.ndarray:
    """Smooth synthetic receive sensitivities (coils, size, size) complex64: Gaussian bumps
    centred on a circle around the field of view, each with its own linear phase."""
    y, x = np.meshgrid(_axis(size) / size, _axis(size) / size, indexing="ij")
    maps = []
    for c in range(coils):
        ang = 2 * np.pi * c / coils
        cx, cy = 0.5 * np.cos(ang), 0.5 * np.sin(ang)
        mag = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width**2))
        maps.append(mag * np.exp(1j * (ang + np.pi * (x * np.sin(ang) - y * np.cos(ang)))))
    return np.stack(maps).astype(np.complex64)
