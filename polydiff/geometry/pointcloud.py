"""Coloured point clouds from depth and intrinsics, written as PLY with trimesh."""

from __future__ import annotations

import os

import numpy as np
import torch
import trimesh

from polydiff.geometry.cameras import Intrinsics, unproject_depth


def depth_to_points(depth: np.ndarray, intrinsics: Intrinsics, image: np.ndarray,
                    mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) z-depth, (H, W, 3) RGB in [0, 1] -> camera-frame points (N, 3), colours (N, 3) uint8.

    Pixels with non-finite or non-positive depth, or outside ``mask``, are left out.
    """
    keep = np.isfinite(depth) & (depth > 0)
    if mask is not None:
        keep &= mask
    pts = unproject_depth(torch.from_numpy(np.asarray(depth, np.float64)), intrinsics.matrix())
    rgb = np.clip(np.round(np.asarray(image, np.float64) * 255), 0, 255).astype(np.uint8)
    return pts.numpy()[keep].astype(np.float32), rgb[keep]


def write_ply(path: str | os.PathLike, points: np.ndarray, colours: np.ndarray) -> None:
    """Write (N, 3) points with (N, 3) uint8 colours as a binary PLY (OpenCV camera frame)."""
    alpha = np.full((len(points), 1), 255, np.uint8)
    cloud = trimesh.PointCloud(points, colors=np.concatenate([colours, alpha], 1))
    cloud.export(str(path), file_type="ply")
