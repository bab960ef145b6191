"""Training of the mono network on procedural scenes (torchrun-ready).

Each sample draws a task (depth, normals, camera) and one of two losses:
- the diffusion loss: x_t = sqrt(a) x0 + sqrt(1-a) eps at a random t, MSE on v;
- the one-step loss (E2E-FT / PrimeDepth style): t = T-1 with x_t = 0, MSE on the clean
  estimate x0_hat, so that one deterministic UNet pass at inference gives the answer.
Scenes are rendered once into a pool (seeded) and reused with horizontal flips.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers.training_utils import EMAModel
from torch import Tensor
from tqdm.auto import tqdm

from polydiff.apps.mono.model import NetConfig, build_scheduler, build_unet, denoiser, save_model
from polydiff.apps.mono.targets import encode_camera, encode_depth, image_to_model
from polydiff.diffusion.config import load_config
from polydiff.diffusion.predictions import to_x0
from polydiff.geometry.scenes import SceneConfig, render_batch
from polydiff.runtime import atomic_directory


@dataclass
class DataConfig:
    """Procedural training scenes: pool size, seed and camera ranges."""

    pool_size: int = 2000
    seed: int = 0
    fov_deg: list[float] = field(default_factory=lambda: [25.0, 100.0])
    pixel_aspect: list[float] = field(default_factory=lambda: [0.75, 1.33])
    principal_jitter: float = 0.08


@dataclass
class OptimConfig:
    """Optimisation: steps, batch, learning rate (cosine decay), EMA, loss mix."""

    steps: int = 2000
    batch_size: int = 8
    lr: float = 5e-4
    warmup: int = 100
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    one_step_fraction: float = 0.35
    task_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    seed: int = 0
    threads: int = 1
    log_every: int = 50
    checkpoint_every: int = 500


@dataclass
class MonoTrainConfig:
    """The whole YAML file: ``net``, ``data``, ``train`` and the output folder."""

    out_dir: str = "runs/mono"
    net: NetConfig = field(default_factory=NetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: OptimConfig = field(default_factory=OptimConfig)


def load_train_config(path: Path) -> MonoTrainConfig:
    """Read a YAML training config; unknown keys raise a UserError naming them."""
    return load_config(path, MonoTrainConfig)


@dataclass
class Pool:
    """Rendered training targets: image (P, 3, R, R) in [-1, 1] and the three targets."""

    image: Tensor
    targets: Tensor  # (P, 3 tasks, 3, R, R)

    def batch(self, idx: Tensor, task: Tensor, flip: Tensor) -> tuple[Tensor, Tensor]:
        """Images and targets of the items ``idx`` for ``task``, mirrored where ``flip``."""
        image, x0 = self.image[idx].float(), self.targets[idx, task].float()
        sign = torch.ones(len(idx), 3, 1, 1)  # mirroring negates x of normals and theta_n
        sign[:, 0] = torch.where(task[:, None, None] == 0, 1.0, -1.0)
        f = flip[:, None, None, None]
        image = torch.where(f, image.flip(-1), image)
        x0 = torch.where(f, x0.flip(-1) * sign, x0)
        return image, x0


def render_pool(cfg: DataConfig, resolution: int, seed_offset: int = 0) -> Pool:
    """Render ``cfg.pool_size`` scenes and encode their targets (float16)."""
    scene_cfg = SceneConfig(height=resolution, width=resolution, fov_deg=tuple(cfg.fov_deg),
                            pixel_aspect=tuple(cfg.pixel_aspect),
                            principal_jitter=cfg.principal_jitter)
    rng = np.random.default_rng(cfg.seed + 1000 * seed_offset)
    images, targets = [], []
    chunk = 50
    for start in tqdm(range(0, cfg.pool_size, chunk), desc="rendering scenes", unit="chunk"):
        b = render_batch(rng, min(chunk, cfg.pool_size - start), scene_cfg)
        t = torch.stack([encode_depth(b.depth), b.normals, encode_camera(b.K, b.image)], 1)
        images.append(image_to_model(b.image).half())
        targets.append(t.half())
    return Pool(torch.cat(images), torch.cat(targets))


def mono_loss(model_fn, scheduler, x0: Tensor, one_step: Tensor, generator: torch.Generator
              ) -> Tensor:
    """Mean of the v-loss (diffusion items) and the x0-loss at t=T-1, x_t=0 (one-step items)."""
    b, dev = x0.shape[0], x0.device
    T = scheduler.config.num_train_timesteps
    t = torch.randint(0, T, (b,), generator=generator)
    t = torch.where(one_step.cpu(), T - 1, t)
    a = scheduler.alphas_cumprod[t].float()[:, None, None, None].to(dev)
    noise = torch.randn(x0.shape, generator=generator).to(dev)
    t, one_step = t.to(dev), one_step.to(dev)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    x_t = torch.where(one_step[:, None, None, None], 0.0, x_t)
    v = model_fn(x_t, t)
    v_target = a.sqrt() * noise - (1 - a).sqrt() * x0
    err_v = (v - v_target).square().mean((1, 2, 3))
    err_x0 = (to_x0(v, x_t, a, "v_prediction") - x0).square().mean((1, 2, 3))
    return torch.where(one_step, err_x0, err_v).mean()


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises torch.distributed under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return int(os.environ.get("RANK", "0")), world


def train(cfg: MonoTrainConfig, device: torch.device, out_dir: Path | None = None) -> Path:
    """Train from scratch; returns the folder holding the final checkpoint."""
    opt_cfg = cfg.train
    torch.set_num_threads(opt_cfg.threads)
    rank, world = _distributed()
    out = Path(out_dir or cfg.out_dir)
    gen = torch.Generator().manual_seed(opt_cfg.seed + rank)
    torch.manual_seed(opt_cfg.seed)  # diffusers initialises weights from the global generator
    unet = build_unet(cfg.net).to(device)
    scheduler = build_scheduler()
    model = unet
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(unet)
    pool = render_pool(cfg.data, cfg.net.resolution, seed_offset=rank)
    ema = EMAModel(unet.parameters(), decay=opt_cfg.ema_decay)
    optim = torch.optim.AdamW(unet.parameters(), lr=opt_cfg.lr, weight_decay=1e-4)
    lr_at = _cosine(opt_cfg.lr, opt_cfg.warmup, opt_cfg.steps)
    weights = torch.tensor(opt_cfg.task_weights, dtype=torch.float)
    n_params = sum(p.numel() for p in unet.parameters())
    bar = tqdm(range(1, opt_cfg.steps + 1), desc=f"training mono ({n_params / 1e6:.2f} M)",
               disable=rank != 0)
    running, start = 0.0, time.time()
    for step in bar:
        idx = torch.randint(0, pool.image.shape[0], (opt_cfg.batch_size,), generator=gen)
        task = torch.multinomial(weights, opt_cfg.batch_size, replacement=True, generator=gen)
        flip = torch.rand(opt_cfg.batch_size, generator=gen) < 0.5
        one_step = torch.rand(opt_cfg.batch_size, generator=gen) < opt_cfg.one_step_fraction
        image, x0 = pool.batch(idx, task, flip)
        fn = denoiser(model, image.to(device), task.to(device))
        loss = mono_loss(fn, scheduler, x0.to(device), one_step, gen)
        for group in optim.param_groups:
            group["lr"] = lr_at(step)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), opt_cfg.grad_clip)
        optim.step()
        ema.step(unet.parameters())
        running += loss.item()
        if step % opt_cfg.log_every == 0 and rank == 0:
            bar.write(f"step {step} loss {running / opt_cfg.log_every:.4f} "
                      f"({time.time() - start:.0f} s)")
            running = 0.0
        if rank == 0 and (step % opt_cfg.checkpoint_every == 0 or step == opt_cfg.steps):
            _save_ema(out, unet, ema, scheduler, cfg, step)
    return out


def _cosine(lr: float, warmup: int, steps: int):
    def at(step: int) -> float:
        if step < warmup:
            return lr * step / warmup
        return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return at


def _save_ema(out: Path, unet, ema: EMAModel, scheduler, cfg: MonoTrainConfig, step: int
              ) -> None:
    """Save the EMA weights (the live weights are restored afterwards)."""
    ema.store(unet.parameters())
    ema.copy_to(unet.parameters())
    with atomic_directory(out) as tmp:
        save_model(tmp, unet, scheduler, cfg.net, {"trained_steps": step,
                                                  "train_config": dataclasses.asdict(cfg)})
    ema.restore(unet.parameters())
