"""Training data of the multi-view normal model: procedural shapes rendered with the rig.

Each object is a random shape (``polydiff.geometry.shapes``) with a random caption spec
(``captions``); it is rendered from V cameras on an orbit, either the canonical rig
(elevation 0, azimuths 0/90/180/270 for V = 4) or, with probability ``p_random_rig``, a
random common elevation and a random azimuth offset. The tensors are cached in one
safetensors file keyed by the data settings and the text encoder.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from polydiff.apps.mesh.captions import caption, random_spec
from polydiff.apps.mesh.multiview import camera_features
from polydiff.geometry.meshes import mesh_tensors
from polydiff.geometry.render import orbit_cameras, render_mesh
from polydiff.geometry.shapes import make_shape


@dataclass
class MeshDataConfig:
    """How the procedural training set is made (angles in degrees)."""

    objects: int = 2000
    size: int = 32                  # image side in pixels
    views: int = 4
    distance: float = 2.2           # camera distance from the origin (object in [-0.5, 0.5]^3)
    fov_deg: float = 40.0           # horizontal field of view
    resolution: int = 48            # marching-cubes cells across a shape's largest side
    p_random_rig: float = 0.5       # share of objects seen from a random rig
    elevation_range: tuple[float, float] = (-10.0, 30.0)
    captions_per_object: int = 4
    seed: int = 0


def canonical_azimuths(views: int, offset: float = 0.0) -> Tensor:
    """(V,) azimuths evenly spaced from ``offset`` (0/90/180/270 for 4 views)."""
    return offset + 360.0 * torch.arange(views, dtype=torch.float64) / views


def rig(cfg: MeshDataConfig, rng: np.random.Generator) -> tuple[float, Tensor]:
    """One object's (elevation, (V,) azimuths): canonical or random."""
    if rng.random() < cfg.p_random_rig:
        return float(rng.uniform(*cfg.elevation_range)), canonical_azimuths(
            cfg.views, float(rng.uniform(0, 360)))
    return 0.0, canonical_azimuths(cfg.views)


def views_tensor(normals: Tensor, mask: Tensor) -> Tensor:
    """Render outputs normals (V, H, W, 3), coverage (V, H, W) -> model views (V, 4, H, W)."""
    return torch.cat([normals * (mask[..., None] > 0), 2 * mask[..., None] - 1], -1) \
        .permute(0, 3, 1, 2).float()


def render_object(cfg: MeshDataConfig, rng: np.random.Generator):
    """One object: (views (V, 4, H, W), camera features (V, 4), its caption spec)."""
    spec = random_spec(rng)
    aspect = float(rng.uniform(*spec.aspect_range()))
    mesh = make_shape(spec.shape, rng, spec.rgb, aspect=aspect, resolution=cfg.resolution)
    verts, faces, _ = mesh_tensors(mesh)
    elevation, azimuths = rig(cfg, rng)
    cams = orbit_cameras(elevation, azimuths, cfg.distance, cfg.fov_deg, cfg.size)
    out = render_mesh(verts, faces, cams)
    return views_tensor(out.normals, out.mask), camera_features(
        torch.full_like(azimuths, elevation), azimuths), spec


def build(cfg: MeshDataConfig, encoder, progress: bool = True) -> dict[str, Tensor]:
    """The training tensors.

    Returns {"x": (N, V, 4, H, W), "cameras": (N, V, 4), "text": (N, K, D) embeddings of K
    captions per object, "shape": (N,) index into SHAPE_KINDS}.
    """
    from polydiff.geometry.shapes import SHAPE_KINDS
    from polydiff.runtime import check_memory

    check_memory(2 * cfg.objects * cfg.views * 4 * cfg.size ** 2 * 4, "the mesh training set")
    rng = np.random.default_rng(cfg.seed)
    xs, cams, captions, kinds = [], [], [], []
    for _ in tqdm(range(cfg.objects), desc="rendering shapes", disable=not progress):
        x, c, spec = render_object(cfg, rng)
        xs.append(x)
        cams.append(c)
        captions.append([caption(spec, rng) for _ in range(cfg.captions_per_object)])
        kinds.append(SHAPE_KINDS.index(spec.shape))
    flat = [c for group in captions for c in group]
    text = encoder(flat).reshape(cfg.objects, cfg.captions_per_object, -1)
    return {"x": torch.stack(xs), "cameras": torch.stack(cams), "text": text,
            "shape": torch.tensor(kinds)}


def load_or_build(cfg: MeshDataConfig, encoder, cache: str | Path | None,
                  progress: bool = True) -> dict[str, Tensor]:
    """:func:`build`, read from ``cache`` when it was made with the same settings and
    encoder (else built again and written)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    key = json.dumps({"data": dataclasses.asdict(cfg), "encoder": encoder.name,
                      "dim": encoder.dim}, sort_keys=True)
    if cache is not None and Path(cache).is_file():
        with safe_open(str(cache), framework="pt") as handle:
            same = (handle.metadata() or {}).get("key") == key
        if same:
            return load_file(cache)
    data = build(cfg, encoder, progress)
    if cache is not None:
        from polydiff.runtime import atomic_output

        with atomic_output(cache) as tmp:
            save_file({k: v.contiguous() for k, v in data.items()}, tmp, metadata={"key": key})
    return data
