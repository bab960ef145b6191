"""Normals from depth: exact on planes, converging on a sphere."""

import torch

from polydiff.geometry.cameras import Intrinsics, camera_rays
from polydiff.geometry.normals import angular_error_deg, normals_from_depth


def _plane_depth(n: torch.Tensor, c: float, K: Intrinsics) -> torch.Tensor:
    """z-depth of the plane n . p = c seen through K."""
    rays = camera_rays(K.matrix(), K.height, K.width)
    return c / (rays @ n)


def test_plane_normals_are_exact():
    K = Intrinsics(40.0, 45.0, 17.0, 13.0, 32, 24)
    n = torch.nn.functional.normalize(torch.tensor([0.3, -0.8, -0.5], dtype=torch.float64), dim=0)
    depth = _plane_depth(n, -2.0, K)  # n . p = -2 < 0: n faces the camera
    assert (depth > 0).all()
    normals = normals_from_depth(depth, K.matrix())
    torch.testing.assert_close(normals, n.expand_as(normals), atol=1e-9, rtol=0)


def test_sphere_normals_converge():
    K = Intrinsics.from_fov(40.0, 96, 96)
    centre, radius = torch.tensor([0.1, -0.05, 3.0], dtype=torch.float64), 0.8
    d = torch.nn.functional.normalize(camera_rays(K.matrix(), 96, 96), dim=-1)
    b = (d @ centre)
    disc = b**2 - (centre @ centre - radius**2)
    hit = disc > 0
    dist = b - disc.clamp(min=0).sqrt()
    pts = dist[..., None] * d
    depth = torch.where(hit, pts[..., 2], torch.nan)
    true = torch.nn.functional.normalize(pts - centre, dim=-1)
    est = normals_from_depth(depth, K.matrix())
    inner = hit.clone()  # away from the silhouette, where differences cross the boundary
    inner &= torch.nn.functional.max_pool2d((~hit)[None].double(), 5, 1, 2)[0] == 0
    err = angular_error_deg(est[inner], true[inner])
    assert err.max() < 1.0 and err.mean() < 0.2
    assert torch.isnan(est[~hit]).all()
