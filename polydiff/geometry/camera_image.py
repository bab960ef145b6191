"""DM-Calib's Camera Image: intrinsics as a dense per-pixel picture, and back by RANSAC.

Per pixel centre, r = normalize(K^-1 [u+0.5, v+0.5, 1]); theta = atan2(r_x, r_z) lies in
(-pi/2, pi/2) and phi = arccos(r_y) in (0, pi). They are stored normalised to [-1, 1]:
theta_n = 2 theta / pi, phi_n = 2 phi / pi - 1; a third channel holds the grayscale image.
K comes back from the two lines u = fx tan(theta) + cx and v = fy cot(phi) / cos(theta) + cy.
Cameras have square pixels (fx = fy), so by default one focal length is fitted to both lines
at once, in the pixels of the image the Camera Image was resampled from (a network working
at a square r x r resolution sees a 4:3 photograph squeezed; its Camera Image is read back
in the photograph's own pixels). Two focal lengths are fitted only when asked for.
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
                                 max_points: int = 20000, size: tuple[int, int] | None = None,
                                 square_pixels: bool = True) -> Intrinsics:
    """(C >= 2, h, w) Camera Image -> intrinsics of the W x H image it was resampled from.

    ``size``: (W, H) of that image (default: the Camera Image's own size); pixel
    coordinates are scaled by W / w and H / h before the fits. ``square_pixels``: one focal
    length fx = fy for both lines (default), else fx and fy fitted separately.
    ``threshold`` is the inlier distance in pixels of the W x H image (default: 1 % of its
    diagonal, at least 0.75 px). At most ``max_points`` pixels, drawn with ``rng``, enter
    the fits. Pixels with non-finite values are ignored.
    """
    _, h, w = cam.shape
    width, height = (w, h) if size is None else (int(size[0]), int(size[1]))
    theta = cam[0].double() * math.pi / 2
    phi = (cam[1].double() + 1) * math.pi / 2
    uv = pixel_centres(h, w) * torch.tensor([width / w, height / h], dtype=torch.float64)
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
        threshold = max(0.75, 0.01 * math.hypot(height, width))
    fu = ransac_line(data[:, 0], data[:, 1], threshold, rng, iterations)
    fv = ransac_line(data[:, 2], data[:, 3], threshold, rng, iterations)
    if fu.slope <= 0 or fv.slope <= 0:
        raise ValueError("the camera image gives a non-positive focal length")
    if not square_pixels:
        return Intrinsics(fu.slope, fv.slope, fu.intercept, fv.intercept, width, height)
    f, cx, cy = shared_focal_fit(data, fu, fv, threshold)
    if f <= 0:
        raise ValueError("the camera image gives a non-positive focal length")
    return Intrinsics(f, f, cx, cy, width, height)


def shared_focal_fit(data: np.ndarray, fu: LineFit, fv: LineFit, threshold: float
                     ) -> tuple[float, float, float]:
    """One focal length for both lines: least squares of u = f xu + cx and v = f xv + cy
    (``data`` (N, 4) columns xu, u, xv, v) over the inliers of the separate fits ``fu``,
    ``fv``. When the two lines disagree on the focal length, f is their compromise
    weighted by the spread of xu and xv; no inliers are re-selected with it."""
    xu, u, xv, v = data.T
    in_u = np.abs(u - fu.slope * xu - fu.intercept) < threshold
    in_v = np.abs(v - fv.slope * xv - fv.intercept) < threshold
    nu, nv = int(in_u.sum()), int(in_v.sum())
    if nu < 2 or nv < 2:
        f = (fu.slope + fv.slope) / 2
        return f, float(np.median(u - f * xu)), float(np.median(v - f * xv))
    A = np.zeros((nu + nv, 3))
    A[:nu, 0], A[:nu, 1] = xu[in_u], 1.0
    A[nu:, 0], A[nu:, 2] = xv[in_v], 1.0
    (f, cx, cy), *_ = np.linalg.lstsq(A, np.concatenate([u[in_u], v[in_v]]), rcond=None)
    return float(f), float(cx), float(cy)
