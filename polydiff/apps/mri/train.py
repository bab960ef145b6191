"""Training the mri prior: a diffusers UNet2DModel on (real, imag) images of phantoms or of a
fastMRI file, through the backbone's ``train`` (torchrun-ready: ``torchrun --nproc_per_node N
-m polydiff.cli mri train --config ...``)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from polydiff.apps.contract import checkpoint_meta, copy_weights, progress_enabled, seeded
from polydiff.apps.mri.config import DataConfig, MriConfig, Normalisation
from polydiff.apps.mri.data import fit_factor, to_model, training_kspace
from polydiff.apps.mri.model import APP
from polydiff.diffusion import TrainConfig, build_network, load_config, make_scheduler, train
from polydiff.runtime import UserError


@dataclass
class MriTrainConfig:
    """A whole training run, as written in ``configs/mri/<name>.yaml``."""

    network: dict = field(default_factory=lambda: {
        "type": "unet2d", "sample_size": 32, "in_channels": 2, "out_channels": 2,
        "block_out_channels": [32, 48, 48], "layers_per_block": 1, "norm_num_groups": 8,
        "down_block_types": ["DownBlock2D"] * 3, "up_block_types": ["UpBlock2D"] * 3})
    scheduler: str = "ddim"
    prediction_type: str = "epsilon"
    beta_schedule: str = "squaredcos_cap_v2"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    threads: int = 0  # torch CPU threads (0: leave torch's default)
    # A checkpoint folder (an mri prior of the same architecture, any grid size) whose
    # network weights start the run instead of the seeded initialisation: the UNet is
    # convolutional, so a prior trained at 32x32 is a warm start for 64x64.
    init_from: str | None = None


def load_train_config(source: str | os.PathLike | dict) -> MriTrainConfig:
    """A training config from YAML (or a dict), checked to fit the app."""
    cfg = load_config(source, MriTrainConfig)
    if cfg.network.get("in_channels") != 2 or cfg.network.get("out_channels") != 2:
        raise UserError("mri networks take and return 2 channels (real, imaginary)")
    if cfg.network.get("sample_size", cfg.data.size) != cfg.data.size:
        raise UserError(f"network.sample_size {cfg.network.get('sample_size')} differs from "
                        f"data.size {cfg.data.size}")
    return cfg


def warm_start(net: torch.nn.Module, folder: str) -> None:
    """Copy the network weights of the mri checkpoint ``folder`` into ``net`` (same layers
    and shapes required; the grid size may differ)."""
    from polydiff.apps.mri.model import load_model

    copy_weights(net, load_model(folder, "cpu").net.state_dict(), f"init_from {folder}")


def run_training(cfg: MriTrainConfig, *, progress: bool = True) -> Path:
    """Train the prior of ``cfg``; returns the exported checkpoint folder.

    The network's initial weights are a function of ``train.seed`` (``contract.seeded``).
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    net = seeded(cfg.train.seed, lambda: build_network(cfg.network))
    if cfg.init_from is not None:
        warm_start(net, cfg.init_from)
    scheduler = make_scheduler(cfg.scheduler, prediction_type=cfg.prediction_type,
                               beta_schedule=cfg.beta_schedule)
    kspace = training_kspace(cfg.data, progress=progress and progress_enabled())
    factor = fit_factor(kspace)
    images, _ = to_model(kspace, factor)
    app_cfg = MriConfig(size=cfg.data.size, normalisation=Normalisation(factor=factor),
                        data=cfg.data)
    meta = checkpoint_meta(APP, asdict(app_cfg))
    if cfg.init_from is not None:  # the record of what the run started from
        meta["warm_start"] = {"init_from": str(cfg.init_from)}
    train(net, scheduler, images.float(), cfg.train, progress=progress, config=meta)
    return Path(cfg.train.out_dir)
