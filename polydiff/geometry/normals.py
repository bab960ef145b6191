"""Surface normals from z-depth by finite differences of the unprojected points."""

from __future__ import annotations

import torch
from torch import Tensor

from polydiff.geometry.cameras import unproject_depth


def _diff(points: Tensor, dim: int) -> Tensor:
    """Central differences along ``dim`` (one-sided at the borders), same shape as input."""
    n = points.shape[dim]
    if n < 2:
        return torch.zeros_like(points)
    fwd = points.narrow(dim, 1, n - 1) - points.narrow(dim, 0, n - 1)
    first, last = fwd.narrow(dim, 0, 1), fwd.narrow(dim, n - 2, 1)
    if n == 2:
        return torch.cat([first, last], dim=dim)
    central = 0.5 * (points.narrow(dim, 2, n - 2) - points.narrow(dim, 0, n - 2))
    return torch.cat([first, central, last], dim=dim)


def normals_from_depth(depth: Tensor, K: Tensor) -> Tensor:
    """(..., H, W) z-depth and (..., 3, 3) K -> (..., H, W, 3) unit camera-frame normals.

    Normals face the camera (n . p < 0) in the OpenCV frame. Pixels whose depth or whose
    neighbours' depth is not finite and positive get NaN normals. On a plane the result is
    exact: both differences lie in the plane.
    """
    valid = torch.isfinite(depth) & (depth > 0)
    pts = unproject_depth(torch.where(valid, depth, torch.nan), K)
    du, dv = _diff(pts, -2), _diff(pts, -3)
    n = torch.nn.functional.normalize(torch.linalg.cross(dv, du), dim=-1)
    flip = (n * pts).sum(-1, keepdim=True) > 0
    n = torch.where(flip, -n, n)
    return torch.where(torch.isfinite(n).all(-1, keepdim=True), n, torch.nan)


def angular_error_deg(pred: Tensor, target: Tensor) -> Tensor:
    """(..., 3) normals -> (...) angle between them in degrees (inputs need not be unit)."""
    p = torch.nn.functional.normalize(pred, dim=-1)
    t = torch.nn.functional.normalize(target, dim=-1)
    return torch.rad2deg(torch.arccos((p * t).sum(-1).clamp(-1.0, 1.0)))
