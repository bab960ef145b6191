"""Metric depth from affine-invariant depth, intrinsics and a known camera height.

The network's depth d is affine-invariant: metric z-depth is D = s d + b for unknown s, b.
Floor pixels (normals facing up, the dominant up-facing plane) satisfy n . P = -h, with n
the floor normal in the camera frame, P = D K^-1 [u+0.5, v+0.5, 1] and h the camera
height above the floor. Each floor pixel thus gives one linear equation
    s (d n.r) + b (n.r) = -h,
solved for (s, b) by RANSAC over pixel pairs and least squares on the inliers. Table tops
and box lids are parallel to the floor but lie higher: they form smaller consensus sets.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from polydiff.geometry.cameras import Intrinsics, camera_rays


class MetricDepth(NamedTuple):
    """depth (H, W) in metres = scale * relative + shift; floor (H, W) bool inlier pixels."""

    depth: np.ndarray
    scale: float
    shift: float
    floor: np.ndarray


def metric_depth_from_floor(relative: np.ndarray, normals: np.ndarray, intrinsics: Intrinsics,
                            camera_height: float, rng: np.random.Generator, *,
                            up_cos: float = 0.7, tol: float = 0.03, iterations: int = 200,
                            min_pixels: int = 30) -> MetricDepth | None:
    """Scale and shift ``relative`` (H, W) to metres using the floor seen in ``normals``
    (H, W, 3, OpenCV camera frame); None when no floor plane is found."""
    rays = camera_rays(intrinsics.matrix(), *relative.shape).numpy()
    up = normals[..., 1] < -up_cos  # y is down: an upward normal has negative y
    if up.sum() < min_pixels:
        return None
    n_floor = np.median(normals[up], axis=0)
    n_floor /= np.linalg.norm(n_floor)
    cand = up & ((normals @ n_floor) > np.cos(np.radians(12)))
    nr = rays @ n_floor
    cand &= nr < -1e-3  # the ray must head down towards the floor
    if cand.sum() < min_pixels:
        return None
    a, c = relative[cand] * nr[cand], nr[cand]
    i, j = rng.integers(0, a.size, (2, iterations))
    det = a[i] * c[j] - a[j] * c[i]
    ok = np.abs(det) > 1e-9
    if not ok.any():
        return None
    i, j, det = i[ok], j[ok], det[ok]
    s = (-camera_height * c[j] + camera_height * c[i]) / det
    b = (-camera_height * a[i] + camera_height * a[j]) / det
    resid = np.abs(s[:, None] * a + b[:, None] * c + camera_height)
    inl = resid < tol * camera_height
    inl &= (s > 0)[:, None]
    best = int(np.argmax(inl.sum(1)))
    if inl[best].sum() < min_pixels:
        return None
    A = np.stack([a[inl[best]], c[inl[best]]], 1)
    (s_fit, b_fit), *_ = np.linalg.lstsq(A, np.full(len(A), -camera_height), rcond=None)
    if s_fit <= 0:
        return None
    depth = s_fit * relative + b_fit
    floor = np.zeros_like(cand)
    floor.flat[np.flatnonzero(cand)[inl[best]]] = True
    return MetricDepth(np.clip(depth, 1e-3, None).astype(np.float32), float(s_fit),
                       float(b_fit), floor)
