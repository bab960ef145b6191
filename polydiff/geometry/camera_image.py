"""DM-Calib's Camera Image: intrinsics as a dense per-pixel picture, and back by RANSAC.

Per pixel centre, r = normalize(K^-1 [u+0.5, v+0.5, 1]); theta = atan2(r_x, r_z) lies in
(-pi/2, pi/2) and phi = arccos(r_y) in (0, pi). They are stored normalised to [-1, 1]:
theta_n = 2 theta / pi, phi_n = 2 phi / pi - 1; a third channel holds the grayscale image.
K comes back from the two lines u = fx tan(theta) + cx and v = fy cot(phi) / cos(theta) + cy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from polydiff.geometry.cameras import Intrinsics, camera_rays, pixel_centres


def camera_image(intrinsics: Intrinsics, gray: Tensor | None = None) -> Tensor:
    """(2, H, W) [theta_n, phi_n] in [-1, 1], or (3, H, W) with ``gray`` (H, W) appended."""
    rays = camera_rays(intrinsics.matrix(), intrinsics.height, intrinsics.width)
    r = torch.nn.functional.normalize(rays, dim=-1)
    theta = torch.atan2(r[..., 0], r[..., 2])
    phi = torch.arccos(r[..., 1].clamp(-1.0, 1.0))
    channels = [2 * theta / math.pi, 2 * phi / math.pi - 1]
    if gray is not None:
        channels.append(gray.to(torch.float64))
    return torch.stack(channels).to(torch.float32)


@dataclass(frozen=True)
class LineFit:
    """y = slope * x + intercept from RANSAC, with the fraction of inliers."""

    slope: float
    intercept: float
    inlier_fraction: float


def ransac_line(x: np.ndarray, y: np.ndarray, threshold: float, rng: np.random.Generator,
                iterations: int = 256) -> LineFit:
    """Robust fit of y = a x + b (1-D arrays); inliers have |y - a x - b| < threshold.

    Candidate lines through random pairs of points are scored by their inlier count; the
    best one is refitted by least squares on its inliers.
    """
    n = x.shape[0]
    if n < 2:
        raise ValueError("a line fit needs at least two points")
    i, j = rng.integers(0, n, size=(2, iterations))
    dx = x[j] - x[i]
    ok = np.abs(dx) > 1e-12
    if not ok.any():
        raise ValueError("the camera image is constant: no line can be fitted")
    slope = (y[j] - y[i])[ok] / dx[ok]
    intercept = y[i][ok] - slope * x[i][ok]
    resid = np.abs(y[None] - slope[:, None] * x[None] - intercept[:, None])
    best = int(np.argmax((resid < threshold).sum(1)))
    inliers = resid[best] < threshold
    a, b = np.polyfit(x[inliers], y[inliers], 1) if inliers.sum() >= 2 else (slope[best],
                                                                             intercept[best])
    inliers = np.abs(y - a * x - b) < threshold
    return LineFit(float(a), float(b), float(inliers.mean()))


def intrinsics_from_camera_image(cam: Tensor, rng: np.random.Generator, *,
                                 threshold: float | None = None, iterations: int = 256,
                                 max_points: int = 20000) -> Intrinsics:
    """(C >= 2, H, W) Camera Image -> intrinsics of an H x W image, by two RANSAC line fits.

    ``threshold`` is the inlier distance in pixels (default: 1 % of the image diagonal, at
    least 0.75 px). At most ``max_points`` pixels, drawn with ``rng``, enter the fits.
    Pixels with non-finite values are ignored.
    """
    _, h, w = cam.shape
    theta = cam[0].double() * math.pi / 2
    phi = (cam[1].double() + 1) * math.pi / 2
    uv = pixel_centres(h, w)
    xu = torch.tan(theta)
    xv = torch.cos(phi) / torch.sin(phi) / torch.cos(theta)
    cols = [xu, uv[..., 0], xv, uv[..., 1]]
    data = torch.stack([c.reshape(-1) for c in cols], 1).numpy()
    data = data[np.isfinite(data).all(1)]
    if data.shape[0] < 2:
        raise ValueError("the camera image has fewer than two finite pixels")
    if data.shape[0] > max_points:
        data = data[rng.choice(data.shape[0], max_points, replace=False)]
    if threshold is None:
        threshold = max(0.75, 0.01 * math.hypot(h, w))
    fu = ransac_line(data[:, 0], data[:, 1], threshold, rng, iterations)
    fv = ransac_line(data[:, 2], data[:, 3], threshold, rng, iterations)
    if fu.slope <= 0 or fv.slope <= 0:
        raise ValueError("the camera image gives a non-positive focal length")
    return Intrinsics(fu.slope, fv.slope, fu.intercept, fv.intercept, w, h)
