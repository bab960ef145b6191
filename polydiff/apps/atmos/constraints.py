"""Hard constraints of a super-resolved field: its coarse means and its physical bounds.

A member should (a) reproduce the coarse file's conservative means exactly (they are the
data, up to rounding) and (b) stay inside each variable's support (rain ≥ 0). Clipping at
0 after projecting onto the means breaks (a) (it only adds rain), and projecting after
clipping breaks (b); alternating the two (POCS: projections onto convex sets) converges to
a point of their intersection, which is non-empty whenever the data are physical.

:class:`ConstrainedX0` applies this to the clean estimate x̂₀ at every reverse step
(DDNM-style range-space correction, Wang et al. 2023): the network then fills in fine
scales that agree with the data throughout the reverse process, instead of receiving a
block-constant correction at the end.
"""

from __future__ import annotations

import torch
from torch import Tensor

from polydiff.diffusion import Operator, SamplerHook, StepState
from polydiff.physics.interpolation import ConservativePool


def feasible(x: Tensor, lower: Tensor | None, op: Operator | None, y: Tensor | None,
             iterations: int = 8) -> Tensor:
    """x (B, C, H, W) moved to satisfy x ≥ ``lower`` (C, H, W; −inf where unbounded) and
    op(x) = y, by alternating projections ending on op(x) = y (exact)."""
    if lower is None:
        return x if op is None else op.project(x, y)
    lower = lower.to(x)
    if op is None:
        return torch.maximum(x, lower)
    for _ in range(iterations):
        x = op.project(torch.maximum(x, lower), y)
    return x


def rescale_to_means(x: Tensor, lower: Tensor, op: ConservativePool, y: Tensor) -> Tensor:
    """Bounded channels of x (B, C, H, W) made exactly feasible: u = max(x − lower, 0) is
    scaled in each coarse block so that op(lower + u) = y (where the block holds no excess,
    the excess is spread by ``op.pinv``). Unbounded channels (lower = −inf) are returned
    as they are; data below op(lower) (unphysical) are met as closely as the bound allows.
    """
    bounded = torch.isfinite(lower).all(-1).all(-1)  # (C,)
    if not bounded.any():
        return x
    low = torch.where(torch.isfinite(lower), lower, torch.zeros_like(lower)).to(x)
    target = (y.to(x) - op.forward(low[None])).clamp_min(0.0)  # (1 or B, C, h, w)
    u = (x - low).clamp_min(0.0)
    have = op.forward(u)
    scale = torch.where(have > 0, target / have.clamp_min(1e-300), torch.zeros_like(have))
    up = scale.repeat_interleave(op.factor, dim=-2).repeat_interleave(op.factor, dim=-1)
    empty = op.pinv(torch.where(have > 0, torch.zeros_like(target), target)).expand_as(u)
    fixed = low + u * up + empty
    return torch.where(bounded[None, :, None, None].to(x.device), fixed, x)


class ConstrainedX0(SamplerHook):
    """x̂₀ ← the feasible point near x̂₀ (coarse means ``y`` of ``op``, lower bounds), every
    step; the scheduler then steps with the matching model output."""

    def __init__(self, op: Operator | None, y: Tensor | None, lower: Tensor | None,
                 iterations: int = 4) -> None:
        self.op, self.y, self.lower, self.iterations = op, y, lower, iterations

    def on_x0(self, state: StepState, x0: Tensor) -> Tensor:
        y = None if self.y is None else self.y.to(x0)
        return feasible(x0, self.lower, self.op, y, self.iterations)
