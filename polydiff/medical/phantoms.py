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

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import j1
from tqdm.auto import tqdm

# Cost of making phantoms, measured on the 2-core development CPU (one thread) and rounded
# up: a phantom's analytic k-space takes ~1.7 µs per pixel (rim + 3-8 ellipses), the coil
# images and their FFTs ~80 ns per coil and pixel.
SECONDS_PER_PIXEL = 2e-6
SECONDS_PER_COIL_PIXEL = 1e-7


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


def phantom_volume(n: int, size: int, seed: int, *, progress: bool = False) -> np.ndarray:
    """``n`` random phantoms' analytic k-space from a private generator: (n, size, size) c64."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size), dtype=np.complex64)
    for i in tqdm(range(n), desc="phantoms", disable=not progress, leave=False):
        out[i] = phantom_kspace(random_phantom(rng), size)
    return out


class PhantomCost(NamedTuple):
    """What making ``n`` phantom slices costs (an estimate from the options alone)."""

    seconds: float
    memory: int  # bytes held at once: one slice with its coil images, and the coil maps
    disk: int  # bytes of the fastMRI file: k-space (complex64) and the truth (float32)


def phantom_cost(n: int, size: int, coils: int) -> PhantomCost:
    """The time, memory and disk that ``phantom_slices(n, size, coils)`` needs."""
    pixels = float(size) * size
    seconds = n * pixels * (SECONDS_PER_PIXEL + coils * SECONDS_PER_COIL_PIXEL)
    # one slice: complex128 k-space, coil images + k-space (complex64, twice for the FFT),
    # plus the maps (complex64, and float64 while they are made)
    memory = pixels * (16 + 8 * 4 * coils + 24 * coils)
    disk = n * pixels * (8 * coils + 4)
    return PhantomCost(seconds, int(memory), int(disk))


def phantom_slices(n: int, size: int, coils: int, seed: int
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``n`` phantom scans one at a time: (k-space, truth magnitude (size, size) float32).

    One coil: k-space (size, size) complex64 and |image|. Several: the k-space (coils, size,
    size) of the images weighted by ``coil_maps`` and their root-sum-of-squares.
    """
    import torch

    from polydiff.medical.kspace import fft2c, ifft2c, rss

    rng = np.random.default_rng(seed)
    maps = torch.from_numpy(coil_maps(coils, size)) if coils > 1 else None
    for _ in range(n):
        k = torch.from_numpy(phantom_kspace(random_phantom(rng), size).astype(np.complex64))
        image = ifft2c(k)
        if maps is None:
            yield k.numpy(), image.abs().numpy().astype(np.float32)
        else:
            coil_images = maps * image  # (coils, size, size)
            yield (fft2c(coil_images).numpy(),
                   rss(coil_images, 0).numpy().astype(np.float32))


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
