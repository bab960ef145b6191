"""The mono network: a diffusers UNet2DModel conditioned on the image and a task label.

Input: the noisy 3-channel target x_t concatenated with the RGB image in [-1, 1] (6
channels, as in Marigold); the task (depth, normals, camera) enters through the UNet's
class embedding, added to the timestep embedding. Output: v-prediction of the target.
A checkpoint folder is diffusers' layout (``unet/``, ``scheduler/``, safetensors only)
plus ``polydiff.json`` holding the app's own settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from diffusers import DDIMScheduler, UNet2DModel
from torch import Tensor

from polydiff.apps.mono.targets import TASKS
from polydiff.diffusion.checkpoint import load_network, load_scheduler, read_config
from polydiff.diffusion.schedulers import make_scheduler
from polydiff.runtime import UserError


@dataclass
class NetConfig:
    """UNet size and the processing resolution (pixels, square)."""

    resolution: int = 64
    block_out_channels: list[int] = field(default_factory=lambda: [16, 32, 48, 64])
    attention_levels: list[bool] = field(default_factory=lambda: [False, False, False, True])
    layers_per_block: int = 1
    norm_num_groups: int = 8
    attention_head_dim: int = 16


def build_unet(cfg: NetConfig) -> UNet2DModel:
    """A UNet2DModel taking [x_t, image] (6 channels) and a task label, giving 3 channels."""
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in cfg.attention_levels)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.attention_levels))
    return UNet2DModel(
        sample_size=cfg.resolution, in_channels=6, out_channels=3,
        block_out_channels=tuple(cfg.block_out_channels), layers_per_block=cfg.layers_per_block,
        down_block_types=down, up_block_types=up, num_class_embeds=len(TASKS),
        norm_num_groups=cfg.norm_num_groups, attention_head_dim=cfg.attention_head_dim,
    )


def build_scheduler() -> DDIMScheduler:
    """1000-step cosine schedule, v-prediction, trailing timesteps (the first step is t=999)."""
    return make_scheduler("ddim", prediction_type="v_prediction", timestep_spacing="trailing",
                          set_alpha_to_one=True)


class MonoModel(NamedTuple):
    """A loaded network, its scheduler and its processing resolution (pixels)."""

    unet: UNet2DModel
    scheduler: DDIMScheduler
    resolution: int


def denoiser(unet: UNet2DModel, image: Tensor, task: Tensor):
    """The model callable (x_t (B, 3, R, R), t) -> v for images (B, 3, R, R) in [-1, 1]."""
    def model(x_t: Tensor, t: Tensor) -> Tensor:
        t = torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])
        return unet(torch.cat([x_t, image], 1), t, class_labels=task).sample

    return model


def load_model(folder: Path, device: torch.device) -> MonoModel:
    """Load a mono checkpoint folder (UserError for pickles, missing or foreign folders)."""
    meta = read_config(folder)
    if meta.get("app") != "mono":
        raise UserError(f"{folder} is not a polydiff mono checkpoint")
    unet = load_network(folder, "unet", device)
    return MonoModel(unet, load_scheduler(folder), int(meta["net"]["resolution"]))
