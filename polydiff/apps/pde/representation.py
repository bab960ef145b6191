"""What the diffusion model sees: a whole trajectory as one normalised multi-channel image.

Three physical channels over the (t, x) grid of the future states t_1..t_nt:

- ``u``: the state,
- ``f``: the forcing,
- ``u0``: the initial state repeated along time (a condition that is always known).

In the ``wavelet`` domain (WDNO) each physical channel becomes 4^levels sub-band channels
of shape (nt, nx) / 2^levels (:mod:`polydiff.physics.wavelets`); in the ``physical`` domain
(the ablation) the channels stay as they are. Every sample channel is divided by one
scale stored with the checkpoint (no shift, so encode/decode are linear maps and the
measurement operators of control can differentiate through them).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from polydiff.physics.wavelets import dwt, idwt

FIELDS = ("u", "f", "u0")
DOMAINS = ("wavelet", "physical")


class Fields(NamedTuple):
    """Physical fields of a batch: ``u`` and ``f`` (B, nt, nx) at t_1..t_nt, ``u0`` (B, nx)."""

    u: Tensor
    f: Tensor
    u0: Tensor


@dataclass
class Layout:
    """How fields map to the sample tensor; saved in the checkpoint's ``polydiff.json``.

    Attributes:
        domain: ``wavelet`` (WDNO) or ``physical`` (ablation).
        family: PyWavelets family (wavelet domain only).
        levels: wavelet levels (wavelet domain only).
        scale: one divisor per sample channel (length :attr:`channels`), from training data.
        time_pad: time steps mirrored onto each end of the time axis before the transform
            and cut off after it. The transform is periodic, so without it a filter longer
            than haar couples t_1 with t_nt; a pad at least as long as the filter keeps
            every coefficient that touches a real step free of the wrap.
    """

    domain: str = "wavelet"
    family: str = "bior2.4"
    levels: int = 1
    scale: list[float] = field(default_factory=list)
    time_pad: int = 0

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"unknown domain {self.domain!r} (choose from {DOMAINS})")
        if self.time_pad < 0:
            raise ValueError(f"time_pad must be >= 0, got {self.time_pad}")

    @property
    def bands(self) -> int:
        """Sample channels per physical channel."""
        return 4**self.levels if self.domain == "wavelet" else 1

    @property
    def channels(self) -> int:
        """Sample channels in all."""
        return len(FIELDS) * self.bands

    @property
    def factor(self) -> int:
        """How much coarser the sample grid is than the physical (t, x) grid."""
        return 2**self.levels if self.domain == "wavelet" else 1

    def group(self, name: str) -> slice:
        """Sample channels of the physical channel ``name`` (one of ``u``, ``f``, ``u0``)."""
        k = FIELDS.index(name)
        return slice(k * self.bands, (k + 1) * self.bands)

    def sample_shape(self, nt: int, nx: int) -> tuple[int, int, int]:
        """``(C, h, w)`` of one sample for ``nt`` future steps on ``nx`` points."""
        _check_time_pad(self.time_pad, nt)
        return (self.channels, (nt + 2 * self.time_pad) // self.factor, nx // self.factor)

    def _scale(self, like: Tensor) -> Tensor:
        if len(self.scale) != self.channels:
            raise ValueError(f"layout has {len(self.scale)} scales for {self.channels} channels")
        return _scale_tensor(tuple(self.scale), like.dtype, like.device)

    def field_rms(self, name: str) -> float:
        """RMS over the training data of the physical channel ``name``, from the scales.

        The scales are the RMS of each sub-band; an orthonormal transform (haar, db, sym;
        the physical domain) keeps sums of squares, so the field's mean square is the mean
        of its bands' (for biorthogonal families such as bior2.4 it is close to it).
        """
        if len(self.scale) != self.channels:
            raise ValueError(f"layout has {len(self.scale)} scales for {self.channels} channels")
        bands = self.scale[self.group(name)]
        return math.sqrt(sum(s * s for s in bands) / len(bands))

    def raw(self, fields: Fields) -> Tensor:
        """Unnormalised sample ``(B, C, h, w)`` of physical fields."""
        u0 = fields.u0[:, None, :].expand_as(fields.u)
        x = _mirror_time(torch.stack([fields.u, fields.f, u0], dim=1), self.time_pad)
        return dwt(x, self.family, self.levels) if self.domain == "wavelet" else x

    def encode(self, fields: Fields) -> Tensor:
        """Normalised sample ``(B, C, nt/factor, nx/factor)`` of physical fields."""
        x = self.raw(fields)
        return x / self._scale(x)

    def decode_all(self, sample: Tensor) -> Tensor:
        """Physical channels ``(B, 3, nt, nx)`` (u, f, u0 repeated) of a normalised sample."""
        x = sample * self._scale(sample)
        x = idwt(x, self.family, self.levels) if self.domain == "wavelet" else x
        p = self.time_pad
        return x[:, :, p:x.shape[2] - p] if p else x

    def decode(self, sample: Tensor) -> Fields:
        """Physical fields of a normalised sample; ``u0`` is read at the first time row."""
        x = self.decode_all(sample)
        return Fields(x[:, 0], x[:, 1], x[:, 2, 0])

    def fit_scale(self, fields: Fields, floor: float = 1e-3) -> None:
        """Set every channel's scale to its RMS over a training batch (at least ``floor``
        times the largest, so that nearly empty sub-bands are not blown up)."""
        rms = self.raw(fields).pow(2).mean(dim=(0, 2, 3)).sqrt()
        self.scale = rms.clamp_min(floor * float(rms.max())).tolist()

    def band_weights(self, power: float) -> Tensor:
        """Loss weight (C,) of each sample channel: ``scale ** power``, normalised to mean 1
        within each physical field's group (power 0: all ones; power 2: weights that make
        the loss over a group the physical-domain MSE for an orthonormal family)."""
        if len(self.scale) != self.channels:
            raise ValueError(f"layout has {len(self.scale)} scales for {self.channels} channels")
        w = torch.as_tensor(self.scale, dtype=torch.float64) ** power
        for name in FIELDS:
            group = self.group(name)
            w[group] = w[group] / w[group].mean()
        return w.float()

    def to_dict(self) -> dict:
        return asdict(self)


def _check_time_pad(pad: int, nt: int) -> None:
    if pad > nt:
        raise ValueError(f"time_pad {pad} is longer than the {nt} time steps")


def _mirror_time(x: Tensor, pad: int) -> Tensor:
    """``(B, C, nt, nx)`` with ``pad`` steps mirrored onto each end of the time axis
    (symmetric, edge step repeated: t_pad .. t_1, t_1 .. t_nt, t_nt .. t_(nt-pad+1))."""
    if not pad:
        return x
    _check_time_pad(pad, x.shape[2])
    return torch.cat([x[:, :, :pad].flip(2), x, x[:, :, -pad:].flip(2)], dim=2)


@functools.lru_cache(maxsize=16)
def _scale_tensor(scale: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """The scales as a (C, 1, 1) tensor on ``device``, made once per layout and device (so
    that decoding inside a sampling loop copies nothing from the host)."""
    return torch.as_tensor(scale, dtype=dtype, device=device)[:, None, None]


def known_mask(layout: Layout, shape: tuple[int, ...], *, forcing_known: bool,
               device: torch.device | str = "cpu") -> Tensor:
    """Boolean mask ``(1, C, 1, 1)`` on ``device`` of the sample channels fixed by the
    conditions."""
    mask = torch.zeros(1, shape[1], 1, 1, dtype=torch.bool, device=device)
    mask[:, layout.group("u0")] = True
    if forcing_known:
        mask[:, layout.group("f")] = True
    return mask
