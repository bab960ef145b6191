"""Camera rigs and mesh renders against analytic shapes."""

import math

import pytest
import torch
import trimesh

from polydiff.geometry.render import orbit_cameras, render_mesh, vertex_normals
from polydiff.runtime import UserError


def sphere(radius=0.4, centre=(0.0, 0.0, 0.0), subdivisions=4):
    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    m.apply_translation(centre)
    return torch.tensor(m.vertices, dtype=torch.float32), torch.tensor(m.faces)


def test_default_rig_is_four_views_around_the_vertical_axis():
    cams = orbit_cameras()
    assert cams.R.shape == (4, 3, 3) and (cams.width, cams.height) == (256, 256)
    centres = cams.centres
    assert torch.allclose(centres.norm(dim=-1), torch.full((4,), 2.8, dtype=torch.float64))
    assert torch.allclose(centres[:, 2], torch.zeros(4, dtype=torch.float64), atol=1e-12)
    # azimuth 0 from -y, 90 from +x; every camera looks at the origin with world up = image up
    assert torch.allclose(centres[0], torch.tensor([0.0, -2.8, 0.0], dtype=torch.float64))
    assert torch.allclose(centres[1], torch.tensor([2.8, 0.0, 0.0], dtype=torch.float64),
                          atol=1e-12)
    forward = cams.R[:, 2]
    assert torch.allclose(forward, -centres / 2.8, atol=1e-12)
    down = cams.R[:, 1]
    assert torch.allclose(down, torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64).expand(4, 3),
                          atol=1e-12)


def test_orbit_rejects_bad_rigs():
    with pytest.raises(UserError):
        orbit_cameras([0.0, 10.0], [0.0, 90.0, 180.0])
    with pytest.raises(UserError):
        orbit_cameras(90.0, 0.0)


def test_sphere_normals_depth_and_mask_match_the_analytic_sphere():
    centre = torch.tensor([0.05, -0.02, 0.1])
    verts, faces = sphere(0.4, centre.tolist())
    cams = orbit_cameras([0.0, 30.0], [20.0, 200.0], distance=2.5, size=(48, 64))
    res = render_mesh(verts, faces, cams, backend="torch")
    hit = res.depth > 0
    assert torch.equal(hit, res.normals.norm(dim=-1) > 0.5)
    # unprojected depth lies on the sphere; its normal is radial
    pts = cams.unproject(res.depth.double()).float()
    radial = torch.nn.functional.normalize(pts - centre, dim=-1)
    err_r = ((pts - centre).norm(dim=-1) - 0.4).abs()[hit]
    assert err_r.max() < 4e-3  # the icosphere's chord sag at 4 subdivisions
    cos = (radial * res.normals).sum(-1)[hit]
    assert cos.min() > 0.99
    # normals face the camera
    view = torch.nn.functional.normalize(pts - cams.centres[:, None, None].float(), dim=-1)
    assert ((view * res.normals).sum(-1)[hit] < 0).all()
    # coverage: analytic disk area for the centred sphere within 2 %
    dist = (cams.centres.float() - centre).norm(dim=-1)
    rho = float(cams.K[0, 0, 0]) * torch.tan(torch.asin(0.4 / dist))
    assert torch.allclose(res.mask.sum((1, 2)), math.pi * rho**2, rtol=0.03)
    assert res.color is None


def test_upper_half_of_the_world_is_the_upper_half_of_the_image():
    verts, faces = sphere(0.2, (0.0, 0.0, 0.3))
    res = render_mesh(verts, faces, orbit_cameras(size=32), backend="torch")
    rows = (res.depth > 0).nonzero()[:, 1]
    assert rows.max() < 16


def test_vertex_colours_and_gradients_reach_the_vertices():
    verts, faces = sphere(0.4, subdivisions=2)
    colors = torch.rand(len(verts), 3, generator=torch.Generator().manual_seed(0))
    v = verts.clone().requires_grad_()
    res = render_mesh(v, faces, orbit_cameras(size=32), colors=colors, backend="torch")
    assert res.color.shape == (4, 32, 32, 3)
    inside = res.mask == 1
    assert res.color[inside].min() >= 0 and res.color[inside].max() <= 1
    (res.mask.sum() + res.normals.sum() + res.color.sum()).backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


def test_flat_shading_gives_the_face_normal_and_vertex_normals_point_out():
    box = trimesh.creation.box(extents=(0.6, 0.6, 0.6))
    v, f = torch.tensor(box.vertices, dtype=torch.float32), torch.tensor(box.faces)
    cams = orbit_cameras(0.0, 0.0, size=32)
    flat = render_mesh(v, f, cams, shading="flat", backend="torch")
    hit = flat.depth[0] > 0
    assert torch.allclose(flat.normals[0][hit], torch.tensor([0.0, -1.0, 0.0]))
    vn = vertex_normals(v, f)
    assert torch.allclose(vn.norm(dim=-1), torch.ones(8))
    assert ((vn * v).sum(-1) > 0.5 * v.norm(dim=-1)).all()  # outward, within 60 degrees


def test_bad_meshes_are_user_errors():
    verts, faces = sphere(0.4, subdivisions=1)
    cams = orbit_cameras(size=8)
    with pytest.raises(UserError, match="face indices"):
        render_mesh(verts, faces + 1000, cams)
    bad = verts.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        render_mesh(bad, faces, cams)
    with pytest.raises(UserError, match="shading"):
        render_mesh(verts, faces, cams, shading="phong")
