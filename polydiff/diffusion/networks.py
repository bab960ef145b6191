"""Networks from a config block: diffusers' UNets, or small polydiff nets where it has none.

A block is a dict such as ``{"type": "unet2d", "sample_size": 32, "in_channels": 2, ...}``;
every other key goes to the class's constructor, so the same block scales from a
0.1 M-parameter CPU model to a paper-size one. ``"periodic": true`` switches every
convolution to circular padding (periodic domains).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers import UNet1DModel, UNet2DConditionModel, UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, batch: int) -> Tensor:
    """Sinusoidal embedding (B, dim) of (possibly fractional) timesteps t (scalar or (B,))."""
    t = torch.as_tensor(t, dtype=torch.float32).reshape(-1).expand(batch)
    freqs = torch.exp(-math.log(10000.0) * torch.arange(dim // 2, device=t.device) / (dim // 2))
    args = t[:, None].to(freqs.device) * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=1)


class DenoisingMLP(ModelMixin, ConfigMixin):
    """An MLP denoiser for vectors (B, dim): small reference model for tests and toy data."""

    @register_to_config
    def __init__(self, dim: int = 2, hidden: int = 128, layers: int = 3, time_dim: int = 32):
        super().__init__()
        widths = [dim + time_dim] + [hidden] * layers
        self.body = nn.Sequential(*[m for a, b in zip(widths[:-1], widths[1:])
                                    for m in (nn.Linear(a, b), nn.SiLU())])
        self.head = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = timestep_embedding(t, self.config.time_dim, x.shape[0]).to(x)
        return self.head(self.body(torch.cat([x, emb], dim=1)))


class _ResBlock3D(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(groups, c_in), c_in), nn.Conv3d(c_in, c_out, 3,
                                                                                   padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(min(groups, c_out), c_out), nn.Conv3d(c_out, c_out,
                                                                                     3, padding=1)
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class UNet3D(ModelMixin, ConfigMixin):
    """A small 3-D convolutional U-Net (B, C, D, H, W) -> (B, C_out, D, H, W).

    diffusers has no plain 3-D UNet for volumes; this one follows UNet2DModel's shape:
    ResNet blocks with a time embedding, stride-2 down-sampling, nearest up-sampling.
    Every spatial size must be divisible by 2**(len(block_out_channels) - 1).
    """

    @register_to_config
    def __init__(self, in_channels: int = 1, out_channels: int = 1,
                 block_out_channels: Sequence[int] = (32, 64), norm_num_groups: int = 8,
                 time_embedding_dim: int = 64):
        super().__init__()
        chans = list(block_out_channels)
        self.time_mlp = nn.Sequential(nn.Linear(time_embedding_dim, time_embedding_dim),
                                      nn.SiLU(), nn.Linear(time_embedding_dim, time_embedding_dim))
        self.inp = nn.Conv3d(in_channels, chans[0], 3, padding=1)
        self.down = nn.ModuleList(_ResBlock3D(a, b, time_embedding_dim, norm_num_groups)
                                  for a, b in zip([chans[0]] + chans[:-1], chans))
        self.pool = nn.ModuleList(nn.Conv3d(c, c, 3, stride=2, padding=1) for c in chans[:-1])
        self.mid = _ResBlock3D(chans[-1], chans[-1], time_embedding_dim, norm_num_groups)
        self.up = nn.ModuleList(_ResBlock3D(2 * c, c_next, time_embedding_dim, norm_num_groups)
                                for c, c_next in zip(chans[::-1], chans[::-1][1:] + [chans[0]]))
        self.out = nn.Sequential(nn.GroupNorm(min(norm_num_groups, chans[0]), chans[0]),
                                 nn.SiLU(), nn.Conv3d(chans[0], out_channels, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.config.time_embedding_dim, x.shape[0])
                            .to(x))
        h, skips = self.inp(x), []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.pool):
                h = self.pool[i](h)
        h = self.mid(h, emb)
        for block in self.up:
            skip = skips.pop()
            if h.shape[2:] != skip.shape[2:]:
                h = F.interpolate(h, size=skip.shape[2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), emb)
        return self.out(h)


# The one explicit table of network types.
NETWORKS: dict[str, type] = {
    "unet1d": UNet1DModel,
    "unet2d": UNet2DModel,
    "unet2d_condition": UNet2DConditionModel,
    "unet3d": UNet3D,
    "mlp": DenoisingMLP,
}


def _circular_transposed(m: nn.Module) -> None:
    """Make a transposed convolution periodic (torch offers only zero padding for them).

    Its input is padded circularly by q entries per side and q·stride more is cropped from
    each side of the output (padding p -> p + q·stride): the output keeps its length and the
    entries near the ends receive the contributions of the wrapped-around inputs.
    """
    if getattr(m, "_polydiff_circular", False) or not any(
            k > 1 for k in m.kernel_size):
        return
    if any(d != 1 for d in m.dilation) or any(o != 0 for o in m.output_padding):
        raise ValueError("periodic transposed convolutions need dilation 1, output_padding 0")
    q = [max(math.ceil((k - 1 - p) / s), math.ceil(p / s), 0)
         for k, p, s in zip(m.kernel_size, m.padding, m.stride)]
    m.padding = tuple(p + s * e for p, s, e in zip(m.padding, m.stride, q))
    pad = [e for e in reversed(q) for _ in (0, 1)]
    m.register_forward_pre_hook(
        lambda _mod, args: (F.pad(args[0], pad, mode="circular"), *args[1:]))
    m._polydiff_circular = True


def make_periodic(net: nn.Module) -> nn.Module:
    """Switch every padded convolution of ``net`` to circular padding, in place (transposed
    convolutions, e.g. UNet1DModel's up-sampling, by :func:`_circular_transposed`)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and any(p > 0 for p in m.padding):
            m.padding_mode = "circular"
            m._reversed_padding_repeated_twice = [p for p in reversed(m.padding) for _ in (0, 1)]
        elif isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            _circular_transposed(m)
    return net


def build_network(block: dict) -> nn.Module:
    """Build a network from a config block (see the module docstring)."""
    block = dict(block)
    kind = block.pop("type", None)
    periodic = bool(block.pop("periodic", False))
    if kind not in NETWORKS:
        raise ValueError(f"unknown network type {kind!r}; choose from {sorted(NETWORKS)}")
    for key, value in block.items():
        if isinstance(value, list):
            block[key] = tuple(value)
    net = NETWORKS[kind](**block)
    return finish_network(net, {"type": kind, "periodic": periodic})


def finish_network(net: nn.Module, block: dict) -> nn.Module:
    """Apply the polydiff-only options of ``block`` and remember them for saving."""
    if block.get("periodic"):
        make_periodic(net)
    net.polydiff_network = {"type": block["type"], "periodic": bool(block.get("periodic"))}
    return net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


class Denoiser:
    """A model callable (x_t, t) -> output around a network.

    ``cond`` (B or 1, C_cond, ...) is concatenated to x_t on the channel axis (Marigold-style
    conditioning); other keyword arguments (``encoder_hidden_states`` for cross-attention,
    ``class_labels``) go to the network. diffusers' output objects are unwrapped.
    """

    def __init__(self, net: nn.Module, cond: Tensor | None = None, **net_kwargs) -> None:
        self.net, self.cond, self.net_kwargs = net, cond, net_kwargs

    def __call__(self, x_t: Tensor, t: Tensor) -> Tensor:
        inp = x_t
        if self.cond is not None:
            cond = self.cond.to(x_t)
            if cond.shape[0] != x_t.shape[0]:
                cond = cond.expand(x_t.shape[0], *cond.shape[1:])
            inp = torch.cat([x_t, cond], dim=1)
        t = torch.as_tensor(t, device=x_t.device)
        if t.dim() == 0:
            t = t.expand(x_t.shape[0])
        out = self.net(inp, t, **self.net_kwargs)
        return out.sample if hasattr(out, "sample") else out
