"""A loaded pde model (network, scheduler, layout, grid) and where the bundled ones live.

A checkpoint folder is the backbone's layout (``unet/``, ``scheduler/``, ``polydiff.json``);
``polydiff.json`` holds the whole :class:`~polydiff.apps.pde.config.PDEConfig`, fitted
normalisation included. The bundled WDNO model is ``polydiff/weights/pde/`` and its
super-resolution model ``polydiff/weights/pde/superres/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from polydiff.apps.pde.config import PDEConfig
from polydiff.diffusion.checkpoint import load_checkpoint
from polydiff.diffusion.config import from_dict
from polydiff.runtime import UserError
from polydiff.weights import bundled_path

SUPERRES_DIR = "superres"


@dataclass
class PDEModel:
    """Everything needed to sample: ``net`` in eval mode, its scheduler and config."""

    net: nn.Module
    scheduler: object
    config: PDEConfig
    folder: Path

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device


def default_folder() -> Path:
    """The bundled WDNO checkpoint folder."""
    return bundled_path("pde")


def load_model(folder: Path | None, device: torch.device | str = "cpu",
               kind: str = "wdno") -> PDEModel:
    """Load a pde checkpoint folder (the bundled one when ``folder`` is None).

    Raises UserError when the folder is missing, is not a pde checkpoint of ``kind``, or
    holds pickles.
    """
    folder = Path(folder) if folder is not None else default_folder()
    if kind == "superres" and folder == default_folder():
        folder = folder / SUPERRES_DIR
    if not folder.is_dir():
        raise UserError(f"model folder not found: {folder}")
    ckpt = load_checkpoint(folder, device=device)
    if ckpt.config.get("app") != "pde":
        raise UserError(f"{folder} is not a pde checkpoint (app = {ckpt.config.get('app')!r})")
    try:
        config = from_dict(ckpt.config["pde"], PDEConfig, where=f"{folder}/polydiff.json:pde")
    except (KeyError, ValueError) as err:
        raise UserError(f"{folder}: bad pde config ({err})") from err
    if config.kind != kind:
        raise UserError(f"{folder} holds a {config.kind} model where a {kind} one is needed")
    return PDEModel(ckpt.net, ckpt.scheduler, config, folder)


def superres_for(model: PDEModel, folder: Path | None,
                 device: torch.device | str = "cpu") -> PDEModel:
    """The super-resolution model: ``folder``, else ``superres/`` inside the WDNO folder."""
    folder = folder if folder is not None else model.folder / SUPERRES_DIR
    if not folder.is_dir():
        raise UserError(f"no super-resolution model in {folder}; finer grids need one")
    return load_model(folder, device, kind="superres")
