"""Multi-view normal maps -> a watertight mesh (Direct2.5's fusion, on a CPU budget).

1. Space carving: a voxel of the carve box [-bound, bound]^3 stays when every view's
   (bilinearly sampled) mask covers it; occupancy = min over views.
2. Marching cubes (scikit-image) of the padded occupancy at 0.5: a closed surface.
3. Decimation: carving and marching cubes are redone on a coarser grid until the mesh has
   at most ``target_faces`` faces (no quadric decimation library is a dependency).
4. Remeshing optimisation of the vertex positions through the differentiable rasterizer:
   L1 normal loss + L1 silhouette loss (antialiased coverage) + 0.1 normal consistency +
   a small Laplacian term, with Adam; every ``relax_every`` steps a tangential relaxation
   evens out the triangles (vertices slide along the surface towards their neighbours'
   centroid). The topology is that of marching cubes, so the result stays watertight.

Inputs follow the ``views.npz`` layout: normals (V, H, W, 3) unit world-space, mask
(V, H, W), K (V, 3, 3) and c2w (V, 4, 4) camera-to-world, all OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import trimesh
from skimage.measure import marching_cubes
from torch import Tensor
from tqdm.auto import tqdm

from polydiff.geometry.cameras import Cameras
from polydiff.geometry.raster import Rasterizer, get_rasterizer
from polydiff.geometry.render import face_normals, render_mesh, vertex_normals
from polydiff.runtime import UserError

MAX_GRID = 256


def cameras_from_c2w(K: Tensor, c2w: Tensor, width: int, height: int) -> Cameras:
    """(V, 3, 3) K and (V, 4, 4) OpenCV camera-to-world -> Cameras (float64)."""
    K, c2w = K.double(), c2w.double()
    R = c2w[:, :3, :3].transpose(-1, -2)
    t = -(R @ c2w[:, :3, 3:])[..., 0]
    return Cameras(K, R, t, width, height)


def check_views(normals, mask, K, c2w, bound: float = 0.55) -> tuple[Tensor, ...]:
    """Validate a views set; return float32 normals, bool mask, float64 K and c2w.

    Each problem is a one-line UserError: inconsistent shapes, fewer than two views,
    NaN or non-unit normals inside the mask, an empty mask, a bad camera, a camera that
    does not see the carve box.
    """
    try:
        normals = torch.as_tensor(np.asarray(normals), dtype=torch.float32)
        mask = torch.as_tensor(np.asarray(mask))
        K = torch.as_tensor(np.asarray(K), dtype=torch.float64)
        c2w = torch.as_tensor(np.asarray(c2w), dtype=torch.float64)
    except (TypeError, ValueError) as err:
        raise UserError(f"views are not numeric arrays: {err}") from None
    if normals.dim() != 4 or normals.shape[-1] != 3:
        raise UserError(f"normals must be (V, H, W, 3), got {tuple(normals.shape)}")
    V, H, W = normals.shape[:3]
    for name, arr, shape in (("mask", mask, (V, H, W)), ("K", K, (V, 3, 3)),
                             ("c2w", c2w, (V, 4, 4))):
        if tuple(arr.shape) != shape:
            raise UserError(f"{name} must be {shape} to match normals {tuple(normals.shape)}, "
                            f"got {tuple(arr.shape)}")
    if V < 2:
        raise UserError(f"fusion needs at least 2 views, got {V}")
    mask = mask.bool() if mask.dtype == torch.bool else mask.float() > 0.5
    empty = [i for i in range(V) if not mask[i].any()]
    if empty:
        raise UserError(f"the mask of view {empty[0]} is empty")
    if not (torch.isfinite(K).all() and torch.isfinite(c2w).all()):
        raise UserError("K or c2w contains NaN or infinite values")
    if not torch.isfinite(normals[mask]).all():
        raise UserError("normals contain NaN or infinite values inside the mask")
    length = normals[mask].norm(dim=-1)
    if (length - 1).abs().max() > 1e-2:
        raise UserError(f"normals must be unit length inside the mask (found length "
                        f"{float(length[(length - 1).abs().argmax()]):.3g})")
    R = c2w[:, :3, :3]
    eye = torch.eye(3, dtype=torch.float64)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    if ((R.transpose(-1, -2) @ R - eye).abs().amax() > 1e-4 or (torch.det(R) < 0).any()
            or (c2w[:, 3] - bottom).abs().amax() > 1e-6):
        raise UserError("c2w must be rigid camera-to-world transforms (rotation + translation)")
    if (K[:, 0, 0] <= 0).any() or (K[:, 1, 1] <= 0).any():
        raise UserError("K must have positive focal lengths")
    _check_box_visible(cameras_from_c2w(K, c2w, W, H), bound)
    return normals, mask, K, c2w


def _check_box_visible(cams: Cameras, bound: float) -> None:
    """Every camera must have the carve box's centre in front of it and inside its image."""
    centre = torch.zeros(len(cams.R), 1, 3, dtype=torch.float64)
    uv, z = cams.project(centre)
    inside = (z[:, 0] > bound) & (uv[:, 0, 0] >= 0) & (uv[:, 0, 0] <= cams.width) \
        & (uv[:, 0, 1] >= 0) & (uv[:, 0, 1] <= cams.height)
    if not inside.all():
        i = int((~inside).nonzero()[0])
        raise UserError(f"camera {i} does not see the object (the carve box "
                        f"[-{bound}, {bound}]^3 is not in front of it and in its image)")


def carve(mask: Tensor, cams: Cameras, grid: int, bound: float) -> np.ndarray:
    """(V, H, W) masks -> (grid, grid, grid) occupancy in [0, 1] (min over views) of the
    voxel centres of [-bound, bound]^3, indexed [x, y, z]."""
    if not 2 <= grid <= MAX_GRID:
        raise UserError(f"grid must lie in [2, {MAX_GRID}], got {grid}")
    axis = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid * 2 * bound - bound
    pts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(1, -1, 3)
    occ = torch.ones(pts.shape[1], dtype=torch.float32)
    m = mask.float()[:, None]                                 # (V, 1, H, W)
    for i in range(len(cams.R)):
        cam = Cameras(cams.K[i:i + 1], cams.R[i:i + 1], cams.t[i:i + 1], cams.width, cams.height)
        uv, z = cam.project(pts)
        xy = torch.stack([2 * uv[0, :, 0] / cams.width - 1, 2 * uv[0, :, 1] / cams.height - 1], -1)
        seen = torch.nn.functional.grid_sample(m[i:i + 1], xy.float()[None, :, None],
                                               align_corners=False)[0, 0, :, 0]
        occ = torch.minimum(occ, torch.where(z[0] > 0, seen, 0.0))
    return occ.reshape(grid, grid, grid).numpy()


def surface_from_occupancy(occ: np.ndarray, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes at 0.5 of the zero-padded (G, G, G) occupancy of [-bound, bound]^3:
    outward-wound (N, 3) vertices and (F, 3) faces, carving debris dropped."""
    if occ.max() <= 0.5:
        raise UserError("the masks carve away the whole box: the views disagree about "
                        "where the object is")
    spacing = 2 * bound / occ.shape[0]
    verts, faces, _, _ = marching_cubes(np.pad(occ, 1), 0.5, spacing=(spacing,) * 3)
    verts = verts - bound - spacing / 2                       # padded voxel centres -> world
    mesh = _large_components(trimesh.Trimesh(verts, faces, process=True))
    if mesh.volume < 0:
        mesh.invert()
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def carved_surface(mask: Tensor, cams: Cameras, grid: int, bound: float,
                   target_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Carve and extract the surface; decimate by carving again on coarser grids (faces
    scale as grid^2) until at most ``target_faces`` faces remain."""
    while True:
        verts, faces = surface_from_occupancy(carve(mask, cams, grid, bound), bound)
        if len(faces) <= target_faces or grid <= 8:
            return verts, faces
        grid = max(8, min(grid - 1, int(grid * (target_faces / len(faces)) ** 0.5)))


def _large_components(mesh: trimesh.Trimesh, min_fraction: float = 0.05) -> trimesh.Trimesh:
    """Drop carving debris: components with under ``min_fraction`` of the faces."""
    parts = mesh.split(only_watertight=False)
    if len(parts) <= 1:
        return mesh
    big = [p for p in parts if len(p.faces) >= min_fraction * len(mesh.faces)]
    return trimesh.util.concatenate(big)


def carve_only(mask, K, c2w, *, grid: int = 64, bound: float = 0.55,
               target_faces: int = 4000) -> tuple[Tensor, Tensor]:
    """The baseline: carving, marching cubes and decimation, no optimisation.

    mask (V, H, W), K (V, 3, 3), c2w (V, 4, 4) -> verts (N, 3) float32, faces (F, 3) int64.
    """
    mask = torch.as_tensor(np.asarray(mask))
    if mask.dim() != 3:
        raise UserError(f"mask must be (V, H, W), got {tuple(mask.shape)}")
    dummy = torch.zeros(*mask.shape, 3)
    dummy[..., 2] = 1
    _, mask, K, c2w = check_views(dummy, mask, K, c2w, bound)
    cams = cameras_from_c2w(K, c2w, mask.shape[2], mask.shape[1])
    v, f = carved_surface(mask, cams, grid, bound, target_faces)
    return torch.from_numpy(v).float(), torch.from_numpy(f)


@torch.enable_grad()   # an optimisation: callers under no_grad (anchor sets) get it too
def fuse_views(normals, mask, K, c2w, *, grid: int = 64, iterations: int = 200,
               bound: float = 0.55, target_faces: int = 4000, lr: float | None = None,
               weights: Sequence[float] = (1.0, 1.0, 0.1, 0.5), views_per_step: int | None = None,
               relax_every: int = 25, backend: str | Rasterizer = "auto",
               device: torch.device | str = "cpu", generator: torch.Generator | None = None,
               progress: bool = False) -> tuple[Tensor, Tensor]:
    """Fuse V >= 2 normal maps into a watertight mesh (see the module docstring).

    normals (V, H, W, 3) unit world-space, mask (V, H, W), K (V, 3, 3), c2w (V, 4, 4)
    (numpy or torch). ``weights``: normal L1, silhouette L1, normal consistency, Laplacian.
    ``views_per_step`` renders a random subset of views per step (drawn with ``generator``,
    seed 0 when None; all views when ``views_per_step`` is None). ``lr`` defaults to a third
    of a voxel per step.
    Returns verts (N, 3) float32 and faces (F, 3) int64 on the CPU.
    """
    normals, mask, K, c2w = check_views(normals, mask, K, c2w, bound)
    V, H, W = mask.shape
    cams = cameras_from_c2w(K, c2w, W, H)
    v0, f0 = carved_surface(mask, cams, grid, bound, target_faces)
    device = torch.device(device)
    r = get_rasterizer(backend, device) if isinstance(backend, str) else backend
    verts = torch.tensor(v0, dtype=torch.float32, device=device, requires_grad=True)
    faces = torch.tensor(f0, dtype=torch.int64, device=device)
    edges = _unique_edges(faces)
    pairs = _adjacent_faces(f0)
    target_n = normals.to(device)
    target_m = mask.float().to(device)
    cams_d = Cameras(cams.K.to(device), cams.R.to(device), cams.t.to(device), W, H)
    voxel = 2 * bound / grid  # the optimisation's length scale: the requested grid's voxel
    opt = torch.optim.Adam([verts], lr=lr or voxel / 3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(iterations, 1), eta_min=0.0)
    w_n, w_s, w_c, w_l = weights
    k = V if views_per_step is None else max(1, min(V, int(views_per_step)))
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    for it in tqdm(range(iterations), desc="fusing views", disable=not progress):
        idx = (torch.arange(V) if k == V
               else torch.randperm(V, generator=generator)[:k]).to(device)
        sub = Cameras(cams_d.K[idx], cams_d.R[idx], cams_d.t[idx], W, H)
        res = render_mesh(verts, faces, sub, backend=r)
        both = (res.depth > 0) & (target_m[idx] > 0.5)
        loss_n = (res.normals - target_n[idx]).abs().sum(-1)[both].sum() / both.sum().clamp(min=1)
        loss_s = (res.mask - target_m[idx]).abs().mean()
        fn = torch.nn.functional.normalize(face_normals(verts, faces), dim=-1, eps=1e-12)
        loss_c = (1 - (fn[pairs[:, 0]] * fn[pairs[:, 1]]).sum(-1)).mean()
        loss_l = _laplacian(verts, edges).pow(2).sum(-1).mean() / voxel**2
        loss = w_n * loss_n + w_s * loss_s + w_c * loss_c + w_l * loss_l
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if relax_every and (it + 1) % relax_every == 0 and it + 1 < iterations:
            with torch.no_grad():
                verts += 0.5 * _tangential(verts, faces, _laplacian(verts, edges))
    out = trimesh.Trimesh(verts.detach().cpu().double().numpy(), f0, process=False)
    if not (np.isfinite(out.vertices).all() and out.is_watertight):
        raise RuntimeError("fusion produced a non-watertight or non-finite mesh")  # a bug
    return verts.detach().cpu().float(), torch.from_numpy(f0)


def _unique_edges(faces: Tensor) -> Tensor:
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return torch.unique(torch.sort(e, dim=1).values, dim=0)


def _adjacent_faces(faces: np.ndarray) -> Tensor:
    """(E, 2) pairs of faces sharing an edge."""
    mesh = trimesh.Trimesh(np.zeros((int(faces.max()) + 1, 3)), faces, process=False)
    return torch.tensor(np.asarray(mesh.face_adjacency), dtype=torch.int64)


def _laplacian(verts: Tensor, edges: Tensor) -> Tensor:
    """(N, 3) uniform Laplacian: neighbours' centroid minus the vertex."""
    n = len(verts)
    i, j = edges[:, 0], edges[:, 1]
    acc = torch.zeros_like(verts).index_add(0, i, verts[j]).index_add(0, j, verts[i])
    deg = torch.zeros(n, dtype=verts.dtype, device=verts.device).index_add(
        0, i, torch.ones_like(i, dtype=verts.dtype)).index_add(
        0, j, torch.ones_like(j, dtype=verts.dtype))
    return acc / deg.clamp(min=1)[:, None] - verts


def _tangential(verts: Tensor, faces: Tensor, delta: Tensor) -> Tensor:
    """``delta`` (N, 3) with its component along the vertex normals removed."""
    n = vertex_normals(verts, faces)
    return delta - (delta * n).sum(-1, keepdim=True) * n
