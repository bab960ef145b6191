"""Surface metrics for reconstructed meshes (Chamfer, normal consistency, F-score) and the
analytic reference shapes the tests and the fusion benchmark reconstruct.

All metrics work on point samples of the two surfaces, in world units (unit-cube meshes):
- chamfer: 0.5 * (mean_p min_q |p - q| + mean_q min_p |q - p|)  (lower is better)
- normal consistency: 0.5 * (mean |n_p . n_q(p)| + mean |n_q . n_p(q)|) at nearest neighbours
  (1 is perfect; absolute, so it ignores orientation, as in Occupancy Networks)
- F-score at tau: harmonic mean of precision (pred points within tau of the truth) and
  recall (true points within tau of the prediction).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree
from torch import Tensor


class SurfaceSample(NamedTuple):
    """points (n, 3) and unit normals (n, 3), float64 numpy."""

    points: np.ndarray
    normals: np.ndarray


class MeshMetrics(NamedTuple):
    chamfer: float
    normal_consistency: float
    f_score: float
    precision: float
    recall: float


def sample_surface(verts: np.ndarray | Tensor, faces: np.ndarray | Tensor, n: int,
                   generator: torch.Generator) -> SurfaceSample:
    """``n`` points uniform in area on a triangle mesh, with their faces' unit normals."""
    v = torch.as_tensor(np.asarray(verts, np.float64) if not isinstance(verts, Tensor)
                        else verts.detach().cpu().double())
    f = torch.as_tensor(np.asarray(faces) if not isinstance(faces, Tensor)
                        else faces.cpu()).long()
    tri = v[f]                                                # (F, 3, 3)
    cross = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = cross.norm(dim=-1)
    idx = torch.multinomial(area.float(), n, replacement=True, generator=generator)
    r1, r2 = torch.rand(2, n, generator=generator, dtype=torch.float64)
    s = r1.sqrt()
    w = torch.stack([1 - s, s * (1 - r2), s * r2], -1)        # uniform barycentrics
    pts = (w[..., None] * tri[idx]).sum(1)
    nrm = cross[idx] / area[idx, None].clamp(min=1e-30)
    return SurfaceSample(pts.numpy(), nrm.numpy())


def chamfer_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric mean nearest-neighbour distance between point sets (n, 3) and (m, 3)."""
    return 0.5 * float(cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean())


def normal_consistency(a: SurfaceSample, b: SurfaceSample) -> float:
    """Mean |cos| between each point's normal and its nearest neighbour's, both ways."""
    ia = cKDTree(b.points).query(a.points)[1]
    ib = cKDTree(a.points).query(b.points)[1]
    ab = np.abs((a.normals * b.normals[ia]).sum(-1)).mean()
    ba = np.abs((b.normals * a.normals[ib]).sum(-1)).mean()
    return 0.5 * float(ab + ba)


def f_score(pred: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(F-score, precision, recall) at distance ``threshold``."""
    precision = float((cKDTree(truth).query(pred)[0] < threshold).mean())
    recall = float((cKDTree(pred).query(truth)[0] < threshold).mean())
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return f, precision, recall


def compare_to_truth(verts: np.ndarray | Tensor, faces: np.ndarray | Tensor,
                     truth: SurfaceSample, *, threshold: float = 0.02,
                     generator: torch.Generator) -> MeshMetrics:
    """All metrics of a mesh against a sample of the true surface (as many points)."""
    pred = sample_surface(verts, faces, len(truth.points), generator)
    f, p, r = f_score(pred.points, truth.points, threshold)
    return MeshMetrics(chamfer_distance(pred.points, truth.points),
                       normal_consistency(pred, truth), f, p, r)


# ----------------------------------------------------------------------------------------
# Analytic reference shapes (inside the unit cube, world +z up)


class ReferenceShape(NamedTuple):
    """A shape to render (verts, faces: closed parts, possibly overlapping) and a sampler
    of its true outer surface (overlaps removed)."""

    name: str
    verts: np.ndarray
    faces: np.ndarray
    sample: Callable[[int, torch.Generator], SurfaceSample]


def _mesh_shape(name: str, mesh: trimesh.Trimesh) -> ReferenceShape:
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    return ReferenceShape(name, v, f, lambda n, g: sample_surface(v, f, n, g))


def reference_shapes() -> dict[str, ReferenceShape]:
    """sphere, ellipsoid, torus and a union of two spheres, finely tessellated (chord
    error < 1e-3, far below a 64-voxel grid's 0.017)."""
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.4)
    ellipsoid = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    ellipsoid.apply_scale((0.45, 0.3, 0.22))
    torus = trimesh.creation.torus(major_radius=0.3, minor_radius=0.12, major_sections=128,
                                   minor_sections=48)
    torus.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 3, (1, 0, 0)))
    shapes = {s.name: s for s in (_mesh_shape("sphere", sphere),
                                  _mesh_shape("ellipsoid", ellipsoid),
                                  _mesh_shape("torus", torus))}
    shapes["two_spheres"] = _two_spheres()
    return shapes


def _two_spheres() -> ReferenceShape:
    centres, radii = np.array([[-0.15, 0.0, -0.1], [0.2, 0.05, 0.15]]), np.array([0.3, 0.22])
    parts = []
    for c, r in zip(centres, radii):
        m = trimesh.creation.icosphere(subdivisions=5, radius=r)
        m.apply_translation(c)
        parts.append(m)
    union = trimesh.util.concatenate(parts)

    def sample(n: int, generator: torch.Generator) -> SurfaceSample:
        s = sample_surface(union.vertices, union.faces, 3 * n, generator)
        dist = np.linalg.norm(s.points[:, None] - centres[None], axis=-1)   # (3n, 2)
        outer = (dist > radii * (1 - 1e-3)).all(-1)   # not inside the other sphere
        return SurfaceSample(s.points[outer][:n], s.normals[outer][:n])

    return ReferenceShape("two_spheres", np.asarray(union.vertices), np.asarray(union.faces),
                          sample)
