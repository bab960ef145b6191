"""The mono network and its loading: a diffusers UNet2DModel conditioned on the image and a
task label.

Input: the noisy 3-channel target x_t concatenated with the RGB image in [-1, 1] (6
channels, as in Marigold); the task (depth, normals, camera) enters through the UNet's
class embedding, added to the timestep embedding. Output: the scheduler's
``prediction_type`` (v-prediction for the bundled model). A checkpoint folder is the app
contract's (``polydiff.apps.contract``): ``unet/``, ``scheduler/`` and ``polydiff.json``
holding a :class:`MonoConfig`. ``--model`` also takes a plain diffusers ``unet/`` folder and a
user's Marigold pipeline folder (:mod:`polydiff.apps.mono.marigold`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import torch
from diffusers import DDIMScheduler, UNet2DModel

from polydiff.apps.contract import load_app_checkpoint, typed_config
from polydiff.apps.mono.config import TASKS, MonoConfig, NetConfig
from polydiff.diffusion.predictions import PREDICTION_TYPES
from polydiff.diffusion.schedulers import make_scheduler
from polydiff.runtime import UserError

APP = "mono"


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
    """A loaded mono network (eval mode), its scheduler and its config."""

    unet: UNet2DModel
    scheduler: object
    config: MonoConfig

    @property
    def resolution(self) -> int:
        """The processing resolution in pixels (square)."""
        return self.config.net.resolution


def load_model(folder: Path | None, device: torch.device | str = "cpu") -> MonoModel:
    """A mono checkpoint folder (default: the bundled one), or a plain diffusers ``unet/``
    folder paired with the bundled config; UserError for anything else."""
    ckpt = load_app_checkpoint(APP, folder, device)
    cfg = typed_config(ckpt, MonoConfig)
    if list(cfg.tasks) != list(TASKS):
        raise UserError(f"{ckpt.folder}: the network knows the tasks {cfg.tasks}, this "
                        f"polydiff uses {list(TASKS)}")
    classes = getattr(ckpt.net.config, "num_class_embeds", None) or 0
    if classes < len(TASKS):
        raise UserError(f"{ckpt.folder}/unet has {classes} class embeddings; the mono app "
                        f"needs one per task ({len(TASKS)})")
    prediction = ckpt.scheduler.config.prediction_type
    if prediction not in PREDICTION_TYPES:
        raise UserError(f"{ckpt.folder}: unknown prediction_type {prediction!r}")
    return MonoModel(ckpt.net, ckpt.scheduler, cfg)


def load_predictor(folder: Path | None, device: torch.device):
    """What ``--model`` names, ready to predict: a :class:`MonoPredictor` (bundled, polydiff
    or plain diffusers folder) or a :class:`MarigoldPredictor` (a Marigold pipeline folder,
    recognised by its ``model_index.json``)."""
    if folder is not None and (Path(folder) / "model_index.json").is_file():
        from polydiff.apps.mono.marigold import MarigoldPredictor

        path = Path(folder) / "model_index.json"
        try:
            index = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read {path}: {str(err).splitlines()[0]}") from err
        return MarigoldPredictor.load(Path(folder), index, device)
    from polydiff.apps.mono.predict import MonoPredictor

    return MonoPredictor(load_model(folder, device), device)
