"""Pictures of mono's results as 8-bit RGB arrays, and PNG writing.

Colour maps are applied through their 256-entry lookup tables on 8-bit indices (what
matplotlib does inside), so a 12-megapixel picture costs about 100 MB of temporaries
instead of the 400 MB of matplotlib's float64 RGBA.
"""

from __future__ import annotations

import os
from functools import cache

import numpy as np
from PIL import Image


@cache
def _lut(name: str) -> tuple[np.ndarray, int]:
    """The colour map ``name`` as an (N, 3) uint8 table, and N."""
    import matplotlib

    cmap = matplotlib.colormaps[name]
    table = cmap(np.arange(cmap.N))[:, :3]
    return np.clip(np.round(table * 255), 0, 255).astype(np.uint8), cmap.N


def colourise(values: np.ndarray, lo: float, hi: float, cmap: str) -> np.ndarray:
    """(H, W) values -> (H, W, 3) uint8 colours of ``cmap``, ``lo`` and ``hi`` at its ends."""
    table, n = _lut(cmap)
    x = np.asarray(values, np.float32) - np.float32(lo)
    x *= np.float32(n / max(hi - lo, 1e-9))
    np.clip(x, 0, n - 1, out=x)
    return table[x.astype(np.uint8 if n <= 256 else np.intp)]


def depth_picture(depth: np.ndarray) -> np.ndarray:
    """(H, W) depth -> (H, W, 3) uint8 Spectral colours between its 2nd and 98th percentiles."""
    lo, hi = np.percentile(depth, [2, 98])
    return colourise(depth, float(lo), float(hi), "Spectral")


def uncertainty_picture(spread: np.ndarray) -> np.ndarray:
    """(H, W) spread -> (H, W, 3) uint8 magma colours from 0 to its 99th percentile."""
    return colourise(spread, 0.0, max(float(np.percentile(spread, 99)), 1e-9), "magma")


def normals_picture(normals: np.ndarray, rows: int = 512) -> np.ndarray:
    """(H, W, 3) OpenCV normals -> (H, W, 3) uint8 (x right -> red, y up -> green, z to the
    viewer -> blue); ``rows`` at a time."""
    out = np.empty(normals.shape, np.uint8)
    scale = np.array([127.5, -127.5, -127.5], np.float32)
    for i in range(0, len(normals), rows):
        x = normals[i:i + rows] * scale
        x += np.float32(127.5)
        out[i:i + rows] = np.clip(np.rint(x, out=x), 0, 255, out=x)
    return out


def rgb_to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


def save_png(path: str | os.PathLike, pixels: np.ndarray) -> None:
    """Write (H, W, 3) uint8, (H, W) uint8 or (H, W) uint16 pixels as a PNG (fast zlib
    level: a 12-megapixel picture in about half the time of the default)."""
    Image.fromarray(pixels).save(path, format="PNG", compress_level=1)
