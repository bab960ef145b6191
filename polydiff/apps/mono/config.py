"""Typed configs of the mono app: the network, the training scenes, the loss, the inference.

``MonoConfig`` is what a checkpoint's ``polydiff.json`` holds under ``"config"``; a YAML
file of ``configs/mono/`` holds the same blocks plus the backbone's ``train`` block
(``polydiff.apps.mono.train.MonoTrainConfig``). This module imports neither torch nor numpy,
so the command line can read its names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TASKS: tuple[str, ...] = ("depth", "normals", "camera")
MODES: tuple[str, ...] = ("one-step", "ensemble", "refine")
Mode = Literal["one-step", "ensemble", "refine"]


@dataclass
class NetConfig:
    """UNet size and the processing resolution (pixels, square)."""

    resolution: int = 64
    block_out_channels: list[int] = field(default_factory=lambda: [16, 32, 48, 64])
    attention_levels: list[bool] = field(default_factory=lambda: [False, False, False, True])
    layers_per_block: int = 1
    norm_num_groups: int = 8
    attention_head_dim: int = 16


@dataclass
class DataConfig:
    """Procedural training scenes (how many, seed, camera ranges, what they hold: see
    ``polydiff.geometry.scenes.SceneConfig``), the photometric augmentation's probability
    (``polydiff.apps.mono.augment``) and the depth target's normalisation: the
    ``depth_quantiles`` of each depth map go to -1 and +1. ``focal_channel``: the Camera
    Image's third channel holds the log focal length as a constant field
    (``polydiff.apps.mono.targets.encode_camera``) instead of the grayscale image. The
    defaults are the rooms the first bundled checkpoint was trained on."""

    scenes: int = 1500
    seed: int = 0
    fov_deg: list[float] = field(default_factory=lambda: [25.0, 100.0])
    pixel_aspect: list[float] = field(default_factory=lambda: [0.75, 1.33])
    principal_jitter: float = 0.08
    depth_quantiles: list[float] = field(default_factory=lambda: [0.02, 0.98])
    pitch_deg: list[float] = field(default_factory=lambda: [-40.0, 10.0])
    roll_deg: list[float] = field(default_factory=lambda: [-8.0, 8.0])
    objects: list[int] = field(default_factory=lambda: [2, 7])
    furniture: list[int] = field(default_factory=lambda: [0, 0])
    outdoor_fraction: float = 0.0
    photo_fraction: float = 0.0
    light_tint: float = 0.0
    far: float = 80.0
    augment: float = 0.0
    focal_channel: bool = False


@dataclass
class LossConfig:
    """Share of the one-step loss; threads for CPU training."""

    one_step_fraction: float = 0.5
    threads: int = 1


@dataclass
class MonoConfig:
    """The app's config stored with the weights (``polydiff.json`` -> ``config``).

    ``tasks`` lists the task labels in the order of the network's class embedding.
    """

    net: NetConfig = field(default_factory=NetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    tasks: list[str] = field(default_factory=lambda: list(TASKS))


@dataclass(frozen=True)
class EstimateOptions:
    """What to estimate and how.

    tasks: subset of ``TASKS``; mode: "one-step" (one deterministic UNet pass from t = T,
    trained with a clean-target loss: E2E-FT style), "ensemble" (``members`` runs of
    ``steps`` DDIM steps, Marigold style) or "refine" (SDEdit-style: the one-step estimate
    noised to the last ``refine_steps`` of a ``steps``-step schedule and denoised by them,
    for each of ``members``); square_pixels: one focal length fx = fy (cameras have square pixels),
    else fx and fy separately; progress: show a bar over the sampling steps.
    """

    tasks: tuple[str, ...] = TASKS
    mode: Mode = "one-step"
    steps: int = 10
    members: int = 5
    refine_steps: int = 3
    progress: bool = False
    square_pixels: bool = True

    @property
    def n_members(self) -> int:
        """Members actually run: one in one-step mode."""
        return 1 if self.mode == "one-step" else self.members
