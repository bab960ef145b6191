"""Triplane field: marching cubes against analytic SDFs, gradients, volume rendering."""

import math

import numpy as np
import pytest
import torch
import trimesh

from polydiff.geometry.render import orbit_cameras
from polydiff.geometry.triplane import (
    TriplaneField,
    differentiable_surface,
    eikonal_loss,
    extract_mesh,
    marching_cubes,
    sample_planes,
    volume_render,
)
from polydiff.runtime import UserError


def exact_sphere_field(radius: float = 0.3, channels: int = 4) -> TriplaneField:
    """A field whose SDF is exactly |p| - radius (the MLP's output layer zeroed)."""
    field = TriplaneField(channels=channels, sphere_radius=radius)
    with torch.no_grad():
        field.sdf_mlp[-1].weight.zero_()
        field.sdf_mlp[-1].bias.zero_()
    return field


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    return float(d.min(1).mean() + d.min(0).mean()) / 2


def box_sdf(p: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    q = p.abs() - half
    return q.clamp(min=0).norm(dim=-1) + q.amax(-1).clamp(max=0)


def test_sample_planes_reads_each_plane_at_its_projection():
    R = 8
    planes = torch.zeros(1, 3, 1, R, R)
    planes[0, 0, 0] = torch.arange(R * R, dtype=torch.float32).reshape(R, R)
    # cell (row i, col j) of plane xy is centred at x = (j + .5) / R - .5, y = (i + .5) / R - .5
    i, j = 2, 5
    p = torch.tensor([[[(j + 0.5) / R - 0.5, (i + 0.5) / R - 0.5, 0.37]]])
    f = sample_planes(planes, p)
    assert f.shape == (1, 3, 1, 1)
    assert float(f[0, 0, 0, 0]) == pytest.approx(i * R + j)
    assert float(f[0, 1:].abs().sum()) == 0


def test_marching_cubes_of_exact_sphere_field():
    field = exact_sphere_field(0.3)
    geo = torch.randn(1, 3, 4, 8, 8)
    mesh = extract_mesh(field, geo, torch.randn(1, 3, 4, 8, 8), resolution=48)
    v = mesh.verts.numpy()
    assert np.abs(np.linalg.norm(v, axis=1) - 0.3).max() < 2e-3
    tm = trimesh.Trimesh(v, mesh.faces.numpy(), process=False)
    assert tm.is_watertight and tm.is_winding_consistent
    assert tm.volume == pytest.approx(4 / 3 * math.pi * 0.3**3, rel=0.02)  # outward winding
    assert mesh.colors.shape == v.shape and 0 <= float(mesh.colors.min()) <= 1


def test_fitted_field_reproduces_a_box_surface():
    """Fit planes + MLP to a box SDF, then check marching cubes against the true box."""
    torch.manual_seed(0)
    half = torch.tensor([0.3, 0.2, 0.15])
    field = TriplaneField(channels=8, aggregate="concat", sphere_radius=0.3)
    geo = torch.nn.Parameter(0.1 * torch.randn(1, 3, 8, 24, 24))
    opt = torch.optim.Adam([geo, *field.parameters()], lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    for _ in range(250):
        p = torch.rand(1, 2048, 3, generator=gen) - 0.5
        loss = (field.sdf(geo, p) - box_sdf(p, half)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    mesh = extract_mesh(field, geo.detach(), None, resolution=48)
    tm = trimesh.Trimesh(mesh.verts.numpy(), mesh.faces.numpy(), process=False)
    assert tm.is_watertight
    truth = trimesh.creation.box(extents=(2 * half).numpy())
    ref = trimesh.sample.sample_surface(truth, 3000, seed=0)[0]
    got = trimesh.sample.sample_surface(tm, 3000, seed=1)[0]
    assert chamfer(np.asarray(got), np.asarray(ref)) < 0.015


def test_mesh_stays_in_unit_cube_and_closed_when_the_field_fills_it():
    field = exact_sphere_field(0.9)  # inside everywhere in the cube
    mesh = extract_mesh(field, torch.zeros(1, 3, 4, 4, 4), None, resolution=16)
    v = mesh.verts.numpy()
    assert np.abs(v).max() <= 0.5 + 1e-9
    assert trimesh.Trimesh(v, mesh.faces.numpy(), process=False).is_watertight


def test_empty_field_is_a_user_error():
    field = exact_sphere_field(-0.1)
    with pytest.raises(UserError, match="no inside"):
        extract_mesh(field, torch.zeros(1, 3, 4, 4, 4), None, resolution=16)
    with pytest.raises(UserError, match="resolution"):
        extract_mesh(field, torch.zeros(1, 3, 4, 4, 4), None, resolution=8)


def test_marching_cubes_volume_matches_spacing():
    R = 33
    ax = np.linspace(-0.5, 0.5, R)
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij")
    vol = np.sqrt((x - 0.1) ** 2 + y**2 + z**2) - 0.2
    v, f = marching_cubes(vol)
    assert np.abs(np.linalg.norm(v - [0.1, 0, 0], axis=1) - 0.2).max() < 5e-3


def test_differentiable_surface_moves_vertices_along_normals():
    """Raising the SDF by δ everywhere moves every vertex of a sphere inward by δ."""
    field = exact_sphere_field(0.3)
    geo = torch.zeros(1, 3, 4, 4, 4)
    mesh = extract_mesh(field, geo, None, resolution=32)
    verts = differentiable_surface(field, geo, mesh.verts)
    assert torch.allclose(verts, mesh.verts)
    radial = torch.nn.functional.normalize(mesh.verts, dim=-1)
    (verts * radial).sum().backward()
    grad = field.sdf_mlp[-1].bias.grad  # d sdf / d bias = 1 at every point
    assert float(grad) == pytest.approx(-len(mesh.verts), rel=1e-3)


def test_eikonal_is_zero_for_a_distance_field_and_gradients_reach_planes():
    field = exact_sphere_field(0.3)
    p = torch.rand(1, 500, 3, generator=torch.Generator().manual_seed(0)) - 0.5
    p = p[:, p[0].norm(dim=-1) > 0.05]
    with torch.no_grad():
        assert float(eikonal_loss(field, torch.zeros(1, 3, 4, 4, 4), p, h=1e-3)) < 1e-4
    field2 = TriplaneField(channels=4)
    geo = torch.randn(1, 3, 4, 8, 8, requires_grad=True)
    eikonal_loss(field2, geo, p).backward()
    assert geo.grad is not None and float(geo.grad.abs().sum()) > 0


def test_volume_render_of_a_sphere_matches_its_silhouette():
    r, dist, fov, size = 0.3, 2.0, 40.0, 32
    field = exact_sphere_field(r)
    cams = orbit_cameras(0.0, [0.0, 90.0], distance=dist, fov_deg=fov, size=size)
    geo = torch.zeros(1, 3, 4, 4, 4, requires_grad=True)
    out = volume_render(field, geo, torch.zeros(1, 3, 4, 4, 4), cams, samples=96, beta=0.005)
    assert out.mask.shape == (1, 2, size, size)
    # analytic silhouette: a ray passing at distance d from the sphere has optical depth
    # tau(d) = 0.5 sqrt(2 pi r / beta) exp(-d / beta) (Laplace density, thin-shell limit), so
    # mask = 0.5 at d = beta ln(0.5 sqrt(2 pi r / beta) / ln 2): a disc of that radius.
    beta = 0.005
    d = beta * math.log(0.5 * math.sqrt(2 * math.pi * r / beta) / math.log(2))
    f = 0.5 * size / math.tan(math.radians(fov) / 2)
    rad_px = f * math.tan(math.asin((r + d) / dist))
    covered = float((out.mask[0, 0] > 0.5).sum())
    assert covered == pytest.approx(math.pi * rad_px**2, rel=0.05)
    # the centre pixel's normal points back at the camera (view 0 looks along +y)
    c = size // 2
    n = (out.normals[0, 0, c, c] / out.normals[0, 0, c, c].norm()).detach()
    assert float(n[1]) < -0.97
    assert float(out.depth[0, 0, c, c].detach()) == pytest.approx(dist - r, abs=0.02)
    out.mask.sum().backward()
    assert float(field.sdf_mlp[-1].bias.grad.abs()) > 0
