"""Procedural shapes: watertight, normalised, coloured, seeded, proportioned."""

import numpy as np
import pytest
import trimesh

from polydiff.geometry.shapes import (
    SHAPE_KINDS,
    box,
    capsule,
    cylinder,
    frustum,
    make_shape,
    mesh_sdf,
    shape_sdf,
    sphere,
    torus,
)


@pytest.mark.parametrize("kind", SHAPE_KINDS)
def test_every_kind_is_one_closed_normalised_coloured_surface(kind):
    for seed in range(2):
        mesh = make_shape(kind, np.random.default_rng(seed), (0.8, 0.1, 0.1), resolution=40)
        assert mesh.is_watertight and mesh.is_winding_consistent
        assert mesh.volume > 0  # outward normals
        assert mesh.body_count == 1
        lo, hi = mesh.bounds
        np.testing.assert_allclose((lo + hi) / 2, 0, atol=1e-9)
        assert (hi - lo).max() == pytest.approx(1.0)
        rgba = mesh.visual.vertex_colors
        assert rgba.shape == (len(mesh.vertices), 4) and rgba.dtype == np.uint8
        # most of the surface takes the shape's colour (accents: lamp base, snowman hat)
        share = np.mean(np.all(rgba[:, :3] == [204, 26, 26], axis=1))
        assert share > 0.3


def test_same_seed_same_mesh_other_seed_other_mesh():
    a = make_shape("chair", np.random.default_rng(5), resolution=32)
    b = make_shape("chair", np.random.default_rng(5), resolution=32)
    c = make_shape("chair", np.random.default_rng(6), resolution=32)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    assert a.vertices.shape != c.vertices.shape or not np.allclose(a.vertices, c.vertices)


def test_aspect_stretches_along_z():
    ext = []
    for aspect in (0.6, 1.0, 1.6):
        lo, hi = make_shape("cylinder", np.random.default_rng(0), aspect=aspect,
                            resolution=32).bounds
        ext.append((hi - lo)[2] / (hi - lo)[0])
    assert ext[0] < ext[1] < ext[2]
    assert ext[2] / ext[1] == pytest.approx(1.6, rel=0.08)


def test_sphere_mesh_matches_analytic_area_and_volume():
    from polydiff.geometry.shapes import ShapeSdf

    f = sphere((0.1, 0.2, 0.3), 0.7)
    mesh = mesh_sdf(ShapeSdf(f, [f], [None]), (1, 1, 1), resolution=64)
    # normalised to diameter 1: radius 0.5
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.5 ** 3, rel=0.02)
    assert mesh.area == pytest.approx(4 * np.pi * 0.5 ** 2, rel=0.02)
    r = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(r - 0.5).max() < 0.01


def test_primitive_sdfs_vanish_on_known_surface_points():
    pts = {
        sphere((0, 0, 0), 1.0): [[1, 0, 0], [0, 0, -1]],
        box((0, 0, 0), (1, 2, 3)): [[1, 0, 0], [0, 2, 0], [0.5, 0.5, 3]],
        box((0, 0, 0), (1, 2, 3), yaw=np.pi / 2): [[2, 0, 0], [0, 1, 0]],
        cylinder((0, 0, 0), 0.5, 2.0): [[0.5, 0, 1], [0, 0.2, 2.0], [0.1, 0, 0]],
        frustum((0, 0, 0), 1.0, 0.0, 1.0): [[0.5, 0, 0.5], [0, 0, 1.0], [0.3, 0, 0]],
        torus((0, 0, 0), 1.0, 0.25): [[1.25, 0, 0], [0, 0.75, 0], [1, 0, 0.25]],
        torus((0, 0, 0), 1.0, 0.25, axis="y"): [[0, 0, 1.25], [1, 0.25, 0]],
        capsule((0, 0, 0), (0, 0, 1), 0.2): [[0.2, 0, 0.5], [0, 0, 1.2]],
    }
    for f, p in pts.items():
        np.testing.assert_allclose(f(np.asarray(p, float)), 0, atol=1e-12)
    # inside is negative, outside positive
    assert sphere((0, 0, 0), 1)(np.array([[0.0, 0, 0], [2, 0, 0]])).tolist() == [-1, 1]


def test_mug_is_hollow_and_bad_input_is_refused():
    shape = shape_sdf("mug", np.random.default_rng(0))
    # the centre of the cavity near the rim is outside the solid
    mesh = mesh_sdf(shape, (1, 0, 0), 48)
    assert mesh.volume < 0.5 * trimesh.convex.convex_hull(mesh).volume
    with pytest.raises(ValueError, match="unknown shape kind"):
        shape_sdf("dragon", np.random.default_rng(0))
    with pytest.raises(ValueError, match="colour"):
        make_shape("ball", np.random.default_rng(0), (2, 0, 0))
    with pytest.raises(ValueError, match="aspect"):
        make_shape("ball", np.random.default_rng(0), aspect=0)
