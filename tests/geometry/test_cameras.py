"""Pinhole cameras: projection/unprojection round trips, look-at frames, intrinsics JSON."""

import math

import pytest
import torch

from polydiff.geometry.cameras import (
    Cameras,
    Intrinsics,
    camera_rays,
    pixel_centres,
    project_points,
    unproject_depth,
)


def test_unproject_then_project_returns_pixel_centres():
    K = Intrinsics(50.0, 60.0, 30.5, 18.0, 64, 40)
    depth = torch.rand(40, 64, dtype=torch.float64) * 5 + 0.5
    pts = unproject_depth(depth, K.matrix())
    uv, z = project_points(pts.reshape(-1, 3), K.matrix())
    torch.testing.assert_close(uv, pixel_centres(40, 64).reshape(-1, 2))
    torch.testing.assert_close(z, depth.reshape(-1))


def test_principal_point_ray_is_the_optical_axis():
    K = Intrinsics(10.0, 10.0, 2.5, 1.5, 5, 3)  # centre of pixel (2, 1)
    rays = camera_rays(K.matrix(), 3, 5)
    torch.testing.assert_close(rays[1, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))


def test_look_at_is_opencv_and_projects_target_to_principal_point():
    eye = torch.tensor([[1.0, 2.0, 1.5], [-3.0, 0.0, 0.5]], dtype=torch.float64)
    target = torch.tensor([[1.0, 5.0, 1.5], [0.0, 1.0, 0.0]], dtype=torch.float64)
    K = Intrinsics(100.0, 100.0, 32.0, 24.0, 64, 48).matrix()
    cams = Cameras.look_at(eye, target, K, 64, 48)
    torch.testing.assert_close(cams.R @ cams.R.transpose(-1, -2),
                               torch.eye(3, dtype=torch.float64).expand(2, 3, 3))
    assert torch.allclose(torch.linalg.det(cams.R), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(cams.centres, eye)
    uv, z = cams.project(target[:, None])
    torch.testing.assert_close(uv[:, 0], torch.tensor([[32.0, 24.0]] * 2, dtype=torch.float64))
    # camera 0 looks along +y with z up: world +x is image right, world +z is image up
    uv_right, _ = cams.project(torch.tensor([[[2.0, 5.0, 1.5]]] * 2, dtype=torch.float64))
    uv_up, _ = cams.project(torch.tensor([[[1.0, 5.0, 2.5]]] * 2, dtype=torch.float64))
    assert uv_right[0, 0, 0] > 32 and uv_up[0, 0, 1] < 24


def test_world_rays_hit_unprojected_points():
    eye = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    cams = Cameras.look_at(eye, torch.zeros(1, 3, dtype=torch.float64),
                           Intrinsics.from_fov(70, 16, 12).matrix(), 16, 12)
    depth = torch.rand(1, 12, 16, dtype=torch.float64) + 1
    origins, dirs = cams.rays()
    torch.testing.assert_close(origins + depth[..., None] * dirs, cams.unproject(depth))
    pts = cams.unproject(depth).reshape(1, -1, 3)
    torch.testing.assert_close(cams.camera_to_world(cams.world_to_camera(pts)), pts)


def test_intrinsics_json_round_trip_and_resize():
    K = Intrinsics.from_fov(90.0, 640, 480)
    assert K.fx == pytest.approx(320.0) and K.fov_x_deg == pytest.approx(90.0)
    assert Intrinsics.from_dict(K.to_dict()) == K
    half = K.resized(320, 240)
    assert (half.fx, half.cx, half.cy) == pytest.approx((160.0, 160.0, 120.0))
    with pytest.raises(ValueError, match="lacks"):
        Intrinsics.from_dict({"fx": 1.0})
    with pytest.raises(ValueError):
        Intrinsics(-1.0, 1.0, 0.0, 0.0, 4, 4)
    with pytest.raises(ValueError):
        Intrinsics(math.nan, 1.0, 0.0, 0.0, 4, 4)
