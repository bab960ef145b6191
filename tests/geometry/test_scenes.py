"""Procedural scenes: ground truth consistent with itself, seeded, in range."""

import numpy as np
import torch

from polydiff.geometry.cameras import unproject_depth
from polydiff.geometry.normals import angular_error_deg, normals_from_depth
from polydiff.geometry.scenes import SceneConfig, hit_box, hit_cylinder, hit_sphere, render_scene


def test_same_seed_same_scene_and_ranges():
    cfg = SceneConfig(height=24, width=32)
    a, b = render_scene(np.random.default_rng(3), cfg), render_scene(np.random.default_rng(3), cfg)
    assert torch.equal(a.image, b.image) and torch.equal(a.depth, b.depth)
    assert a.intrinsics == b.intrinsics
    c = render_scene(np.random.default_rng(4), cfg)
    assert not torch.equal(a.image, c.image)
    assert a.image.shape == (24, 32, 3) and 0 <= a.image.min() and a.image.max() <= 1
    assert (a.depth > 0).all() and torch.isfinite(a.depth).all()
    torch.testing.assert_close(a.normals.norm(dim=-1), torch.ones(24, 32), atol=1e-5, rtol=0)


def test_normals_from_depth_agree_with_returned_normals_on_planes():
    cfg = SceneConfig(height=48, width=64)
    for seed in range(3):
        s = render_scene(np.random.default_rng(seed), cfg)
        est = normals_from_depth(s.depth.double(), s.intrinsics.matrix())
        err = angular_error_deg(est, s.normals.double())
        # most pixels lie inside planar faces, where differencing is exact
        assert (err < 0.5).float().mean() > 0.6
        # every surface faces the camera
        pts = unproject_depth(s.depth.double(), s.intrinsics.matrix())
        assert ((s.normals.double() * pts).sum(-1) <= 1e-4).all()


def test_floor_lies_at_camera_height_below_the_camera():
    cfg = SceneConfig(height=48, width=64, pitch_deg=(-40.0, -30.0))
    s = render_scene(np.random.default_rng(7), cfg)
    pts = unproject_depth(s.depth.double(), s.intrinsics.matrix())
    floor = (s.normals.double() @ s.up.double()) > 0.999
    assert floor.sum() > 50
    heights = -(pts[floor] @ s.up.double())  # distance below the camera along world up
    floor_h = heights[heights > s.camera_height - 0.05]  # objects' top faces are higher
    torch.testing.assert_close(floor_h, torch.full_like(floor_h, s.camera_height), atol=1e-4,
                               rtol=0)


def test_primitive_intersections_against_closed_forms():
    o = torch.tensor([[0.0, -5.0, 1.0]], dtype=torch.float64)
    d = torch.tensor([[0.0, 2.0, 0.0]], dtype=torch.float64)  # non-unit direction
    t, n = hit_sphere(o, d, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), 1.0)
    assert float(t) == 2.0 and n.tolist() == [[0.0, -1.0, 0.0]]
    t, n = hit_box(o, d, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64),
                   torch.tensor([1.0, 0.5, 1.0], dtype=torch.float64), 0.0)
    assert abs(float(t) - 2.25) < 1e-12 and torch.allclose(n, torch.tensor([[0.0, -1.0, 0.0]],
                                                                            dtype=torch.float64))
    t, n = hit_cylinder(o, d, torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64), 0.5, 2.0)
    assert abs(float(t) - 2.25) < 1e-12
    down = torch.tensor([[0.0, 0.0, 3.0]], dtype=torch.float64)
    t, n = hit_cylinder(down, torch.tensor([[0.0, 0.0, -1.0]], dtype=torch.float64),
                        torch.zeros(3, dtype=torch.float64), 0.5, 2.0)
    assert float(t) == 1.0 and n.tolist() == [[0.0, 0.0, 1.0]]
