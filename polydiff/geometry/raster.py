"""One rasterization interface (nvdiffrast's rasterize / interpolate / antialias), two backends.

Backends take the same calls and return the same tensors:

- ``rasterize(pos (B, N, 4) clip space, tri (F, 3) int32, (H, W))`` ->
  ``(rast (B, H, W, 4) = [u, v, z/w, triangle id + 1 (0 = empty)], rast_db or None)``
- ``interpolate(attr (N, C) or (B, N, C), rast, tri)`` -> (B, H, W, C)
- ``antialias(color (B, H, W, C), rast, pos, tri)`` -> (B, H, W, C), silhouette-edge
  antialiasing with gradients to the silhouette vertices' positions.

Image rows: row r samples NDC y = (2r + 1) / H - 1 in both backends (nvdiffrast's rule).
``opencv_to_clip`` maps OpenCV pixel v linearly onto that NDC y (v = 0 -> y = -1), so with
its matrices every returned image has **row 0 at the top**, column 0 at the left, exactly
the OpenCV image; no flip is needed anywhere. (The NDC y axis then points down, which
mirrors triangle winding; neither backend culls, so nothing depends on winding.)
"""

from __future__ import annotations

import warnings
from typing import Protocol

import torch
from torch import Tensor

from polydiff.geometry import raster_torch
from polydiff.runtime import UserError


class Rasterizer(Protocol):
    """What a backend provides (see the module docstring for shapes)."""

    name: str
    device: torch.device

    def rasterize(self, pos: Tensor, tri: Tensor,
                  resolution: tuple[int, int]) -> tuple[Tensor, Tensor | None]: ...

    def interpolate(self, attr: Tensor, rast: Tensor, tri: Tensor) -> Tensor: ...

    def antialias(self, color: Tensor, rast: Tensor, pos: Tensor, tri: Tensor) -> Tensor: ...


class TorchRasterizer:
    """The pure-PyTorch backend (any device, float32 or float64)."""

    name = "torch"

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    def rasterize(self, pos: Tensor, tri: Tensor,
                  resolution: tuple[int, int]) -> tuple[Tensor, Tensor | None]:
        return raster_torch.rasterize(pos, tri, resolution)

    def interpolate(self, attr: Tensor, rast: Tensor, tri: Tensor) -> Tensor:
        return raster_torch.interpolate(attr, rast, tri)

    def antialias(self, color: Tensor, rast: Tensor, pos: Tensor, tri: Tensor) -> Tensor:
        return raster_torch.antialias(color, rast, pos, tri)


def get_rasterizer(kind: str = "auto", device: torch.device | str = "cpu") -> Rasterizer:
    """``auto`` (nvdiffrast on CUDA when it loads, else torch), ``torch`` or ``nvdiffrast``.

    Asking for ``nvdiffrast`` where it cannot run is a UserError naming the reason; ``auto``
    on a CUDA device falls back to torch with a one-line warning giving the reason.
    """
    device = torch.device(device)
    if kind == "torch":
        return TorchRasterizer(device)
    if kind not in ("auto", "nvdiffrast"):
        raise UserError(f"unknown rasterizer backend {kind!r} (use auto, torch or nvdiffrast)")
    if kind == "auto" and device.type != "cuda":
        return TorchRasterizer(device)
    from polydiff.geometry import raster_nvdiffrast

    try:
        return raster_nvdiffrast.NvdiffrastRasterizer(device)
    except raster_nvdiffrast.Unavailable as err:
        if kind == "nvdiffrast":
            raise UserError(f"the nvdiffrast backend is unavailable: {err}") from None
        warnings.warn(f"nvdiffrast unavailable ({err}); using the PyTorch rasterizer",
                      stacklevel=2)
        return TorchRasterizer(device)


def opencv_to_clip(K: Tensor, R: Tensor, t: Tensor, width: int, height: int,
                   near: float | Tensor, far: float | Tensor) -> Tensor:
    """(B, 3, 3) K and world-to-camera R (B, 3, 3), t (B, 3) -> (B, 4, 4) world -> clip matrix.

    Clip space: x_c = (2 fx / W) x + (2 cx / W - 1) z (plus skew), y_c = (2 fy / H) y +
    (2 cy / H - 1) z, w_c = z (camera z-depth), z_c / w_c = -1 at ``near`` and +1 at ``far``.
    So NDC x = 2 u / W - 1 and NDC y = 2 v / H - 1 for OpenCV pixel coordinates (u, v),
    and rasterized rows come out top-first (see the module docstring).
    """
    B = K.shape[0]
    near = torch.as_tensor(near, dtype=K.dtype, device=K.device).expand(B)
    far = torch.as_tensor(far, dtype=K.dtype, device=K.device).expand(B)
    P = K.new_zeros(B, 4, 4)
    P[:, 0, 0] = 2 * K[:, 0, 0] / width
    P[:, 0, 1] = 2 * K[:, 0, 1] / width
    P[:, 0, 2] = 2 * K[:, 0, 2] / width - 1
    P[:, 1, 1] = 2 * K[:, 1, 1] / height
    P[:, 1, 2] = 2 * K[:, 1, 2] / height - 1
    P[:, 2, 2] = (far + near) / (far - near)
    P[:, 2, 3] = -2 * far * near / (far - near)
    P[:, 3, 2] = 1
    Rt = K.new_zeros(B, 4, 4)
    Rt[:, :3, :3] = R.to(K.dtype)
    Rt[:, :3, 3] = t.to(K.dtype)
    Rt[:, 3, 3] = 1
    return P @ Rt


def to_clip(verts: Tensor, world_to_clip: Tensor) -> Tensor:
    """(N, 3) or (B, N, 3) world points and (B, 4, 4) matrices -> (B, N, 4) clip positions."""
    hom = torch.cat([verts, torch.ones_like(verts[..., :1])], -1)
    return hom @ world_to_clip.to(verts.dtype).transpose(-1, -2)
