"""benchmarks/mesh_anchor_chain: the target grid's surface, where and which way it faces."""

from __future__ import annotations

import torch
import trimesh

from benchmarks.mesh_anchor_chain import grid_mesh
from polydiff.geometry.triplane import grid_points


def test_grid_mesh_reproduces_a_sphere_facing_outwards() -> None:
    """An off-centre sphere's SDF grid gives its surface (radius, centre) wound outwards
    (positive volume), as the classifier's normal renders need."""
    bound, radius, centre = 0.6, 0.3, torch.tensor([0.1, -0.05, 0.0])
    sdf = (grid_points(40, bound) - centre).norm(dim=-1) - radius      # (G, G, G) [x, y, z]
    verts, faces = grid_mesh(sdf, bound)
    dist = (verts - centre).norm(dim=-1)
    assert (dist - radius).abs().max() < 0.01
    mesh = trimesh.Trimesh(verts.numpy(), faces.numpy(), process=False)
    assert mesh.is_watertight
    assert abs(mesh.volume - 4 / 3 * torch.pi * radius ** 3) < 0.03 * mesh.volume
    assert torch.allclose(torch.as_tensor(mesh.center_mass, dtype=torch.float32), centre,
                          atol=0.01)
