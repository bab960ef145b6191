"""Metric depth from affine-invariant depth, intrinsics and a known camera height.

The network's depth d is affine-invariant: metric z-depth is D = s d + b for unknown s, b.
Floor pixels (normals facing up, the dominant up-facing plane) satisfy n . P = -h, with n
the floor normal in the camera frame, P = D K^-1 [u+0.5, v+0.5, 1] and h the camera
height above the floor. Each floor pixel thus gives one linear equation
    s (d n.r) + b (n.r) = -h,
solved for (s, b) by RANSAC over pixel pairs and least squares on the inliers. Table tops
and box lids are parallel to the floor but lie higher: they form smaller consensus sets.

Two unknowns need few pixels: the fit reads a regular grid of at most ``max_pixels``
pixels (every k-th row and column of a large image), and RANSAC scores its candidates on at
most ``ransac_points`` of the floor candidates, so memory and time do not grow with the
image (a 12-megapixel photograph costs what a 0.25-megapixel one does).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from polydiff.geometry.cameras import Intrinsics, camera_rays


class MetricDepth(NamedTuple):
    """depth (H, W) float32 in metres = scale * relative + shift; floor_fraction: share of
    the pixels read that lie on the fitted floor; floor_pixels: how many of them."""

    depth: np.ndarray
    scale: float
    shift: float
    floor_fraction: float
    floor_pixels: int


def grid_stride(height: int, width: int, max_pixels: int) -> int:
    """The smallest k such that every k-th row and column hold at most ``max_pixels``."""
    k = max(1, math.ceil(math.sqrt(height * width / max_pixels)))
    while math.ceil(height / k) * math.ceil(width / k) > max_pixels:
        k += 1
    return k


def strided_camera(intrinsics: Intrinsics, k: int, height: int, width: int) -> Intrinsics:
    """The camera of the image made of every k-th row and column (pixel (i, j) of it is
    pixel (k i, k j) of the original), of size ``width`` x ``height``."""
    if k == 1:
        return intrinsics
    return Intrinsics(intrinsics.fx / k, intrinsics.fy / k, (intrinsics.cx - 0.5) / k + 0.5,
                      (intrinsics.cy - 0.5) / k + 0.5, width, height)


def metric_depth_from_floor(relative: np.ndarray, normals: np.ndarray, intrinsics: Intrinsics,
                            camera_height: float, rng: np.random.Generator, *,
                            up_cos: float = 0.7, tol: float = 0.03, iterations: int = 200,
                            min_pixels: int = 30, max_pixels: int = 1 << 18,
                            ransac_points: int = 20000) -> MetricDepth | None:
    """Scale and shift ``relative`` (H, W) to metres using the floor seen in ``normals``
    (H, W, 3, OpenCV camera frame); None when no floor plane is found."""
    h, w = relative.shape
    k = grid_stride(h, w, max_pixels)
    rel = np.asarray(relative[::k, ::k], np.float64)
    nrm = np.asarray(normals[::k, ::k], np.float64)
    grid = strided_camera(intrinsics, k, *rel.shape)
    rays = camera_rays(grid.matrix(), *rel.shape).numpy()
    up = nrm[..., 1] < -up_cos  # y is down: an upward normal has negative y
    if up.sum() < min_pixels:
        return None
    n_floor = np.median(nrm[up], axis=0)
    n_floor /= np.linalg.norm(n_floor)
    cand = up & ((nrm @ n_floor) > np.cos(np.radians(12)))
    nr = rays @ n_floor
    cand &= nr < -1e-3  # the ray must head down towards the floor
    if cand.sum() < min_pixels:
        return None
    a, c = rel[cand] * nr[cand], nr[cand]
    # RANSAC over pixel pairs, scored on at most ``ransac_points`` candidates
    score = (np.arange(a.size) if a.size <= ransac_points
             else np.sort(rng.choice(a.size, ransac_points, replace=False)))
    a_s, c_s = a[score], c[score]
    i, j = rng.integers(0, a_s.size, (2, iterations))
    det = a_s[i] * c_s[j] - a_s[j] * c_s[i]
    ok = np.abs(det) > 1e-9
    if not ok.any():
        return None
    i, j, det = i[ok], j[ok], det[ok]
    s = (-camera_height * c_s[j] + camera_height * c_s[i]) / det
    b = (-camera_height * a_s[i] + camera_height * a_s[j]) / det
    inl = np.abs(s[:, None] * a_s + b[:, None] * c_s + camera_height) < tol * camera_height
    inl &= (s > 0)[:, None]
    best = int(np.argmax(inl.sum(1)))
    # least squares on the inliers of the best pair among all the candidates read
    inliers = (np.abs(s[best] * a + b[best] * c + camera_height) < tol * camera_height) \
        if s[best] > 0 else np.zeros(a.size, bool)
    if inliers.sum() < min_pixels:
        return None
    A = np.stack([a[inliers], c[inliers]], 1)
    (s_fit, b_fit), *_ = np.linalg.lstsq(A, np.full(len(A), -camera_height), rcond=None)
    if s_fit <= 0:
        return None
    depth = np.asarray(relative, np.float32) * np.float32(s_fit) + np.float32(b_fit)
    np.maximum(depth, np.float32(1e-3), out=depth)
    return MetricDepth(depth, float(s_fit), float(b_fit), float(inliers.sum() / cand.size),
                       int(inliers.sum()))
