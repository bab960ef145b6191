"""Training fields of the atmos prior: simulated on the training device, optionally cached.

Under torchrun the flows are split between the processes (block b runs on rank
b mod world size) and shared by broadcasts, so every process ends with the same fields and
none repeats another's simulation. A safetensors cache (``--data-cache``) keeps them for
the next run: it is read by rank 0 and shared the same way.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
import torch.distributed as dist

from polydiff.apps.atmos.config import AtmosConfig
from polydiff.diffusion.distributed import ProcessGroup
from polydiff.physics.atmos_fields import initial_states, synthetic_fields
from polydiff.runtime import UserError, atomic_output, make_generator

CACHE_KEY = "atmos_fields"


def cache_key(cfg: AtmosConfig) -> str:
    """What the fields depend on: the flow and box settings, and the data's size and seed."""
    data = cfg.data
    return json.dumps({"fields": dataclasses.asdict(cfg.fields), "seed": data.seed,
                       "trajectories": data.trajectories, "snapshots": data.snapshots,
                       "variables": list(cfg.fields.variables)}, sort_keys=True)


def read_cache(path: Path, cfg: AtmosConfig, device: torch.device) -> torch.Tensor | None:
    """The cached fields (N, C, H, W) on ``device``, or None when absent or made otherwise."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            if (handle.metadata() or {}).get("key") != cache_key(cfg):
                return None
            return handle.get_tensor(CACHE_KEY)
    except (SafetensorError, OSError) as err:
        raise UserError(f"data cache {path} is not a readable safetensors file: {err}") from err


def write_cache(path: Path, fields: torch.Tensor, cfg: AtmosConfig) -> None:
    """Write the fields (N, C, H, W) as safetensors, whole or not at all."""
    from safetensors.torch import save_file

    if path.is_dir():
        raise UserError(f"data cache {path} is a folder")
    with atomic_output(path) as tmp:
        save_file({CACHE_KEY: fields.contiguous().cpu()}, str(tmp),
                  metadata={"key": cache_key(cfg), "device": fields.device.type})


def training_fields(cfg: AtmosConfig, group: ProcessGroup, *, cache: Path | None = None,
                    progress: bool = False) -> tuple[torch.Tensor, torch.Generator]:
    """Physical fields (N, C, H, W) float32 on ``group.device``, and the data generator.

    N = trajectories × snapshots (trajectory after trajectory). The generator has drawn
    the flows' initial states (also when the fields come from the cache), so what is drawn
    from it next does not depend on the cache.
    """
    data, size = cfg.data, cfg.fields.size
    generator = make_generator(data.seed, group.device)
    w0, forcing = initial_states(data.trajectories, cfg.fields, generator)
    fields = read_cache(cache, cfg, group.device) if cache is not None and group.is_main \
        else None
    if _from_main(fields is not None, group):
        if not group.is_main:
            fields = torch.empty(data.trajectories * data.snapshots, len(cfg.fields.variables),
                                 size, size, device=group.device)
        if group.world_size > 1:
            dist.broadcast(fields, src=0)
        return fields, generator
    n_blocks = -(-data.trajectories // data.block)
    mine = range(group.rank, n_blocks, group.world_size)
    flows = synthetic_fields(w0, forcing, data.snapshots, cfg.fields, block=data.block,
                             blocks=set(mine), progress=progress)
    for b in range(n_blocks) if group.world_size > 1 else ():
        dist.broadcast(flows[b * data.block:(b + 1) * data.block], src=b % group.world_size)
    fields = flows.reshape(-1, len(cfg.fields.variables), size, size)
    if cache is not None and group.is_main:
        write_cache(cache, fields, cfg)
    return fields, generator


def _from_main(flag: bool, group: ProcessGroup) -> bool:
    """Rank 0's ``flag``, in every process."""
    if group.world_size == 1:
        return flag
    box = [flag]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])
