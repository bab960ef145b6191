"""Camera rigs and mesh rendering (normals, depth, coverage, colour) for batches of views.

World frame: right-handed with **+z up** (as in ``scenes`` and ``Cameras.look_at``); meshes
live in the unit cube [-0.5, 0.5]^3 (``meshes.normalise_to_unit_cube``). Cameras follow
OpenCV (x right, y down, z forward); images have row 0 at the top. glTF's y-up exists only
inside GLB files (``meshes`` converts on write and back on read).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from polydiff.geometry.cameras import Cameras, Intrinsics
from polydiff.geometry.raster import Rasterizer, get_rasterizer, opencv_to_clip, to_clip
from polydiff.runtime import UserError

WORLD_UP = (0.0, 0.0, 1.0)
DEFAULT_AZIMUTHS = (0.0, 90.0, 180.0, 270.0)  # Direct2.5's four views at elevation 0
MAX_PIXELS = 1 << 28  # views x height x width rendered at once


class RenderResult(NamedTuple):
    """Rendered views, all (V, H, W, ...) with row 0 at the top.

    normals: (V, H, W, 3) unit world-space normals where a triangle is hit, 0 elsewhere.
    depth:   (V, H, W) camera z-depth where hit, 0 elsewhere (the hard mask is depth > 0).
    mask:    (V, H, W) antialiased coverage in [0, 1] (differentiable in the vertices).
    color:   (V, H, W, 3) antialiased vertex colours premultiplied by coverage (black
             background), or None without colours.
    """

    normals: Tensor
    depth: Tensor
    mask: Tensor
    color: Tensor | None


def orbit_cameras(elevations_deg: Sequence[float] | float = 0.0,
                  azimuths_deg: Sequence[float] | float = DEFAULT_AZIMUTHS,
                  distance: float = 2.8, fov_deg: float = 40.0,
                  size: int | tuple[int, int] = 256,
                  target: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Cameras:
    """V cameras on a sphere around ``target`` looking at it (float64, world +z up).

    Azimuth 0 looks from -y towards +y (the front), 90 from +x (the right side), turning
    counter-clockwise seen from above; elevation is the angle above the xy-plane. A scalar
    or one-element list is repeated to the other's length. ``fov_deg`` is horizontal,
    ``size`` an int (square) or (height, width).
    """
    el = torch.as_tensor(elevations_deg, dtype=torch.float64).reshape(-1)
    az = torch.as_tensor(azimuths_deg, dtype=torch.float64).reshape(-1)
    if len(el) == 1:
        el = el.expand(len(az))
    if len(az) == 1:
        az = az.expand(len(el))
    if len(el) != len(az) or len(el) == 0:
        raise UserError(f"{len(el)} elevations and {len(az)} azimuths do not pair up")
    if (el.abs() >= 89.9).any():
        raise UserError("elevations must lie strictly between -89.9 and 89.9 degrees")
    if not (distance > 0 and 0 < fov_deg < 180):
        raise UserError(f"need distance > 0 and 0 < fov < 180, got {distance}, {fov_deg}")
    H, W = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    e, a = torch.deg2rad(el), torch.deg2rad(az)
    tgt = torch.tensor(target, dtype=torch.float64)
    eye = tgt + distance * torch.stack(
        [torch.sin(a) * torch.cos(e), -torch.cos(a) * torch.cos(e), torch.sin(e)], -1)
    K = Intrinsics.from_fov(fov_deg, W, H).matrix()
    return Cameras.look_at(eye, tgt.expand_as(eye), K, W, H, up=WORLD_UP)


def face_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """(N, 3) vertices, (F, 3) counter-clockwise faces -> (F, 3) area-scaled normals (2 A n)."""
    v = verts[faces.long()]
    return torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])


def vertex_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """(N, 3) area-weighted unit vertex normals (differentiable in ``verts``)."""
    fn = face_normals(verts, faces)
    vn = torch.zeros_like(verts).index_add(0, faces.long().flatten(),
                                           fn.repeat_interleave(3, dim=0))
    return torch.nn.functional.normalize(vn, dim=-1, eps=1e-12)


def clip_positions(verts: Tensor, cameras: Cameras) -> Tensor:
    """(N, 3) world vertices -> (V, N, 4) clip positions, near/far fitted to the vertices."""
    with torch.no_grad():
        z = cameras.world_to_camera(verts.detach().to(cameras.R.dtype).expand(
            len(cameras.R), -1, -1))[..., 2]
        zmax = z.amax(1).clamp(min=1e-6)
        near = torch.maximum(0.5 * z.amin(1), 1e-3 * zmax)
        far = 2.0 * zmax
    M = opencv_to_clip(cameras.K, cameras.R, cameras.t, cameras.width, cameras.height,
                       near, far)
    return to_clip(verts, M.to(device=verts.device, dtype=verts.dtype))


def render_mesh(verts: Tensor, faces: Tensor, cameras: Cameras, *, colors: Tensor | None = None,
                backend: str | Rasterizer = "auto", shading: str = "smooth") -> RenderResult:
    """Render a triangle mesh from V cameras (see RenderResult); differentiable in ``verts``.

    verts (N, 3) float world coordinates, faces (F, 3) int counter-clockwise seen from
    outside, colors (N, 3) in [0, 1]. ``shading``: ``smooth`` interpolates area-weighted
    vertex normals, ``flat`` uses each face's normal. Computes on ``verts``' device.
    """
    _check_mesh(verts, faces, colors)
    V, H, W = len(cameras.R), cameras.height, cameras.width
    if V * H * W > MAX_PIXELS:
        raise UserError(f"{V} views of {H}x{W} are too many pixels to render at once")
    r = get_rasterizer(backend, verts.device) if isinstance(backend, str) else backend
    cams = Cameras(cameras.K.to(verts.device), cameras.R.to(verts.device),
                   cameras.t.to(verts.device), W, H)
    faces = faces.to(device=verts.device, dtype=torch.int32)
    pos = clip_positions(verts, cams)                         # (V, N, 4)
    rast, _ = r.rasterize(pos, faces, (H, W))
    hit = rast[..., 3] > 0                                    # (V, H, W)
    if shading == "smooth":
        n = r.interpolate(vertex_normals(verts, faces), rast, faces)
    elif shading == "flat":
        fn = torch.nn.functional.normalize(face_normals(verts, faces), dim=-1, eps=1e-12)
        tid = rast[..., 3].detach().round().long() - 1
        n = fn[tid.clamp(min=0)] * hit[..., None]
    else:
        raise UserError(f"unknown shading {shading!r} (use smooth or flat)")
    normals = torch.nn.functional.normalize(n, dim=-1, eps=1e-12) * hit[..., None]
    z_cam = cams.world_to_camera(verts.to(cams.R.dtype).expand(V, -1, -1))[..., 2:]
    depth = r.interpolate(z_cam.to(verts.dtype), rast, faces)[..., 0] * hit
    mask = r.antialias(hit[..., None].to(pos.dtype), rast, pos, faces)[..., 0].clamp(0, 1)
    color = None
    if colors is not None:
        c = r.interpolate(colors.to(device=verts.device, dtype=verts.dtype), rast, faces)
        color = r.antialias(c, rast, pos, faces)
    return RenderResult(normals, depth, mask, color)


def _check_mesh(verts: Tensor, faces: Tensor, colors: Tensor | None) -> None:
    if verts.dim() != 2 or verts.shape[1] != 3 or len(verts) == 0:
        raise UserError(f"vertices must be (N, 3) with N > 0, got {tuple(verts.shape)}")
    if faces.dim() != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise UserError(f"faces must be (F, 3) with F > 0, got {tuple(faces.shape)}")
    if int(faces.min()) < 0 or int(faces.max()) >= len(verts):
        raise UserError(f"face indices must lie in [0, {len(verts)})")
    if not torch.isfinite(verts).all():
        raise UserError("vertices contain NaN or infinite coordinates")
    if colors is not None and tuple(colors.shape) != (len(verts), 3):
        raise UserError(f"colors must be ({len(verts)}, 3), got {tuple(colors.shape)}")

