"""Data parallelism through torchrun: the same code runs with one or many processes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    """Where this process stands: its rank, the world size and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def local_device(device: str = "auto") -> torch.device:
    """This process's device: its own GPU (``LOCAL_RANK`` under torchrun) when ``device``
    asks for CUDA (or is ``auto`` and CUDA is there), else the CPU."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if use_cuda
                        else "cpu")


def setup(device: str = "auto") -> ProcessGroup:
    """Join the torchrun process group if there is one (gloo on CPU, NCCL on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dev = local_device(device)
    use_cuda = dev.type == "cuda"
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return ProcessGroup(rank, world, dev)


def barrier(group: ProcessGroup) -> None:
    if group.world_size > 1:
        dist.barrier()


def teardown(group: ProcessGroup) -> None:
    """Leave the process group (after a barrier, so no collective is still in flight)."""
    if group.world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
