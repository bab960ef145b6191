"""Surface metrics against exact answers."""

import numpy as np
import torch
import trimesh

from polydiff.geometry.mesh_metrics import (
    chamfer_distance,
    compare_to_truth,
    f_score,
    normal_consistency,
    reference_shapes,
    sample_surface,
)


def test_chamfer_of_a_shifted_plane_sample_is_the_shift():
    rng = np.random.default_rng(0)
    a = np.c_[rng.random((2000, 2)), np.zeros(2000)]
    b = a + [0.0, 0.0, 0.03]
    assert np.isclose(chamfer_distance(a, b), 0.03)
    assert f_score(a, b, 0.02) == (0.0, 0.0, 0.0)
    assert f_score(a, b, 0.04) == (1.0, 1.0, 1.0)


def test_samples_lie_on_the_surface_with_its_normals():
    box = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    s = sample_surface(box.vertices, box.faces, 3000, torch.Generator().manual_seed(0))
    on_face = np.isclose(np.abs(s.points), [0.5, 1.0, 1.5]).any(-1)
    assert on_face.all()
    # the normal is the axis of the face the point lies on, pointing out
    axis = np.abs(s.normals).argmax(-1)
    along, n_along = s.points[np.arange(3000), axis], s.normals[np.arange(3000), axis]
    assert np.allclose(np.abs(along), np.array([0.5, 1.0, 1.5])[axis])
    assert (np.sign(along) == np.sign(n_along)).all()
    # face areas 2, 3, 6 (each twice): points spread in proportion
    frac = np.bincount(axis, minlength=3) / 3000
    assert np.allclose(frac, np.array([6.0, 3.0, 2.0]) / 11, atol=0.03)
    assert np.isclose(normal_consistency(s, s), 1.0)


def test_reference_shapes_match_their_own_samples():
    gen = torch.Generator().manual_seed(0)
    for shape in reference_shapes().values():
        truth = shape.sample(20000, gen)
        if shape.name != "two_spheres":  # the rendered union still holds the inner caps
            m = compare_to_truth(shape.verts, shape.faces, truth, generator=gen)
            assert m.chamfer < 0.006 and m.normal_consistency > 0.99 and m.f_score > 0.99
    inner = reference_shapes()["two_spheres"].sample(4000, gen).points
    c, r = np.array([[-0.15, 0.0, -0.1], [0.2, 0.05, 0.15]]), np.array([0.3, 0.22])
    assert (np.linalg.norm(inner[:, None] - c, axis=-1) > r * (1 - 1e-3)).all()
