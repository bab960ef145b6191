"""A loaded pde model (network, scheduler, typed config) through the app contract.

A checkpoint folder is the contract's layout (``unet/``, ``scheduler/``, ``polydiff.json``
of format 1 with ``"app": "pde"``, ``"kind": "wdno"`` or ``"superres"`` and the whole
:class:`~polydiff.apps.pde.config.PDEConfig`, fitted normalisation included, as
``"config"``). The bundled WDNO model is ``polydiff/weights/pde/`` and its
super-resolution model ``polydiff/weights/pde/superres/``. PDE-Refiner checkpoints have
``"kind": "refiner"`` and a :class:`~polydiff.apps.pde.config.RefinerConfig`; the bundled
ones are ``polydiff/weights/pde/refiner_<equation>/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from polydiff.apps.contract import load_app_checkpoint, typed_config
from polydiff.apps.pde.config import PDEConfig, RefinerConfig
from polydiff.runtime import UserError
from polydiff.weights import bundled_path

APP = "pde"
SUPERRES_DIR = "superres"


@dataclass
class PDEModel:
    """Everything needed to sample: ``net`` in eval mode, its scheduler and config."""

    net: nn.Module
    scheduler: object
    config: PDEConfig
    folder: Path | None

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device


def bundled_folder(kind: str = "wdno") -> Path:
    """The bundled checkpoint folder of ``kind`` (``wdno`` or ``superres``)."""
    return bundled_path(APP) / SUPERRES_DIR if kind == "superres" else bundled_path(APP)


def load_model(folder: Path | None, device: torch.device | str = "cpu",
               kind: str = "wdno") -> PDEModel:
    """Load a pde checkpoint folder of ``kind`` (the bundled one when ``folder`` is None).

    A plain diffusers folder (``unet/`` without ``polydiff.json``) takes the bundled
    model's config. Raises UserError when the folder is missing, belongs to another app or
    kind, holds pickles, or does not fit.
    """
    ckpt = load_app_checkpoint(APP, folder, device, kind=kind, bundled=bundled_folder(kind))
    config = typed_config(ckpt, PDEConfig)
    if config.kind != kind:
        raise UserError(f"{ckpt.folder} holds a {config.kind} model where a {kind} one is "
                        "needed")
    return PDEModel(ckpt.net, ckpt.scheduler, config, ckpt.folder)


def superres_for(model: PDEModel, folder: Path | None,
                 device: torch.device | str = "cpu") -> PDEModel:
    """The super-resolution model for ``model``: ``folder``; else ``superres/`` inside the
    WDNO model's folder when there is one; else the bundled one. Its grid must be the
    WDNO model's."""
    if folder is None and model.folder is not None \
            and (model.folder / SUPERRES_DIR / "polydiff.json").is_file():
        folder = model.folder / SUPERRES_DIR
    superres = load_model(folder, device, kind="superres")
    ours, theirs = model.config.data, superres.config.data
    if (ours.nx, ours.nt, ours.t_final, ours.nu) != (theirs.nx, theirs.nt, theirs.t_final,
                                                     theirs.nu):
        raise UserError(f"the super-resolution model {superres.folder} was trained on another "
                        f"grid (nx {theirs.nx}, nt {theirs.nt}, T {theirs.t_final}, nu "
                        f"{theirs.nu}) than the WDNO model (nx {ours.nx}, nt {ours.nt}, T "
                        f"{ours.t_final}, nu {ours.nu}); give a matching --superres-model")
    return superres


@dataclass
class RefinerModel:
    """A loaded PDE-Refiner (or MSE one-step) model: ``net`` in eval mode, its scheduler,
    typed config and folder."""

    net: nn.Module
    scheduler: object
    config: RefinerConfig
    folder: Path | None

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device


def bundled_refiner(equation: str = "ks") -> Path:
    """The bundled refiner checkpoint folder of ``equation`` (``ks`` or ``burgers``)."""
    return bundled_path(APP) / f"refiner_{equation}"


def load_refiner(folder: Path | None, device: torch.device | str = "cpu", *,
                 equation: str = "ks") -> RefinerModel:
    """A refiner checkpoint folder (the bundled one of ``equation`` when ``folder`` is None).

    Raises UserError when the folder is missing, holds pickles, belongs to another app or
    kind, or (bundled) no refiner of ``equation`` is bundled.
    """
    ckpt = load_app_checkpoint(APP, folder, device, kind="refiner",
                               bundled=bundled_refiner(equation))
    config = typed_config(ckpt, RefinerConfig)
    return RefinerModel(ckpt.net, ckpt.scheduler, config, ckpt.folder)
