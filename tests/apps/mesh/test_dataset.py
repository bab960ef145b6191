"""Training renders: world normals seen from the rig, masks, camera features, the cache."""

import dataclasses

import numpy as np
import torch

from polydiff.apps.mesh.dataset import (
    MeshDataConfig,
    canonical_azimuths,
    load_or_build,
    render_object,
    rig,
    views_tensor,
)
from polydiff.geometry.meshes import mesh_tensors
from polydiff.geometry.render import orbit_cameras, render_mesh
from polydiff.geometry.shapes import make_shape

CFG = MeshDataConfig(objects=3, size=24, resolution=32, captions_per_object=2)


def test_ball_views_show_world_normals_facing_each_camera():
    mesh = make_shape("ball", np.random.default_rng(0), resolution=40)
    verts, faces, _ = mesh_tensors(mesh)
    az = canonical_azimuths(4)
    out = render_mesh(verts, faces, orbit_cameras(0.0, az, CFG.distance, CFG.fov_deg, 24))
    x = views_tensor(out.normals, out.mask)                          # (V, 4, H, W)
    assert x.shape == (4, 4, 24, 24)
    centre = x[:, :3, 11:13, 11:13].mean((-1, -2))                   # (V, 3)
    a = torch.deg2rad(az).float()
    toward_camera = torch.stack([torch.sin(a), -torch.cos(a), torch.zeros(4)], 1)
    assert (torch.nn.functional.cosine_similarity(centre, toward_camera) > 0.98).all()
    m = x[:, 3]
    assert m.min() == -1 and m.max() == 1
    assert (x[:, :3][(m <= -1).unsqueeze(1).expand(-1, 3, -1, -1)] == 0).all()
    n = x[:, :3].norm(dim=1)
    torch.testing.assert_close(n[m > 0.999], torch.ones(int((m > 0.999).sum())), atol=1e-4,
                               rtol=0)


def test_rigs_and_objects():
    rng = np.random.default_rng(0)
    rigs = [rig(CFG, rng) for _ in range(200)]
    canonical = [r for r in rigs if r[0] == 0.0 and torch.equal(r[1], canonical_azimuths(4))]
    assert 60 < len(canonical) < 140                   # p_random_rig = 0.5
    for el, az in rigs:
        assert CFG.elevation_range[0] <= el <= CFG.elevation_range[1]
        torch.testing.assert_close(torch.diff(az), torch.full((3,), 90.0, dtype=az.dtype))
    x, cams, spec = render_object(CFG, np.random.default_rng(1))
    assert x.shape == (4, 4, 24, 24) and cams.shape == (4, 4)
    assert 0.05 < (x[:, 3] > 0).float().mean() < 0.8     # the object is seen, not cut off
    assert (x[:, 3, 0] < 0).all() and (x[:, 3, -1] < 0).all()   # empty border rows


class StubEncoder:
    name, dim = "stub", 5

    def __init__(self):
        self.calls = 0

    def __call__(self, prompts):
        self.calls += 1
        return torch.ones(len(prompts), self.dim)


def test_cache_round_trip_and_rebuild_on_other_settings(tmp_path):
    cache = tmp_path / "data.safetensors"
    enc = StubEncoder()
    a = load_or_build(CFG, enc, cache, progress=False)
    assert a["x"].shape == (3, 4, 4, 24, 24) and a["text"].shape == (3, 2, 5)
    assert a["cameras"].shape == (3, 4, 4) and a["shape"].shape == (3,)
    b = load_or_build(CFG, enc, cache, progress=False)
    assert enc.calls == 1 and all(torch.equal(a[k], b[k]) for k in a)
    other = dataclasses.replace(CFG, seed=1)
    c = load_or_build(other, enc, cache, progress=False)
    assert enc.calls == 2 and not torch.equal(a["x"], c["x"])
