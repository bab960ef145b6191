"""WDNO sampling: whole trajectories from their conditions, level by level.

Everything a step needs is on the model's device before the reverse loop starts (the known
values and their mask, the normalisation, the wavelet filters), so on CUDA no step waits
for a copy to or from the host.

Stages of :func:`simulate_fields`:

1. subsample the conditions (u0, forcing) to the base grid;
2. sample the base model, the known channels (u0; the forcing when given) replaced at every
   step by the backbone's ``ReplaceKnown`` hook with their clean values (the model was
   trained seeing them clean, ``denoising_loss(..., known_clean=True)``: exact conditioning);
3. for each finer level: sample the super-resolution model conditioned on the previous
   level's coefficients repeated 2x, the known channels of that level replaced again.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import Tensor

from polydiff.apps.pde.config import PDEConfig
from polydiff.apps.pde.dataset import coarsen
from polydiff.apps.pde.model import PDEModel
from polydiff.apps.pde.representation import Fields, known_mask
from polydiff.apps.pde.train import upsample_condition
from polydiff.diffusion.guidance import ReplaceKnown
from polydiff.diffusion.networks import Denoiser
from polydiff.diffusion.sampling import ProgressBar, SamplerHook, sample


def conditions(u0: Tensor, forcing: Tensor | None, nt: int) -> Fields:
    """Known fields of a batch: u0 (B, n), the forcing (B, nt, n) or zeros, u unknown (zeros)."""
    f = forcing if forcing is not None else torch.zeros(u0.shape[0], nt, u0.shape[1]).to(u0)
    return Fields(torch.zeros_like(f), f, u0)


def sample_level(model: PDEModel, known: Fields, *, forcing_known: bool, steps: int,
                 generator: torch.Generator | None, cond: Tensor | None = None,
                 hooks: Sequence[SamplerHook] = (), progress: bool = False,
                 desc: str = "wdno") -> Tensor:
    """One reverse process of ``model`` on the grid of ``known``.

    Args:
        known: conditions on this level (u0 (B, n); f (B, nt, n) read when ``forcing_known``).
        cond: super-resolution condition (B, C, h, w) or None.
        hooks: further hooks after ``ReplaceKnown`` (guidance, logging).
    Returns:
        The normalised sample (B, C, h, w); decode it with ``model.config.layout``.
    """
    layout = model.config.layout
    values = layout.encode(known).to(model.device)  # (B, C, h, w); only known groups are read
    mask = known_mask(layout, values.shape, forcing_known=forcing_known, device=model.device)
    hooks = [ReplaceKnown(mask, values, noised=False), *hooks]
    hooks += [ProgressBar(desc)] if progress else []
    step_kwargs = {}
    if "eta" in inspect.signature(model.scheduler.step).parameters:
        step_kwargs["eta"] = model.config.sampling.eta
    denoiser = Denoiser(model.net, cond)
    out = sample(denoiser, model.scheduler, values.shape, steps=steps, generator=generator,
                 hooks=hooks, device=model.device, step_kwargs=step_kwargs)
    return out.sample.detach()


def sampling_bytes(config: PDEConfig, batch: int, level: int, *, grad: bool = False) -> float:
    """Estimated peak bytes of one reverse step of ``batch`` samples ``level`` times 2x
    finer than the base (float32): the U-Net's skip activations and working tensors at every
    resolution, attention maps where there are attention blocks, and the sample itself,
    doubled for the allocator's slack and temporaries (64 bundled members at level 2: 672 MiB
    estimated, 624 MiB measured peak); times 4 when the step keeps a graph for guidance."""
    channels, h, w = config.layout.sample_shape(config.data.nt * 2**level,
                                                (config.data.nx + 1) * 2**level)
    block = config.network_block()
    widths = block.get("block_out_channels", [64])
    per_block = block.get("layers_per_block", 2) + 1
    pixels = float(h) * w
    per_item = (3 * channels + 6 * widths[0]) * pixels
    for k, (width, kind) in enumerate(zip(widths, block.get("down_block_types", []))):
        at = pixels / 4**k
        per_item += 2 * width * per_block * at
        if "Attn" in kind:
            per_item += 2 * at * at
    return 2 * 4.0 * batch * per_item * (4 if grad else 1)


def simulate_fields(base: PDEModel, u0: Tensor, forcing: Tensor | None, *, level: int = 0,
                    superres: PDEModel | None = None, steps: int | None = None,
                    generator: torch.Generator | None = None, progress: bool = False) -> Fields:
    """Trajectories on the model grid ``level`` times 2x finer than the base.

    Args:
        u0: (B, n) initial states on the level's model grid (n = nx + 1, wall included).
        forcing: (B, nt, n) forcing at t_0..t_{nt-1} on the level's grid, or None (sampled).
        superres: the super-resolution model (needed when ``level > 0``).
    Returns:
        Fields on the level's grid; ``u0`` is read back from the decoded sample.
    """
    if level > 0 and superres is None:
        raise ValueError("finer grids than the base need a super-resolution model")
    nt = base.config.data.nt * 2**level
    fine = conditions(u0, forcing, nt)
    known = coarsen(fine, level)
    steps = steps or base.config.sampling.steps
    x = sample_level(base, known, forcing_known=forcing is not None, steps=steps,
                     generator=generator, progress=progress, desc="wdno")
    fields = base.config.layout.decode(x)
    for lvl in range(1, level + 1):
        known = coarsen(fine, level - lvl)
        cond = upsample_condition(superres.config.layout.encode(fields))
        x = sample_level(superres, known, forcing_known=forcing is not None, steps=steps,
                         generator=generator, cond=cond, progress=progress,
                         desc=f"superres {lvl}/{level}")
        fields = superres.config.layout.decode(x)
    return fields
