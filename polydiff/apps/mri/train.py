"""Training the mri prior: a diffusers UNet2DModel on (real, imag) images of phantoms or of a
fastMRI file, through the backbone's ``train`` (torchrun-ready: ``torchrun --nproc_per_node N
-m polydiff.cli mri train --config ...``)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from polydiff.apps.mri.data import DataConfig, fit_factor, to_model, training_kspace
from polydiff.diffusion import (
    TrainConfig,
    build_network,
    count_parameters,
    load_config,
    make_scheduler,
    train,
)
from polydiff.runtime import UserError

NORMALISATION = "centre_column_rms"


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


def run_training(config: str | os.PathLike | dict, *, out_dir: str | None = None,
                 steps: int | None = None, progress: bool = True) -> Path:
    """Train from a YAML config; returns the exported checkpoint folder."""
    cfg = load_config(config, MriTrainConfig)
    if out_dir is not None:
        cfg.train.out_dir = str(out_dir)
    if steps is not None:
        cfg.train.steps = steps
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.network.get("in_channels") != 2 or cfg.network.get("out_channels") != 2:
        raise UserError("mri networks take and return 2 channels (real, imaginary)")
    net = build_network(cfg.network)
    scheduler = make_scheduler(cfg.scheduler, prediction_type=cfg.prediction_type,
                               beta_schedule=cfg.beta_schedule)
    kspace = training_kspace(cfg.data)
    factor = fit_factor(kspace)
    images, _ = to_model(kspace, factor)
    meta = {"app": "mri", "size": cfg.data.size, "parameters": count_parameters(net),
            "normalisation": {"statistic": NORMALISATION, "factor": factor},
            "data": asdict(cfg.data)}
    train(net, scheduler, images.float(), cfg.train, config=meta, progress=progress)
    return Path(cfg.train.out_dir)
