"""Load an atmos checkpoint through the app contract: network, scheduler, grid, normaliser."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch

from polydiff.apps.atmos.config import AtmosModelConfig, network_inputs
from polydiff.apps.atmos.normalise import Normaliser
from polydiff.apps.contract import load_app_checkpoint, named_or_folder, typed_config
from polydiff.runtime import UserError

APP = "atmos"
# Bundled priors by name (``--model NAME``): the weather prior is the app's default.
BUNDLED = {"weather": None, "turbulence": "turbulence",
           "turbulence_conditional": "turbulence_conditional"}


class AtmosModel(NamedTuple):
    """A loaded atmos checkpoint."""

    net: torch.nn.Module
    scheduler: object
    normaliser: Normaliser
    config: AtmosModelConfig
    folder: Path


def load_model(folder: str | os.PathLike | None, device: torch.device | str = "cpu",
               ) -> AtmosModel:
    """The checkpoint ``folder`` (default: the bundled weather prior) on ``device``.

    ``folder`` may also name a bundled checkpoint (``weather``, ``turbulence`` or
    ``turbulence_conditional``) when no folder of that name exists. A UserError when the
    folder is not an atmos checkpoint or its network does not fit the grid and variables of
    its normaliser (and, for a conditional network, the conditions).
    """
    folder = bundled_or_folder(folder)
    ckpt = load_app_checkpoint(APP, folder, device)
    cfg = typed_config(ckpt, AtmosModelConfig)
    norm = Normaliser.from_config(cfg.normaliser)
    c, h, w = norm.shape
    net_cfg = ckpt.net.config
    size = net_cfg.get("sample_size")
    size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    inputs = network_inputs(c, cfg.conditioning)
    if (net_cfg.get("in_channels"), net_cfg.get("out_channels")) != (inputs, c) or \
            size != (h, w):
        raise UserError(f"{ckpt.folder}: the network ({net_cfg.get('in_channels')} input "
                        f"channels, {size[0]}x{size[1]}) does not fit the normaliser ({c} "
                        f"variables, {h}x{w}" + (", and the conditions" if cfg.conditioning
                                                 else "") + ")")
    return AtmosModel(ckpt.net, ckpt.scheduler, norm, cfg, ckpt.folder)


def bundled_or_folder(folder: str | os.PathLike | None) -> Path | None:
    """The folder of a bundled prior named ``folder``, else ``folder`` itself."""
    return named_or_folder(APP, folder, BUNDLED)
