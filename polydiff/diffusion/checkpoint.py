"""Checkpoint folders: diffusers' layout plus ``polydiff.json``, safetensors only.

    folder/
      unet/config.json, unet/diffusion_pytorch_model.safetensors   (net.save_pretrained)
      scheduler/scheduler_config.json                              (scheduler.save_pretrained)
      polydiff.json       the network block and the app's own config (normalisation, grid …)

Further networks sit beside ``unet/`` under their own names. A folder holding any pickle
(.bin, .pt, .pth, .ckpt, .pkl) is refused: nothing a user hands over is ever unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import diffusers
import torch
from torch import nn

from polydiff.diffusion.networks import NETWORKS, finish_network
from polydiff.runtime import UserError

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"}
CONFIG_NAME = "polydiff.json"


class Checkpoint(NamedTuple):
    """A loaded checkpoint: the network, its scheduler and the app's config."""

    net: nn.Module
    scheduler: object
    config: dict


def save_checkpoint(folder: str | os.PathLike, net: nn.Module, scheduler, config: dict,
                    *, name: str = "unet", extra_nets: dict[str, nn.Module] | None = None) -> Path:
    """Write ``net`` (and ``extra_nets``), ``scheduler`` and ``config`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    networks = {}
    for key, module in {name: net, **(extra_nets or {})}.items():
        module.save_pretrained(folder / key, safe_serialization=True)
        block = getattr(module, "polydiff_network", None)
        networks[key] = block or {"type": _type_name(module), "periodic": False}
    scheduler.save_pretrained(folder / "scheduler")
    meta = {"networks": networks, "default_network": name, **config}
    (folder / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True, default=float))
    return folder


def _type_name(net: nn.Module) -> str:
    for key, cls in NETWORKS.items():
        if type(net) is cls:
            return key
    raise ValueError(f"network class {type(net).__name__} is not in NETWORKS")


def _entries(folder: Path, depth: int = 2, limit: int = 10_000) -> list[Path]:
    """Files of ``folder`` and of its sub-folders down to ``depth`` levels, at most ``limit``.

    A checkpoint is shallow (``unet/…``, ``scheduler/…``); a bounded look keeps ``--model /``
    from walking the disk.
    """
    found, level = [], [folder]
    for _ in range(depth):
        nxt = []
        for d in level:
            try:
                children = list(d.iterdir())
            except OSError:
                continue
            for child in children:
                if len(found) >= limit:
                    raise UserError(f"{folder} holds more than {limit} files; it is not a "
                                    "checkpoint folder")
                found.append(child)
                if child.is_dir() and not child.is_symlink():
                    nxt.append(child)
        level = nxt
    return found


def check_folder(folder: str | os.PathLike) -> Path:
    """The folder as a Path, after refusing missing folders, non-checkpoints and pickles."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"checkpoint folder not found: {folder}")
    if not (folder / CONFIG_NAME).is_file() and not (folder / "unet").is_dir():
        raise UserError(f"{folder} is not a checkpoint folder (no {CONFIG_NAME}, no unet/)")
    pickles = [p for p in _entries(folder) if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise UserError(f"refusing checkpoint {folder}: it holds a pickle file "
                        f"({pickles[0].relative_to(folder)}); only safetensors are loaded")
    return folder


def read_config(folder: str | os.PathLike) -> dict:
    """``polydiff.json`` of a checkpoint folder."""
    path = check_folder(folder) / CONFIG_NAME
    if not path.is_file():
        raise UserError(f"{folder} is not a polydiff checkpoint (no {CONFIG_NAME})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON: {err}") from err


def load_network(folder: str | os.PathLike, name: str | None = None,
                 device: torch.device | str = "cpu", *, meta: dict | None = None) -> nn.Module:
    """One network of a checkpoint folder, in eval mode on ``device``.

    ``meta`` stands in for the folder's ``polydiff.json`` (a plain diffusers folder).
    """
    config = meta if meta is not None else read_config(folder)
    name = name or config.get("default_network", "unet")
    block = config.get("networks", {}).get(name)
    if block is None or block.get("type") not in NETWORKS:
        raise UserError(f"checkpoint {folder} has no known network {name!r}")
    sub = Path(folder) / name
    if not any(sub.glob("*.safetensors")):
        raise UserError(f"checkpoint {folder}: no safetensors weights in {name}/")
    try:
        net = NETWORKS[block["type"]].from_pretrained(sub, use_safetensors=True,
                                                      low_cpu_mem_usage=False)
    except (OSError, ValueError, RuntimeError) as err:
        raise UserError(f"cannot load {sub}: {str(err).splitlines()[0]}") from err
    return finish_network(net, block).to(device).eval()


def load_scheduler(folder: str | os.PathLike):
    """The scheduler saved in ``folder/scheduler`` (its class from its own config)."""
    sub = check_folder(folder) / "scheduler"
    path = sub / "scheduler_config.json"
    if not path.is_file():
        raise UserError(f"checkpoint {folder} has no scheduler/scheduler_config.json")
    class_name = json.loads(path.read_text()).get("_class_name", "DDPMScheduler")
    cls = getattr(diffusers, class_name, None)
    if cls is None or not class_name.endswith("Scheduler"):
        raise UserError(f"checkpoint {folder}: unknown scheduler class {class_name!r}")
    return cls.from_pretrained(sub)


def load_checkpoint(folder: str | os.PathLike, device: torch.device | str = "cpu",
                    name: str | None = None) -> Checkpoint:
    """Network, scheduler and config of a checkpoint folder."""
    return Checkpoint(load_network(folder, name, device), load_scheduler(folder),
                      read_config(folder))
