"""Training of the mono network on procedural scenes with the backbone's ``train``.

The data set holds every (scene, task) pair: the image, the task label and the 3-channel
target. Each item of a batch then takes one of two losses:
- the diffusion loss: x_t = sqrt(a) x0 + sqrt(1-a) eps at a random t, MSE on the
  scheduler's ``prediction_type`` (v for the bundled model);
- the one-step loss (E2E-FT style, a clean-target loss): t = T-1 with x_t = 0, MSE on the clean
  estimate x0_hat, so that one deterministic UNet pass at inference gives the answer;
and is mirrored left-right with probability 1/2 (exactly: normals' x and the Camera
Image's theta change sign). torchrun-ready through ``polydiff.diffusion.training.train``,
with micro-batches (``train.micro_batch``) for the paper config on one GPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from polydiff.apps.contract import checkpoint_meta, progress_enabled, seeded
from polydiff.apps.mono.augment import degrade
from polydiff.apps.mono.config import TASKS, DataConfig, LossConfig, MonoConfig, NetConfig
from polydiff.apps.mono.model import APP, build_scheduler, build_unet
from polydiff.apps.mono.targets import encode_camera, encode_depth, image_to_model
from polydiff.diffusion.config import load_config
from polydiff.diffusion.networks import Denoiser
from polydiff.diffusion.predictions import to_x0, training_target
from polydiff.diffusion.training import TrainConfig, TrainResult, train
from polydiff.geometry.scenes import SceneConfig, render_batch
from polydiff.runtime import UserError, process_rank


@dataclass
class MonoTrainConfig:
    """A YAML file of ``configs/mono/``: ``net``, ``data``, ``loss`` and the backbone's
    ``train`` block; ``init_from`` names a mono checkpoint whose weights start the training
    (its network must match ``net``; "bundled" is the bundled checkpoint)."""

    net: NetConfig = field(default_factory=NetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    init_from: str | None = None  # a mono checkpoint folder to start from (fine-tuning)

    def app_config(self) -> MonoConfig:
        """The part saved with the weights (``polydiff.json`` -> ``config``)."""
        return MonoConfig(self.net, self.data, self.loss, list(TASKS))


def load_train_config(path: Path) -> MonoTrainConfig:
    """Read a YAML training config; unknown keys raise a UserError naming them."""
    return load_config(path, MonoTrainConfig)


def render_dataset(cfg: DataConfig, resolution: int) -> dict[str, Tensor]:
    """Every (scene, task) pair: "x" (N, 3, R, R) targets, "image" (N, 3, R, R) in [-1, 1],
    "task" (N,) labels, N = 3 x scenes. Every torchrun rank renders the same scenes."""
    scene_cfg = scene_config(cfg, resolution)
    rng = np.random.default_rng(cfg.seed)
    rng_photo = np.random.default_rng([cfg.seed, 1])  # the augmentation's own stream
    lo_q, hi_q = cfg.depth_quantiles
    images, targets, chunk = [], [], 50
    for start in tqdm(range(0, cfg.scenes, chunk), desc="rendering scenes",
                      disable=not progress_enabled()):
        b = render_batch(rng, min(chunk, cfg.scenes - start), scene_cfg)
        seen = b.image
        if cfg.augment > 0:  # photometric only: the targets stay exact
            seen = torch.stack([torch.from_numpy(degrade(x.permute(1, 2, 0).numpy(), rng_photo,
                                                         cfg.augment)).permute(2, 0, 1)
                                for x in b.image])
        images.append(image_to_model(seen))
        camera = encode_camera(b.K, b.image, cfg.focal_channel)
        targets.append(torch.stack([encode_depth(b.depth, lo_q, hi_q), b.normals, camera],
                                   1))  # (B, 3 tasks, 3, R, R)
    image, target = torch.cat(images), torch.cat(targets)
    n = len(image)
    return {"x": target.flatten(0, 1), "image": image.repeat_interleave(len(TASKS), 0),
            "task": torch.arange(len(TASKS)).repeat(n)}


def scene_config(cfg: DataConfig, resolution: int) -> SceneConfig:
    """The procedural scenes of a data config, rendered at ``resolution`` (square)."""
    return SceneConfig(height=resolution, width=resolution, fov_deg=tuple(cfg.fov_deg),
                       pixel_aspect=tuple(cfg.pixel_aspect),
                       principal_jitter=cfg.principal_jitter, pitch_deg=tuple(cfg.pitch_deg),
                       roll_deg=tuple(cfg.roll_deg), objects=tuple(cfg.objects),
                       furniture=tuple(cfg.furniture), outdoor_fraction=cfg.outdoor_fraction,
                       photo_fraction=cfg.photo_fraction, light_tint=cfg.light_tint,
                       far=cfg.far)


def mirror(image: Tensor, x0: Tensor, task: Tensor, flip: Tensor) -> tuple[Tensor, Tensor]:
    """Mirror items left-right where ``flip`` (B,): images (B, 3, R, R), targets (B, 3, R, R).

    Depth is unchanged; normals' x and the Camera Image's theta change sign (the mirrored
    camera has cx' = W - cx)."""
    sign = torch.ones(len(task), 3, 1, 1, device=x0.device)
    sign[:, 0] = torch.where(task[:, None, None] == TASKS.index("depth"), 1.0, -1.0)
    f = flip[:, None, None, None]
    return torch.where(f, image.flip(-1), image), torch.where(f, x0.flip(-1) * sign, x0)


def mono_loss(model_fn, scheduler, x0: Tensor, noise: Tensor, t: Tensor, one_step: Tensor
              ) -> Tensor:
    """Mean of the diffusion loss (diffusion items) and the x0-loss at t=T-1, x_t=0
    (one-step items); the network's output is read as ``scheduler.config.prediction_type``.

    x0, noise: (B, 3, R, R); t: (B,) timesteps; one_step: (B,) bool."""
    prediction = scheduler.config.prediction_type
    T = scheduler.config.num_train_timesteps
    t = torch.where(one_step, T - 1, t)
    a = scheduler.alphas_cumprod.to(x0.device)[t].to(x0.dtype)[:, None, None, None]
    x_t = torch.where(one_step[:, None, None, None], 0.0, a.sqrt() * x0 + (1 - a).sqrt() * noise)
    out = model_fn(x_t, t)
    err_diffusion = (out - training_target(x0, noise, a, prediction)).square().mean((1, 2, 3))
    err_x0 = (to_x0(out, x_t, a, prediction) - x0).square().mean((1, 2, 3))
    return torch.where(one_step, err_x0, err_diffusion).mean()


class MonoLoss:
    """``loss_fn`` for the backbone's ``train``: mirroring and the one-step share are drawn
    from a private generator seeded per process."""

    def __init__(self, scheduler, cfg: LossConfig, seed: int) -> None:
        self.scheduler, self.cfg = scheduler, cfg
        self.gen = torch.Generator().manual_seed(seed + 7 * process_rank())

    def __call__(self, net, batch: dict[str, Tensor], noise: Tensor, t: Tensor) -> Tensor:
        b, dev = len(t), t.device
        flip = (torch.rand(b, generator=self.gen) < 0.5).to(dev)
        one_step = (torch.rand(b, generator=self.gen) < self.cfg.one_step_fraction).to(dev)
        image, x0 = mirror(batch["image"], batch["x"], batch["task"], flip)
        model = Denoiser(net, image, class_labels=batch["task"])
        return mono_loss(model, self.scheduler, x0, noise, t, one_step)


def initial_weights(folder: str, net: NetConfig) -> dict[str, Tensor]:
    """The UNet weights of a mono checkpoint ("bundled": the bundled one), refused in one
    line when its network differs from ``net``."""
    from polydiff.apps.mono.model import load_model

    model = load_model(None if folder == "bundled" else Path(folder), "cpu")
    theirs = dataclasses.replace(model.config.net, resolution=net.resolution)
    if theirs != net:
        raise UserError(f"init_from {folder}: its network {dataclasses.asdict(theirs)} differs "
                        f"from the config's {dataclasses.asdict(net)}")
    return model.unet.state_dict()


def run_training(cfg: MonoTrainConfig) -> TrainResult:
    """Render the scenes and train; the checkpoint goes to ``cfg.train.out_dir``."""
    torch.set_num_threads(cfg.loss.threads)
    unet = seeded(cfg.train.seed, lambda: build_unet(cfg.net))
    if cfg.init_from is not None:
        unet.load_state_dict(initial_weights(cfg.init_from, cfg.net))
    scheduler = build_scheduler()
    data = render_dataset(cfg.data, cfg.net.resolution)
    meta = checkpoint_meta(APP, dataclasses.asdict(cfg.app_config()))
    return train(unet, scheduler, data, cfg.train, config=meta,
                 loss_fn=MonoLoss(scheduler, cfg.loss, cfg.train.seed))
