"""Procedural scenes: ground truth consistent with itself, seeded, in range."""

import numpy as np
import torch

from polydiff.geometry.cameras import unproject_depth
from polydiff.geometry.normals import angular_error_deg, normals_from_depth
from polydiff.geometry.scenes import (
    SceneConfig,
    _box,
    _Object,
    hit_box,
    hit_cylinder,
    hit_sphere,
    render_scene,
    unshadowed,
)
from polydiff.geometry.textures import Texture


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


PHOTO_CFG = dict(outdoor_fraction=0.4, photo_fraction=0.5, furniture=(1, 4), light_tint=0.5,
                 fov_deg=(10.3, 104.3), roll_deg=(-20.0, 20.0), pitch_deg=(-45.0, 20.0))


def test_richer_scenes_are_seeded_finite_and_self_consistent():
    cfg = SceneConfig(height=48, width=64, **PHOTO_CFG)
    a, b = render_scene(np.random.default_rng(11), cfg), render_scene(np.random.default_rng(11),
                                                                      cfg)
    assert torch.equal(a.image, b.image) and torch.equal(a.depth, b.depth)
    for seed in range(6):
        s = render_scene(np.random.default_rng(seed), cfg)
        assert torch.isfinite(s.image).all() and 0 <= s.image.min() and s.image.max() <= 1
        assert (s.depth > 0).all() and (s.depth <= cfg.far).all()
        torch.testing.assert_close(s.normals.norm(dim=-1), torch.ones(48, 64), atol=1e-5,
                                   rtol=0)
        est = normals_from_depth(s.depth.double(), s.intrinsics.matrix())
        assert (angular_error_deg(est, s.normals.double()) < 0.5).float().mean() > 0.5
        pts = unproject_depth(s.depth.double(), s.intrinsics.matrix())
        assert ((s.normals.double() * pts).sum(-1) <= 1e-4).all()  # facing the camera


def test_outdoors_the_ground_is_at_camera_height_and_the_sky_at_the_far_limit():
    from polydiff.geometry.scenes import render_outdoor

    cfg = SceneConfig(height=48, width=64, pitch_deg=(-5.0, 5.0), fov_deg=(60.0, 80.0),
                      roll_deg=(0.0, 0.0), far=90.0)
    for seed in range(3):
        s = render_outdoor(np.random.default_rng(seed), cfg)
        pts = unproject_depth(s.depth.double(), s.intrinsics.matrix())
        up = s.up.double()
        ground = ((s.normals.double() @ up) > 0.999) & (s.depth < cfg.far).to(torch.bool)
        heights = -(pts[ground] @ up)
        low = heights[heights > s.camera_height - 0.05]  # car roofs lie higher
        assert len(low) > 50
        torch.testing.assert_close(low, torch.full_like(low, s.camera_height), atol=1e-4,
                                   rtol=0)
        # looking level, the upper rows see the sky: depth = far, normals against the ray
        sky = s.depth >= cfg.far
        assert sky[0].any() and not sky[-1].any()
        rays = torch.nn.functional.normalize(pts[sky], dim=-1)
        torch.testing.assert_close(s.normals.double()[sky], -rays, atol=1e-5, rtol=0)


def test_a_photo_texture_tiles_the_photograph_on_the_surface():
    from polydiff.geometry.textures import Texture, photo_library

    assert len(photo_library()) >= 10  # skimage's photographs are installed with polydiff
    photo = np.random.default_rng(0).uniform(size=(4, 6, 3)).astype(np.float32)
    tex = Texture("photo", np.ones((2, 3)), scale=2.0, photo=photo)
    # on the floor (normal +z) column = x / scale * 6, row = -y / scale * 4, tiled
    p = torch.tensor([[0.1, -0.1, 0.0], [0.7, -1.1, 0.0], [2.1, -0.1, 0.0]], dtype=torch.float64)
    n = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64).expand(3, 3)
    got = tex.albedo(p, n).numpy()
    np.testing.assert_allclose(got, photo[[0, 2, 0], [0, 2, 0]], rtol=1e-6)
    # on a wall facing +x, the photograph runs along y and z (world up = image up)
    p = torch.tensor([[3.0, 0.1, -0.6]], dtype=torch.float64)
    got = tex.albedo(p, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, photo[[1], [0]], rtol=1e-6)


def test_objects_cast_shadows_on_what_lies_behind_them():
    """Shadow rays against known geometry: floor points under a slab do not see a lamp above
    it, those beside it do; an object beyond the lamp casts nothing; a ball blocks the sun
    (at infinity) only on the side it stands."""
    grey = Texture("plain", np.stack([np.full(3, 0.5)] * 2))
    slab = _box([0.0, 0.0, 1.0], np.array([0.5, 0.5, 0.05]), 0.3, grey)
    floor = torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.2, 0.0], [2.0, 0.0, 0.0]],
                         dtype=torch.float64)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(floor)
    lamp = torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)
    assert unshadowed(floor, up, lamp - floor, [slab], reach=1.0).tolist() == \
        [False, False, True]
    low_lamp = torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)  # below the slab
    assert unshadowed(floor, up, low_lamp - floor, [slab], reach=1.0).all()
    ball = _Object("sphere", (torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64), 0.3), grey)
    sun_high = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(floor)
    sun_low = torch.nn.functional.normalize(torch.tensor([1.0, 0.0, 0.2], dtype=torch.float64),
                                            dim=0).expand_as(floor)
    assert unshadowed(floor, up, sun_high, [ball]).tolist() == [False, True, True]
    assert unshadowed(floor, up, sun_low, [ball]).all()
    assert unshadowed(floor, up, sun_high, []).all()
