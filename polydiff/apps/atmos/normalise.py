"""The one normalisation step of the atmos model, stored with the checkpoint.

x = (field − mean) / std with a per-pixel climatological mean (C, H, W) and one std per
variable (C,): anomalies are statistically homogeneous (periodic network), and linear
operators act on normalised fields as on physical ones up to an affine map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from polydiff.apps.atmos.config import NormaliserConfig
from polydiff.runtime import UserError


@dataclass(frozen=True)
class Normaliser:
    """Variables, per-pixel mean (C, H, W) and per-variable std (C,) in physical units."""

    variables: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, variables: tuple[str, ...], data: Tensor | np.ndarray,
            chunk: int = 1024) -> Normaliser:
        """Statistics of ``data`` (N, C, H, W) in physical units, float64 sums in chunks.

        The work stays on ``data``'s device; only the (C, H, W) result comes back.
        """
        data = torch.as_tensor(data)
        n = len(data)
        total = torch.zeros(data.shape[1:], dtype=torch.float64, device=data.device)
        for part in data.split(chunk):
            total += part.to(torch.float64).sum(0)
        mean = total / n
        squares = torch.zeros(data.shape[1], dtype=torch.float64, device=data.device)
        for part in data.split(chunk):
            squares += ((part.to(torch.float64) - mean) ** 2).sum((0, 2, 3))
        std = (squares / (n * data.shape[2] * data.shape[3])).sqrt()
        return cls(tuple(variables), mean.cpu().numpy(), std.cpu().numpy())

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.mean.shape)

    def encode(self, fields: Tensor) -> Tensor:
        """Physical (..., C, H, W) → normalised."""
        mean, std = self._stats(fields)
        return (fields - mean) / std

    def decode(self, x: Tensor) -> Tensor:
        """Normalised (..., C, H, W) → physical."""
        mean, std = self._stats(x)
        return x * std + mean

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        if tuple(like.shape[-3:]) != self.shape:
            raise UserError(f"fields of shape {tuple(like.shape[-3:])} do not match the model's "
                            f"(variables, latitude, longitude) = {self.shape}")
        mean = torch.as_tensor(self.mean, dtype=like.dtype, device=like.device)
        std = torch.as_tensor(self.std, dtype=like.dtype, device=like.device)[:, None, None]
        return mean, std

    def index(self, variable: str) -> int:
        """Channel of ``variable``, or a UserError naming the model's variables."""
        if variable not in self.variables:
            raise UserError(f"variable {variable!r} is not known to the model "
                            f"(it knows {', '.join(self.variables)})")
        return self.variables.index(variable)

    def to_config(self) -> NormaliserConfig:
        """The block stored in ``polydiff.json`` (config.normaliser)."""
        return NormaliserConfig(list(self.variables), self.mean.tolist(), self.std.tolist())

    @classmethod
    def from_config(cls, cfg: NormaliserConfig) -> Normaliser:
        return cls(tuple(cfg.variables), np.asarray(cfg.mean, dtype=np.float64),
                   np.asarray(cfg.std, dtype=np.float64))
