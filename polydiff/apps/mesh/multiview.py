"""The multi-view normal model (Direct2.5-style): V normal maps of one object denoised jointly.

The network is a plain diffusers ``UNet2DConditionModel`` run on the B·V views of B objects
as one batch of images, with three additions that need no new weights layout:

- **joint self-attention**: :class:`JointViewAttnProcessor` on every attention layer makes
  each self-attention attend over the tokens of all V views of its object (the (B·V, N, C)
  tokens are regrouped to (B, V·N, C)); cross-attention is left alone;
- **camera embedding**: ``class_embed_type="projection"`` turns (sin el, cos el, sin az,
  cos az) of each view through an MLP that is added to the time embedding;
- **text**: the prompt's sentence embedding (B, D) is the one key/value token of the
  cross-attention (a zero vector is the unconditional prompt of classifier-free guidance)
  and, for networks built with ``text_in_time=True``, is also concatenated to the camera
  features of the projection embedding, so it reaches every ResNet block through the time
  embedding (with one token, cross-attention can only add a text-dependent bias at the
  attention levels; the time embedding modulates every level).

Each view is 4 channels: the world-space unit normal (x, y, z) where the object is and 0 on
the background, and the coverage mask scaled to [-1, 1]. The processors hold no weights, so a
checkpoint is an ordinary diffusers folder; :func:`enable_joint_views` re-installs them after
loading.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from torch import Tensor, nn

CHANNELS = 4           # normal x, y, z and mask
CAMERA_FEATURES = 4    # sin/cos of elevation and azimuth


class JointViewAttnProcessor:
    """Self-attention across the V views of each object; other attention unchanged.

    Called by diffusers' ``Attention`` with ``num_views`` from ``cross_attention_kwargs``.
    """

    def __init__(self) -> None:
        self.inner = AttnProcessor2_0()

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, temb: Tensor | None = None,
                 num_views: int = 1) -> Tensor:
        if encoder_hidden_states is not None or num_views <= 1 or hidden_states.dim() != 3:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        bv, n, c = hidden_states.shape                      # (B·V, N, C) tokens per view
        if bv % num_views:
            raise ValueError(f"batch {bv} is not a multiple of {num_views} views")
        joint = hidden_states.reshape(bv // num_views, num_views * n, c)   # (B, V·N, C)
        out = self.inner(attn, joint, None, attention_mask, temb)
        return out.reshape(bv, n, c)


def enable_joint_views(net: nn.Module) -> nn.Module:
    """Install :class:`JointViewAttnProcessor` on every attention layer of ``net`` (in place)."""
    net.set_attn_processor(JointViewAttnProcessor())
    return net


def camera_features(elevation_deg: Tensor, azimuth_deg: Tensor) -> Tensor:
    """(...,) elevations and azimuths in degrees -> (..., 4) [sin el, cos el, sin az, cos az]."""
    el, az = torch.deg2rad(torch.as_tensor(elevation_deg, dtype=torch.float32)), \
        torch.deg2rad(torch.as_tensor(azimuth_deg, dtype=torch.float32))
    el, az = torch.broadcast_tensors(el, az)
    return torch.stack([el.sin(), el.cos(), az.sin(), az.cos()], dim=-1)


def network_block(size: int, text_dim: int, channels: tuple[int, ...] = (32, 64, 96),
                  attention_levels: int = 2, layers_per_block: int = 1, heads: int = 4,
                  norm_groups: int = 8, text_in_time: bool = False) -> dict:
    """A ``build_network`` block of the multi-view UNet: attention on the coarsest
    ``attention_levels`` levels (and the middle block), camera projection embedding (of the
    camera features and, with ``text_in_time``, the text embedding too)."""
    levels = len(channels)
    if not 1 <= attention_levels <= levels:
        raise ValueError(f"attention_levels must lie in [1, {levels}]")
    if size % 2 ** (levels - 1):
        raise ValueError(f"size {size} is not divisible by 2**{levels - 1}")
    down = ["DownBlock2D"] * (levels - attention_levels) + \
        ["CrossAttnDownBlock2D"] * attention_levels
    up = ["CrossAttnUpBlock2D"] * attention_levels + ["UpBlock2D"] * (levels - attention_levels)
    return {"type": "unet2d_condition", "sample_size": size, "in_channels": CHANNELS,
            "out_channels": CHANNELS, "block_out_channels": list(channels),
            "down_block_types": down, "up_block_types": up,
            "layers_per_block": layers_per_block, "attention_head_dim": heads,
            "norm_num_groups": norm_groups, "cross_attention_dim": text_dim,
            "class_embed_type": "projection",
            "projection_class_embeddings_input_dim":
                CAMERA_FEATURES + (text_dim if text_in_time else 0)}


def text_in_time(net: nn.Module) -> bool:
    """Whether ``net`` (maybe DDP-wrapped) takes the text in its projection embedding."""
    config = getattr(getattr(net, "module", net), "config", None)
    wide = getattr(config, "projection_class_embeddings_input_dim", None)
    return wide is not None and int(wide) > CAMERA_FEATURES


class MultiViewDenoiser:
    """A model callable (x_t (B, V, 4, H, W), t) -> (B, V, 4, H, W) for the sampler and loss.

    Args:
        net: the UNet (with joint-view processors, possibly wrapped in DDP).
        text: (B, D) or (1, D) prompt embeddings (zeros: unconditional).
        cameras: (B, V, 4) or (1, V, 4) camera features of the views.
    """

    def __init__(self, net: nn.Module, text: Tensor, cameras: Tensor) -> None:
        self.net, self.text, self.cameras = net, text, cameras

    def __call__(self, x_t: Tensor, t: Tensor) -> Tensor:
        B, V = x_t.shape[:2]
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(B)
        text = self.text.to(x_t).expand(B, -1)
        cams = self.cameras.to(x_t).expand(B, V, -1)
        if text_in_time(self.net):
            cams = torch.cat([cams, text[:, None].expand(B, V, -1)], dim=-1)  # (B, V, 4 + D)
        out = self.net(x_t.flatten(0, 1), t.repeat_interleave(V),
                       encoder_hidden_states=text.repeat_interleave(V, dim=0)[:, None],
                       class_labels=cams.flatten(0, 1),
                       cross_attention_kwargs={"num_views": V})
        out = out.sample if hasattr(out, "sample") else out
        return out.reshape(x_t.shape)
