"""Loading the mri prior through the app contract (bundled by default, or ``--model DIR``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch

from polydiff.apps.contract import load_app_checkpoint, named_or_folder, typed_config
from polydiff.apps.mri.config import MriConfig
from polydiff.runtime import UserError

APP = "mri"
# Bundled priors by name (``--model NAME``): grid64 is the default (fast on a CPU); grid128 is
# the ADS paper's knee grid, trained on a GPU (configs/mri/gpu128.yaml).
BUNDLED = {"grid64": None, "grid128": "grid128"}


class MriModel(NamedTuple):
    """A loaded prior over (real, imag) images of ``config.size``² in model units."""

    net: torch.nn.Module  # (B, 2, size, size), t -> the scheduler's prediction
    scheduler: object
    config: MriConfig
    folder: Path

    @property
    def size(self) -> int:
        return self.config.size

    @property
    def factor(self) -> float:
        return self.config.normalisation.factor

    @property
    def fit(self) -> str:
        """The rule its training data was brought to the grid with (``data.grid_fit``)."""
        return self.config.data.fit if self.config.data is not None else "fov"


def load_model(folder: str | os.PathLike | None, device: torch.device | str = "cpu") -> MriModel:
    """The checkpoint in ``folder`` (the bundled 64x64 prior when None; ``grid64`` or
    ``grid128`` name a bundled prior when no folder of that name exists), on ``device``."""
    ckpt = load_app_checkpoint(APP, named_or_folder(APP, folder, BUNDLED), device)
    cfg = typed_config(ckpt, MriConfig)
    net_cfg = ckpt.net.config
    if (net_cfg.get("in_channels"), net_cfg.get("out_channels")) != (2, 2):
        raise UserError(f"{ckpt.folder}: an mri network takes and returns 2 channels (real, "
                        f"imaginary), this one {net_cfg.get('in_channels')} -> "
                        f"{net_cfg.get('out_channels')}")
    sample = net_cfg.get("sample_size")
    if sample not in (None, cfg.size, [cfg.size, cfg.size], (cfg.size, cfg.size)):
        raise UserError(f"{ckpt.folder}: the network's sample size {sample} is not the "
                        f"config's size {cfg.size}")
    return MriModel(ckpt.net, ckpt.scheduler, cfg, ckpt.folder)
