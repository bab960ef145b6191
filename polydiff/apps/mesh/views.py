"""Multi-view files: ``views.npz`` as ``mesh render`` writes and ``mesh fuse`` reads.

    normals  (V, H, W, 3) float32  unit world-space normals (0 outside the mask)
    mask     (V, H, W)    bool     pixels that see the object
    K        (V, 3, 3)    float32  OpenCV intrinsics in pixels
    c2w      (V, 4, 4)    float32  camera-to-world transforms (OpenCV camera axes, world +z up)
    color    (V, H, W, 3) float32  optional, in [0, 1]

Read with ``allow_pickle=False``: nothing in a user's file is ever unpickled.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from polydiff.runtime import UserError, check_memory, require_file


class Views(NamedTuple):
    """V views of one object (see the module docstring for shapes)."""

    normals: np.ndarray
    mask: np.ndarray
    K: np.ndarray
    c2w: np.ndarray
    color: np.ndarray | None = None


def views_from_cameras(normals, mask, cameras, color=None) -> Views:
    """Views from rendered tensors and a ``Cameras`` batch (world-to-camera R, t)."""
    import torch

    R, t = cameras.R.double(), cameras.t.double()
    c2w = torch.eye(4, dtype=torch.float64).repeat(len(R), 1, 1)
    c2w[:, :3, :3] = R.transpose(1, 2)
    c2w[:, :3, 3] = -(R.transpose(1, 2) @ t[..., None])[..., 0]

    def arr(x, dtype):
        return None if x is None else x.detach().cpu().numpy().astype(dtype)

    return Views(arr(normals, np.float32), arr(mask, np.float32) > 0.5,
                 arr(cameras.K, np.float32), arr(c2w, np.float32), arr(color, np.float32))


def write_views(path: Path, views: Views) -> None:
    """Write ``views`` as an uncompressed npz to ``path`` (a temporary path of Outputs)."""
    arrays = {k: v for k, v in views._asdict().items() if v is not None}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def read_views(path: str | os.PathLike) -> Views:
    """Read and check a views file; any problem is a one-line UserError."""
    path = require_file(path, "views")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("normals", "mask", "K", "c2w") if k not in data.files]
            if missing:
                raise UserError(f"{path} lacks {', '.join(missing)} (needs normals, mask, K, "
                                "c2w)")
            header = _shapes(path)
            V, H, W = header.get("mask", (0, 0, 0))[:3] if len(header.get("mask", ())) == 3 \
                else (0, 0, 0)
            check_memory(V * H * W * 40.0, f"{path} ({V} views of {H}x{W})")
            arrays = {k: data[k] for k in data.files if k in Views._fields}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise UserError(f"cannot read views file {path}: {str(err).splitlines()[0]}") from None
    return check_views(Views(**{k: arrays.get(k) for k in Views._fields}), path)


def check_views(views: Views, where: str | os.PathLike = "views") -> Views:
    """The geometry package's checks (shapes, unit normals, masks, cameras), naming the file."""
    from polydiff.geometry.fusion import check_views as check

    try:
        normals, mask, K, c2w = check(views.normals, views.mask, views.K, views.c2w)
    except UserError as err:
        raise UserError(f"{where}: {err}") from None
    color = views.color
    if color is not None and (color.shape != views.normals.shape or not np.isfinite(color).all()):
        raise UserError(f"{where}: color must be finite and shaped like normals")
    return Views(normals.numpy(), mask.numpy(), K.numpy(), c2w.numpy(), color)


def _shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Array shapes from the npy headers inside an npz, without reading the data."""
    shapes = {}
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            with z.open(name) as f:
                major, _ = np.lib.format.read_magic(f)
                read = (np.lib.format.read_array_header_1_0 if major == 1 else
                        np.lib.format.read_array_header_2_0)
                shape, _, _ = read(f)
                shapes[name.removesuffix(".npy")] = tuple(int(s) for s in shape)
    return shapes
