"""Triangle meshes through trimesh: read and write GLB (default), OBJ and PLY, normalise, check.

In memory a mesh is a ``trimesh.Trimesh`` in polydiff's world frame (+z up, see ``render``),
vertex colours in ``mesh.visual.vertex_colors``. glTF is +y up, so GLB/GLTF files are
rotated on write (world (x, y, z) -> glTF (x, z, -y)) and back on read; OBJ and PLY keep the
world frame as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import trimesh
from torch import Tensor

from polydiff.runtime import UserError, atomic_output, require_file

FORMATS = ("glb", "obj", "ply")
# world (x, y, z) -> glTF (x, z, -y): a rotation of -90 degrees about x
WORLD_TO_GLTF = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])


def mesh_from_arrays(verts: np.ndarray | Tensor, faces: np.ndarray | Tensor,
                     colors: np.ndarray | Tensor | None = None) -> trimesh.Trimesh:
    """(N, 3) vertices, (F, 3) faces, optional (N, 3) colours in [0, 1] -> a Trimesh."""
    verts, faces = _numpy(verts).astype(np.float64), _numpy(faces).astype(np.int64)
    mesh = trimesh.Trimesh(verts, faces, process=False)
    if colors is not None:
        rgb = np.clip(np.round(_numpy(colors) * 255), 0, 255).astype(np.uint8)
        mesh.visual.vertex_colors = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], 1)
    return mesh


def mesh_tensors(mesh: trimesh.Trimesh, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor, Tensor | None]:
    """A Trimesh -> vertices (N, 3), faces (F, 3) int64 and colours (N, 3) in [0, 1] or None."""
    verts = torch.as_tensor(np.asarray(mesh.vertices), dtype=dtype, device=device)
    faces = torch.as_tensor(np.asarray(mesh.faces), dtype=torch.int64, device=device)
    colors = None
    if mesh.visual.kind == "vertex":
        rgb = np.asarray(mesh.visual.vertex_colors)[:, :3] / 255.0
        colors = torch.as_tensor(rgb, dtype=dtype, device=device)
    return verts, faces, colors


def load_mesh(path: str | os.PathLike) -> trimesh.Trimesh:
    """Read a GLB / GLTF / OBJ / PLY file as one triangle mesh in the world frame (+z up).

    A file that does not parse, or holds no triangles, is a UserError.
    """
    path = require_file(path, "mesh")
    kind = path.suffix.lower().lstrip(".")
    try:
        loaded = trimesh.load(str(path), force="mesh")
    except Exception as err:  # trimesh raises many types for broken files
        raise UserError(f"cannot read mesh {path}: {_one_line(err)}") from None
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise UserError(f"mesh {path} holds no triangles")
    if not np.isfinite(loaded.vertices).all():
        raise UserError(f"mesh {path} has NaN or infinite vertex coordinates")
    if kind in ("glb", "gltf"):
        loaded.apply_transform(np.linalg.inv(WORLD_TO_GLTF))
    return loaded


def mesh_bytes(mesh: trimesh.Trimesh, file_type: str = "glb") -> bytes:
    """The file contents of ``mesh`` as GLB (rotated to glTF's +y up), OBJ or PLY."""
    if file_type not in FORMATS:
        raise UserError(f"unknown mesh format {file_type!r} (use {', '.join(FORMATS)})")
    if file_type == "glb":
        mesh = mesh.copy()
        mesh.apply_transform(WORLD_TO_GLTF)
    data = mesh.export(file_type=file_type)
    return data.encode() if isinstance(data, str) else data


def save_mesh(mesh: trimesh.Trimesh, path: str | os.PathLike,
              file_type: str | None = None) -> Path:
    """Write ``mesh`` whole or not at all; the format comes from ``file_type`` or the suffix."""
    path = Path(path)
    kind = file_type or path.suffix.lower().lstrip(".")
    data = mesh_bytes(mesh, kind)
    return write_file(path, data)


def write_file(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (the one place this module touches the disk)."""
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)


def normalise_to_unit_cube(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """A copy centred on its bounding box and scaled so the longest side spans [-0.5, 0.5]."""
    lo, hi = mesh.bounds
    extent = float((hi - lo).max())
    if not extent > 0:
        raise UserError("the mesh has zero extent and cannot be normalised")
    out = mesh.copy()
    out.apply_translation(-(lo + hi) / 2)
    out.apply_scale(1.0 / extent)
    return out


def normalise_verts(verts: Tensor) -> Tensor:
    """(N, 3) vertices centred on their bounding box, longest side scaled to 1 ([-0.5, 0.5]^3)."""
    lo, hi = verts.amin(0), verts.amax(0)
    extent = float((hi - lo).max())
    if not extent > 0:
        raise UserError("the mesh has zero extent and cannot be normalised")
    return (verts - (lo + hi) / 2) / extent


def is_watertight(mesh: trimesh.Trimesh) -> bool:
    """Closed and consistently wound: every edge shared by exactly two faces."""
    return bool(mesh.is_watertight and mesh.is_winding_consistent)


def _numpy(x: np.ndarray | Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
