"""The multi-view normal model as an app model: its config, loading, and text -> V normal maps.

``generate_normal_views`` runs the backbone's sampler (``polydiff.diffusion.sample``) on the
joint-view UNet with classifier-free guidance (the model is trained with prompt dropout) and
returns what ``polydiff mesh fuse`` reads: world-space unit normals, masks, K and c2w in the
OpenCV convention.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from polydiff.apps.mesh.multiview import MultiViewDenoiser, camera_features, enable_joint_views
from polydiff.runtime import UserError, check_finite

APP, KIND = "mesh", "normals"


@dataclass
class NormalsConfig:
    """What a normal-model checkpoint keeps besides its weights (angles in degrees)."""

    size: int = 32
    views: int = 4
    distance: float = 2.2
    fov_deg: float = 40.0
    text_encoder: str = "all-MiniLM-L6-v2"
    text_dim: int = 384
    p_uncond: float = 0.1
    guidance_scale: float = 2.0
    sample_steps: int = 30
    elevation_range: tuple[float, float] = (-10.0, 30.0)
    data: dict | None = None  # the MeshDataConfig of the training set (a record)
    init_from: str | None = None  # the checkpoint training started from (a record)


class NormalModel(NamedTuple):
    """A loaded normal model: UNet (joint views enabled), scheduler and config."""

    net: torch.nn.Module
    scheduler: object
    config: NormalsConfig


class NormalViews(NamedTuple):
    """V generated views, float32 on the CPU, OpenCV cameras.

    normals (V, H, W, 3) unit world normals inside the mask, 0 outside; mask (V, H, W) bool;
    K (V, 3, 3) intrinsics in pixels; c2w (V, 4, 4) camera-to-world.
    """

    normals: Tensor
    mask: Tensor
    K: Tensor
    c2w: Tensor


def load_normal_model(folder: str | os.PathLike | None = None,
                      device: torch.device | str = "cpu") -> NormalModel:
    """The normal model in ``folder`` (default: the bundled one, polydiff/weights/mesh/normals)."""
    from polydiff.apps.contract import load_app_checkpoint, typed_config

    ckpt = load_app_checkpoint(APP, folder, device, kind=KIND)
    return NormalModel(enable_joint_views(ckpt.net), ckpt.scheduler,
                       typed_config(ckpt, NormalsConfig))


def rig_cameras(config: NormalsConfig, views: int, elevation: float = 0.0,
                azimuth_offset: float = 0.0):
    """(Cameras (float64), (V,) azimuths in degrees) of ``views`` orbit cameras evenly spaced
    in azimuth from ``azimuth_offset``, at the distance and field of view of ``config``."""
    from polydiff.geometry.render import orbit_cameras

    azimuths = azimuth_offset + 360.0 * torch.arange(views, dtype=torch.float64) / views
    return orbit_cameras(elevation, azimuths, config.distance, config.fov_deg, config.size), \
        azimuths


def camera_to_world(cameras) -> Tensor:
    """(V, 4, 4) camera-to-world matrices of ``Cameras`` (world-to-camera R, t)."""
    c2w = torch.eye(4, dtype=cameras.R.dtype).repeat(len(cameras.R), 1, 1)
    c2w[:, :3, :3] = cameras.R.transpose(-1, -2)
    c2w[:, :3, 3] = cameras.centres
    return c2w


def decode_views(x: Tensor) -> tuple[Tensor, Tensor]:
    """Model views (V, 4, H, W) -> unit normals (V, H, W, 3) zero outside, mask (V, H, W)."""
    x = x.permute(0, 2, 3, 1).float()
    n = x[..., :3]
    length = n.norm(dim=-1)
    mask = (x[..., 3] > 0) & (length > 1e-3)
    normals = torch.nn.functional.normalize(n, dim=-1, eps=1e-6) * mask[..., None]
    return normals, mask


@torch.no_grad()
def generate_normal_views(prompt: str, model: NormalModel, views: int = 4, steps: int | None = None,
                          generator: torch.Generator | None = None,
                          device: torch.device | str = "cpu", *, elevation: float = 0.0,
                          guidance_scale: float | None = None, text_encoder=None,
                          progress: bool = False) -> NormalViews:
    """V normal maps of the object ``prompt`` describes, at azimuths 0, 360/V, ... .

    Args:
        prompt: the text; an empty prompt is a UserError.
        model: from :func:`load_normal_model`.
        views: V >= 1 (the model was trained with ``model.config.views``; joint attention
            works with other counts, quality is best at the trained one).
        steps: sampler steps (default ``model.config.sample_steps``).
        generator: source of the initial noise (on ``device``); same seed, same views.
        elevation: camera elevation in degrees.
        guidance_scale: classifier-free guidance (1: none; default from the config).
        text_encoder: a :class:`TextEncoder` matching ``model.config.text_dim`` (default: the
            bundled MiniLM).
    """
    from polydiff.apps.mesh.text_encoder import TextEncoder

    cfg = model.config
    if not isinstance(prompt, str) or not prompt.strip():
        raise UserError("empty prompt: describe the object to generate")
    if not 1 <= views <= 64:
        raise UserError(f"views must lie in [1, 64], got {views}")
    encoder = text_encoder or TextEncoder(device="cpu")
    if encoder.dim != cfg.text_dim:
        raise UserError(f"text encoder {encoder.name} gives {encoder.dim}-d embeddings; the "
                        f"normal model needs {cfg.text_dim}-d ({cfg.text_encoder})")
    text = encoder(prompt)                                             # (1, D)
    cams, azimuths = rig_cameras(cfg, views, elevation)
    feats = camera_features(torch.full_like(azimuths, elevation), azimuths)[None]
    x = sample_views(model, text, feats, steps, generator, device,
                     guidance_scale=guidance_scale, progress=progress)[0]  # (V, 4, H, W)
    check_finite(x, "the generated normal maps", "a guidance scale too large for this model")
    normals, mask = decode_views(x)
    return NormalViews(normals, mask, cams.K.float(), camera_to_world(cams).float())


@torch.no_grad()
def sample_views(model: NormalModel, text: Tensor, cameras: Tensor, steps: int | None = None,
                 generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu", *, guidance_scale: float | None = None,
                 progress: bool = False) -> Tensor:
    """Raw model views (B, V, 4, H, W) on the CPU for B prompt embeddings at once.

    text (B, D) embeddings; cameras (B or 1, V, 4) camera features (``camera_features``).
    """
    from polydiff.diffusion import classifier_free, sample

    cfg = model.config
    device = torch.device(device)
    net = model.net.to(device)
    text, cameras = text.to(device), cameras.to(device)
    B, V = len(text), cameras.shape[1]
    cond = MultiViewDenoiser(net, text, cameras)
    scale = cfg.guidance_scale if guidance_scale is None else guidance_scale
    fn = cond if scale == 1 else classifier_free(
        cond, MultiViewDenoiser(net, torch.zeros_like(text), cameras), scale)
    return sample(fn, model.scheduler, (B, V, 4, cfg.size, cfg.size),
                  steps=steps or cfg.sample_steps, generator=generator, device=device,
                  progress=progress).sample.cpu()
