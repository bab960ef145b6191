"""Training of the multi-view normal model: procedural renders -> the backbone's ``train``.

    python -m polydiff.apps.mesh.train_normals --config configs/mesh/normals_tiny_v2.yaml

runs as is under ``torchrun --nproc_per_node=K`` (the backbone's ``train`` splits the global
batch). Each step draws one of each object's captions and drops the prompt (zero embedding)
with probability ``p_uncond``, for classifier-free guidance; all views of one object share
one timestep.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from polydiff.apps.contract import copy_weights
from polydiff.apps.mesh.dataset import MeshDataConfig, load_or_build
from polydiff.apps.mesh.multiview import MultiViewDenoiser, enable_joint_views, network_block
from polydiff.apps.mesh.normals import APP, KIND, NormalsConfig
from polydiff.diffusion import (
    TrainConfig,
    build_network,
    count_parameters,
    denoising_loss,
    load_config,
    make_scheduler,
    train,
)


@dataclass
class NetworkConfig:
    """Size of the joint-view UNet (see ``multiview.network_block``)."""

    channels: tuple[int, ...] = (32, 48, 64)
    attention_levels: int = 1
    layers_per_block: int = 1
    heads: int = 4
    norm_groups: int = 8
    text_in_time: bool = False   # text embedding also in the time embedding


@dataclass
class NormalsTrainConfig:
    """A whole training run, as written in ``configs/mesh/normals_<name>.yaml``."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    scheduler: str = "ddim"
    prediction_type: str = "v_prediction"
    beta_schedule: str = "squaredcos_cap_v2"
    data: MeshDataConfig = field(default_factory=MeshDataConfig)
    data_cache: str | None = "runs/mesh/normals_data.safetensors"
    text_encoder: str | None = None   # folder; None: the bundled all-MiniLM-L6-v2
    p_uncond: float = 0.1
    guidance_scale: float = 2.0
    sample_steps: int = 30
    init_from: str | None = None  # normal-model folder to start from ("bundled": the bundled)
    train: TrainConfig = field(default_factory=TrainConfig)
    threads: int = 0  # torch CPU threads (0: leave torch's default)


CONFIG_CLASS = NormalsTrainConfig  # what ``polydiff mesh train`` builds from the YAML


def batch_generator(timesteps: Tensor) -> torch.Generator:
    """A generator seeded by the batch's timesteps (themselves drawn from ``train``'s seeded
    per-step generator), so caption choice and prompt dropout replay exactly on resume."""
    t = timesteps.detach().cpu().long()
    return torch.Generator().manual_seed(int((t * (torch.arange(len(t)) * 1009 + 1)).sum()))


def make_loss(scheduler, p_uncond: float):
    """The training loss (net, batch, noise (B, V, 4, H, W), timesteps (B,)) -> scalar."""

    def loss_fn(model, batch: dict[str, Tensor], noise: Tensor, timesteps: Tensor) -> Tensor:
        text = batch["text"]                                           # (B, K, D)
        g = batch_generator(timesteps)
        pick = torch.randint(0, text.shape[1], (len(text),), generator=g).to(text.device)
        chosen = text[torch.arange(len(text), device=text.device), pick]  # (B, D)
        drop = (torch.rand(len(text), generator=g) < p_uncond).to(text.device)
        chosen = torch.where(drop[:, None], torch.zeros_like(chosen), chosen)
        denoiser = MultiViewDenoiser(model, chosen, batch["cameras"])
        return denoising_loss(denoiser, scheduler, batch["x"], noise, timesteps)

    return loss_fn


def warm_start(net: torch.nn.Module, folder: str) -> torch.nn.Module:
    """Copy the weights of the normal model in ``folder`` ("bundled": the bundled one) into
    ``net`` (in place). Every tensor must match, except the camera projection's first layer
    when ``net`` also takes the text there (``text_in_time``): its camera columns are copied
    and its text columns start at zero, so the warm-started net computes exactly what the
    old one did until training moves them."""
    from polydiff.apps.mesh.normals import load_normal_model

    old = load_normal_model(None if folder == "bundled" else folder).net.state_dict()
    key, new = "class_embedding.linear_1.weight", net.state_dict()
    if key in old and key in new and old[key].shape[0] == new[key].shape[0] \
            and old[key].shape[1] < new[key].shape[1]:  # text joins the camera projection
        wide = torch.zeros_like(new[key])
        wide[:, :old[key].shape[1]] = old[key]
        old[key] = wide
    copy_weights(net, old, f"init_from {folder}")
    return net


def model_config(cfg: NormalsTrainConfig, encoder) -> NormalsConfig:
    """The config saved with the checkpoint."""
    d = cfg.data
    return NormalsConfig(size=d.size, views=d.views, distance=d.distance, fov_deg=d.fov_deg,
                         text_encoder=encoder.name, text_dim=encoder.dim, p_uncond=cfg.p_uncond,
                         guidance_scale=cfg.guidance_scale, sample_steps=cfg.sample_steps,
                         elevation_range=tuple(d.elevation_range))


def run_training(config: str | os.PathLike | dict | NormalsTrainConfig, *,
                 out_dir: str | None = None, steps: int | None = None,
                 progress: bool = True) -> Path:
    """Render (or read) the data, train, and export the checkpoint folder (returned) with the
    colour head (``colour/``, fitted on training captions: ``colour.fit_colour_head``)."""
    from polydiff.apps.contract import checkpoint_meta, seeded
    from polydiff.apps.mesh.colour import fit_colour_head, save_colour_head
    from polydiff.apps.mesh.text_encoder import TextEncoder
    from polydiff.runtime import is_main_process

    cfg = config if isinstance(config, NormalsTrainConfig) else \
        load_config(config, NormalsTrainConfig)
    if out_dir is not None:
        cfg.train.out_dir = str(out_dir)
    if steps is not None:
        cfg.train.steps = steps
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    encoder = TextEncoder(cfg.text_encoder)
    data = load_or_build(cfg.data, encoder, cfg.data_cache, progress)
    n = cfg.network
    block = network_block(cfg.data.size, encoder.dim, tuple(n.channels), n.attention_levels,
                          n.layers_per_block, n.heads, n.norm_groups, n.text_in_time)
    net = enable_joint_views(seeded(cfg.train.seed, lambda: build_network(block)))
    if cfg.init_from:
        warm_start(net, cfg.init_from)
    scheduler = make_scheduler(cfg.scheduler, prediction_type=cfg.prediction_type,
                               beta_schedule=cfg.beta_schedule)
    record = dataclasses.asdict(model_config(cfg, encoder))
    record["data"] = dataclasses.asdict(cfg.data)
    record["init_from"] = cfg.init_from
    meta = checkpoint_meta(APP, record, kind=KIND)
    if progress:
        print(f"mesh normals: {count_parameters(net) / 1e6:.2f} M parameters, "
              f"{len(data['x'])} objects x {cfg.data.views} views of {cfg.data.size}^2",
              flush=True)
    train(net, scheduler, data, cfg.train, loss_fn=make_loss(scheduler, cfg.p_uncond),
          config=meta, progress=progress)
    if is_main_process():
        save_colour_head(fit_colour_head(encoder, seed=cfg.train.seed, progress=progress),
                         cfg.train.out_dir)
    return Path(cfg.train.out_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m polydiff.apps.mesh.train_normals --config ...``: the same as ``polydiff mesh
    train`` (the config picks the model), with its one-line errors."""
    import sys

    from polydiff.cli import main as polydiff

    return polydiff(["mesh", "train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
