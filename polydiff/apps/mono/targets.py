"""The three targets of the mono network as 3-channel images in [-1, 1], and back.

depth: affine-invariant depth, (d - d_2%) / (d_98% - d_2%) mapped to [-1, 1] and repeated
on three channels (Marigold); decoded as the channel mean in [0, 1] (0 near, 1 far).
normals: unit camera-frame normals (OpenCV: x right, y down, z forward) as they are.
camera: DM-Calib's Camera Image [theta_n, phi_n, gray] (``polydiff.geometry.camera_image``);
with ``focal_channel`` the third channel is instead the log horizontal focal length as a
constant field, log(fx / w) / FOCAL_LOG_SCALE (fx and w in the pixels of the image the network
sees): an auxiliary target that is the focal length as a whole, where the two ramps carry it
only in their slope. The intrinsics are still read from the ramps' line fit (the channel's
median vote was measured worse: ``configs/mono/focal.yaml``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from polydiff.apps.mono.config import TASKS
from polydiff.geometry.camera_image import camera_image
from polydiff.geometry.cameras import Intrinsics

TASK_ID: dict[str, int] = {name: i for i, name in enumerate(TASKS)}
# log(fx / w) of horizontal fields of view 10-130 degrees lies in [-0.8, 1.7]; / 1.8: in [-1, 1]
FOCAL_LOG_SCALE = 1.8


def image_to_model(image: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> the network's conditioning in [-1, 1]."""
    return image * 2 - 1


def grayscale(image: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, H, W) luma in [-1, 1]."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device)
    return (image * w[:, None, None]).sum(-3) * 2 - 1


def encode_depth(depth: Tensor, lo_q: float = 0.02, hi_q: float = 0.98) -> Tensor:
    """(B, H, W) z-depth -> (B, 3, H, W) affine-invariant depth in [-1, 1]."""
    flat = depth.flatten(1)
    lo = torch.quantile(flat, lo_q, dim=1)[:, None, None]
    hi = torch.quantile(flat, hi_q, dim=1)[:, None, None]
    rel = ((depth - lo) / (hi - lo).clamp(min=1e-6)).clamp(0, 1)
    return (rel * 2 - 1)[:, None].expand(-1, 3, -1, -1)


def decode_depth(x: Tensor) -> Tensor:
    """(B, 3, H, W) network output -> (B, H, W) relative depth in [0, 1]."""
    return ((x.mean(1) + 1) / 2).clamp(0, 1)


def decode_normals(x: Tensor) -> Tensor:
    """(B, 3, H, W) network output -> (B, 3, H, W) unit normals."""
    return torch.nn.functional.normalize(x, dim=1)


def encode_camera(K: Tensor, image: Tensor, focal_channel: bool = False) -> Tensor:
    """(B, 3, 3) intrinsics of (B, 3, H, W) images -> (B, 3, H, W) Camera Images; third
    channel the grayscale image, or with ``focal_channel`` the constant log(fx / W) /
    FOCAL_LOG_SCALE."""
    h, w = image.shape[-2:]
    if focal_channel:
        third = (torch.log(K[:, 0, 0].double() / w) / FOCAL_LOG_SCALE)[:, None, None]
        third = third.expand(-1, h, w)
    else:
        third = grayscale(image)
    return torch.stack([
        camera_image(Intrinsics.from_matrix(k, w, h), g) for k, g in zip(K, third)
    ]).to(image.dtype)
