"""Pinhole cameras in the OpenCV convention: x right, y down, z forward, pixels in (u, v).

Pixel (u, v) covers [u, u+1) x [v, v+1); its centre is (u + 0.5, v + 0.5). Depth is z-depth
(distance along the optical axis), never distance along the ray. Extrinsics map world to
camera: ``p_cam = R @ p_world + t``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Intrinsics:
    """Focal lengths and principal point in pixels, image size in pixels (JSON: same keys)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"intrinsics need finite positive focal lengths, got {values}")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    def matrix(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """The 3x3 calibration matrix K."""
        return torch.tensor(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=dtype
        )

    @classmethod
    def from_matrix(cls, K: Tensor, width: int, height: int) -> Intrinsics:
        """Read fx, fy, cx, cy from a 3x3 K (skew ignored)."""
        K = torch.as_tensor(K, dtype=torch.float64)
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]),
                   int(width), int(height))

    @classmethod
    def from_fov(cls, fov_x_deg: float, width: int, height: int) -> Intrinsics:
        """Square pixels, centred principal point, horizontal field of view in degrees."""
        f = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2)
        return cls(f, f, width / 2, height / 2, int(width), int(height))

    @property
    def fov_x_deg(self) -> float:
        return math.degrees(2 * math.atan(self.width / (2 * self.fx)))

    def resized(self, width: int, height: int) -> Intrinsics:
        """The same camera seen through an image resampled to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy,
                          int(width), int(height))

    def to_dict(self) -> dict:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
                "width": self.width, "height": self.height}

    @classmethod
    def from_dict(cls, data: dict) -> Intrinsics:
        """Parse the intrinsics JSON object; missing keys or bad values raise ValueError."""
        missing = [k for k in ("fx", "fy", "cx", "cy", "width", "height") if k not in data]
        if missing:
            raise ValueError(f"intrinsics JSON lacks {', '.join(missing)}")
        return cls(float(data["fx"]), float(data["fy"]), float(data["cx"]), float(data["cy"]),
                   int(data["width"]), int(data["height"]))


def pixel_centres(height: int, width: int, *, dtype: torch.dtype = torch.float64,
                  device: torch.device | str | None = None) -> Tensor:
    """(H, W, 2) pixel centres (u + 0.5, v + 0.5) in pixels."""
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype, device=device) + 0.5,
                          torch.arange(width, dtype=dtype, device=device) + 0.5, indexing="ij")
    return torch.stack([u, v], dim=-1)


def camera_rays(K: Tensor, height: int, width: int) -> Tensor:
    """(..., H, W, 3) rays K^-1 [u+0.5, v+0.5, 1] with z = 1 for K of shape (..., 3, 3).

    Scaling such a ray by a z-depth gives the camera-frame point directly.
    """
    uv = pixel_centres(height, width, dtype=K.dtype, device=K.device)
    fx, fy = K[..., 0, 0, None, None], K[..., 1, 1, None, None]
    cx, cy = K[..., 0, 2, None, None], K[..., 1, 2, None, None]
    s = K[..., 0, 1, None, None]
    y = (uv[..., 1] - cy) / fy
    x = (uv[..., 0] - cx - s * y) / fx
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def unproject_depth(depth: Tensor, K: Tensor) -> Tensor:
    """(..., H, W) z-depth and (..., 3, 3) K -> (..., H, W, 3) camera-frame points."""
    rays = camera_rays(K.to(depth.dtype), depth.shape[-2], depth.shape[-1])
    return depth[..., None] * rays


def project_points(points: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """(..., N, 3) camera-frame points, (..., 3, 3) K -> pixel coordinates (..., N, 2), z (..., N).

    Coordinates are continuous: the centre of pixel (u, v) projects to (u + 0.5, v + 0.5).
    """
    z = points[..., 2]
    hom = points @ K.to(points.dtype).transpose(-1, -2)
    return hom[..., :2] / z[..., None], z


def look_at_rotation(eye: Tensor, target: Tensor, up: Tensor) -> Tensor:
    """(B, 3) eye/target and (B, 3) or (3,) world up -> (B, 3, 3) world-to-camera rotation.

    Rows are the camera axes in world coordinates: x right, y down, z forward (OpenCV).
    """
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    up = torch.as_tensor(up, dtype=eye.dtype, device=eye.device).expand_as(forward)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up), dim=-1)
    down = torch.linalg.cross(forward, right)
    return torch.stack([right, down, forward], dim=-2)


@dataclass
class Cameras:
    """A batch of B pinhole cameras sharing one image size.

    K: (B, 3, 3) intrinsics; R: (B, 3, 3) and t: (B, 3) world-to-camera extrinsics.
    """

    K: Tensor
    R: Tensor
    t: Tensor
    width: int
    height: int

    @classmethod
    def look_at(cls, eye: Tensor, target: Tensor, K: Tensor, width: int, height: int,
                up: Tensor | tuple[float, float, float] = (0.0, 0.0, 1.0)) -> Cameras:
        """Cameras at ``eye`` (B, 3) looking at ``target`` (B, 3); world up is +z by default."""
        R = look_at_rotation(eye, target, torch.as_tensor(up, dtype=eye.dtype))
        t = -(R @ eye[..., None])[..., 0]
        K = torch.as_tensor(K, dtype=eye.dtype).expand(eye.shape[0], 3, 3)
        return cls(K, R, t, width, height)

    @property
    def centres(self) -> Tensor:
        """(B, 3) camera centres in world coordinates."""
        return -(self.R.transpose(-1, -2) @ self.t[..., None])[..., 0]

    def world_to_camera(self, points: Tensor) -> Tensor:
        """(B, N, 3) world points -> (B, N, 3) camera-frame points."""
        return points @ self.R.transpose(-1, -2) + self.t[:, None]

    def camera_to_world(self, points: Tensor) -> Tensor:
        """(B, N, 3) camera-frame points -> (B, N, 3) world points."""
        return (points - self.t[:, None]) @ self.R

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """(B, N, 3) world points -> pixel coordinates (B, N, 2) and z-depth (B, N)."""
        return project_points(self.world_to_camera(points), self.K)

    def rays(self) -> tuple[Tensor, Tensor]:
        """World-frame ray origins and directions, each (B, H, W, 3).

        Directions are R^T K^-1 [u+0.5, v+0.5, 1]: not unit, but scaled so that the ray
        parameter equals z-depth.
        """
        dirs = camera_rays(self.K, self.height, self.width) @ self.R[:, None]
        origins = self.centres[:, None, None].expand_as(dirs)
        return origins, dirs

    def unproject(self, depth: Tensor) -> Tensor:
        """(B, H, W) z-depth -> (B, H, W, 3) world points."""
        pts = unproject_depth(depth, self.K).flatten(1, 2)
        return self.camera_to_world(pts).reshape(*depth.shape, 3)
