"""The text -> triplane generator (TriplaneTurbo-style): six latent planes in 4 DDIM steps.

The latent of one object is six planes of C x R x R (a geometry triplane and a texture
triplane, order xy, xz, yz each), shaped (B, 6, C, R, R). A diffusers
``UNet2DConditionModel`` denoises the B·6 planes as one batch of images with

- **joint self-attention across the six planes**: the mesh app's
  :class:`~polydiff.apps.mesh.multiview.JointViewAttnProcessor` with ``num_views=6`` (the
  planes of one object are its "views"), so every plane sees the others at every layer;
- **plane identity**: ``num_class_embeds=6``, a learned embedding of the plane index added
  to the time embedding;
- **text**: the prompt's sentence embedding (B, D) as the one cross-attention token
  (projected by ``encoder_hid_proj`` when D differs from the UNet's cross-attention width);
  a new small UNet also adds it to the time embedding (``addition_embed_type="text"``).

The backbone's :func:`polydiff.diffusion.sample` runs the 4 steps (DDIM, trailing spacing:
timesteps 999, 749, 499, 249); the sampler never owns the network. :class:`PlaneDecoder`
(a small convolutional up-sampler, the analogue of TriplaneTurbo's VAE decoder) turns the
planes into feature planes read by :class:`~polydiff.geometry.triplane.TriplaneField`.

Checkpoint folder (contract format 1, kind ``triplane``)::

    unet/        UNet2DConditionModel (LoRA merged when it was adapter-trained)
    decoder/     PlaneDecoder (its config + safetensors)
    scheduler/   DDIMScheduler (trailing)
    polydiff.json  {"app": "mesh", "kind": "triplane", "config": TriplaneConfig, ...}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from polydiff.apps.mesh.multiview import enable_joint_views
from polydiff.geometry.triplane import TriplaneField
from polydiff.runtime import UserError

APP, KIND = "mesh", "triplane"
PLANES = 6           # geometry xy, xz, yz, then texture xy, xz, yz
DECODER = "decoder"  # the sub-folder of the plane decoder
DEFAULT_RESOLUTION = 64


@dataclass
class TriplaneConfig:
    """What a triplane checkpoint keeps besides its weights."""

    latent_channels: int = 4      # C of each latent plane
    plane_size: int = 16          # R of each latent plane
    steps: int = 4                # sampling steps (DDIM trailing: 999, 749, 499, 249)
    text_encoder: str = "all-MiniLM-L6-v2"
    text_dim: int = 384
    resolution: int = DEFAULT_RESOLUTION  # default marching-cubes resolution
    teacher: str | None = None    # what it was distilled from (a record)


class PlaneDecoder(ModelMixin, ConfigMixin):
    """Latent planes (B, 6, C, R, R) -> geometry and texture feature triplanes, plus the field.

    A shared 2-layer conv stack with ``upsample`` nearest-neighbour doublings maps every
    plane to ``features`` channels at R·2^upsample; :attr:`field` holds the SDF/RGB MLPs.
    The convs start with He-normal weights and zero biases, so unit-scale latents give
    features of order one (PyTorch's default shrank them to 0.06 RMS) and the decoded
    field follows the latent from the first step.
    """

    @register_to_config
    def __init__(self, latent_channels: int = 4, features: int = 16, hidden: int = 32,
                 upsample: int = 1, mlp_hidden: int = 64, mlp_layers: int = 2,
                 aggregate: str = "sum", sphere_radius: float = 0.3, bound: float = 0.5,
                 sdf_init_scale: float = 0.05):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(latent_channels, hidden, 3, padding=1), nn.SiLU()]
        for _ in range(upsample):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(hidden, hidden, 3, padding=1), nn.SiLU()]
        layers.append(nn.Conv2d(hidden, features, 3, padding=1))
        convs = [m for m in layers if isinstance(m, nn.Conv2d)]
        for i, conv in enumerate(convs):
            nn.init.kaiming_normal_(conv.weight,
                                    nonlinearity="relu" if i + 1 < len(convs) else "linear")
            nn.init.zeros_(conv.bias)
        self.convs = nn.Sequential(*layers)
        self.field = TriplaneField(features, mlp_hidden, mlp_layers, aggregate, sphere_radius,
                                   bound, sdf_init_scale)

    def forward(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 6, C, R, R) -> geo, tex, each (B, 3, F, R', R')."""
        B, P = latent.shape[:2]
        if P != PLANES:
            raise ValueError(f"expected {PLANES} planes, got {P}")
        feats = self.convs(latent.flatten(0, 1))
        feats = feats.reshape(B, P, *feats.shape[1:])
        return feats[:, :3], feats[:, 3:]


def network_block(plane_size: int, latent_channels: int, text_dim: int,
                  channels: tuple[int, ...] = (32, 64), attention_levels: int = 2,
                  layers_per_block: int = 1, heads: int = 4, norm_groups: int = 8) -> dict:
    """A ``build_network`` block of the plane UNet: cross-attention (and joint plane
    attention) on the coarsest ``attention_levels`` levels, a plane-index class embedding,
    and the text also pooled into the time embedding (``addition_embed_type="text"``), so
    every ResNet block is conditioned on the prompt."""
    levels = len(channels)
    if not 1 <= attention_levels <= levels:
        raise ValueError(f"attention_levels must lie in [1, {levels}]")
    if plane_size % 2 ** (levels - 1):
        raise ValueError(f"plane_size {plane_size} is not divisible by 2**{levels - 1}")
    down = ["DownBlock2D"] * (levels - attention_levels) + \
        ["CrossAttnDownBlock2D"] * attention_levels
    up = ["CrossAttnUpBlock2D"] * attention_levels + ["UpBlock2D"] * (levels - attention_levels)
    return {"type": "unet2d_condition", "sample_size": plane_size,
            "in_channels": latent_channels, "out_channels": latent_channels,
            "block_out_channels": list(channels), "down_block_types": down,
            "up_block_types": up, "layers_per_block": layers_per_block,
            "attention_head_dim": heads, "norm_num_groups": norm_groups,
            "cross_attention_dim": text_dim, "num_class_embeds": PLANES,
            "addition_embed_type": "text", "addition_embed_type_num_heads": heads}


def adapt_pretrained(unet: nn.Module, text_dim: int) -> nn.Module:
    """Give a pretrained UNet (e.g. Stable Diffusion's) what the generator needs, in place:
    a zero-initialised plane-index embedding and, when ``text_dim`` differs from its
    cross-attention width, a text projection. Both are saved in its config."""
    cfg = unet.config
    temb = unet.time_embedding.linear_2.out_features
    if getattr(unet, "class_embedding", None) is None:
        unet.class_embedding = nn.Embedding(PLANES, temb)
        nn.init.zeros_(unet.class_embedding.weight)
        unet.register_to_config(num_class_embeds=PLANES)
    if text_dim != cfg.cross_attention_dim and getattr(unet, "encoder_hid_proj", None) is None:
        unet.encoder_hid_proj = nn.Linear(text_dim, cfg.cross_attention_dim)
        unet.register_to_config(encoder_hid_dim=text_dim, encoder_hid_dim_type="text_proj")
    return enable_joint_views(unet)


class PlaneDenoiser:
    """A model callable (x_t (B, 6, C, R, R), t) -> (B, 6, C, R, R) for the sampler.

    text: (B, D) or (1, D) prompt embeddings. The six planes of each object attend jointly.
    """

    def __init__(self, net: nn.Module, text: Tensor) -> None:
        self.net, self.text = net, text

    def __call__(self, x_t: Tensor, t: Tensor) -> Tensor:
        B, P = x_t.shape[:2]
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(B)
        text = self.text.to(x_t).expand(B, -1)
        planes = torch.arange(P, device=x_t.device).repeat(B)
        out = self.net(x_t.flatten(0, 1), t.repeat_interleave(P),
                       encoder_hidden_states=text.repeat_interleave(P, dim=0)[:, None],
                       class_labels=planes, cross_attention_kwargs={"num_views": P})
        out = out.sample if hasattr(out, "sample") else out
        return out.reshape(x_t.shape)


class TriplaneModel(NamedTuple):
    """A loaded generator: plane UNet (joint planes enabled), decoder, scheduler, config."""

    unet: nn.Module
    decoder: PlaneDecoder
    scheduler: object
    config: TriplaneConfig


def make_scheduler_4step(prediction_type: str = "v_prediction",
                         beta_schedule: str = "squaredcos_cap_v2", **kwargs):
    """DDIM with trailing spacing: 4 steps are the timesteps 999, 749, 499, 249.
    ``kwargs`` go to the scheduler (e.g. Stable Diffusion's beta_start/beta_end)."""
    from polydiff.diffusion import make_scheduler

    return make_scheduler("ddim", prediction_type=prediction_type, beta_schedule=beta_schedule,
                          timestep_spacing="trailing", **kwargs)


def build_triplane_model(config: TriplaneConfig, *, channels: tuple[int, ...] = (32, 64),
                         attention_levels: int = 2, layers_per_block: int = 1, heads: int = 4,
                         norm_groups: int = 8, decoder: dict | None = None,
                         prediction_type: str = "v_prediction",
                         beta_schedule: str = "squaredcos_cap_v2", seed: int = 0,
                         pretrained: str | os.PathLike | None = None,
                         scheduler_kwargs: dict | None = None) -> TriplaneModel:
    """A freshly initialised generator (weights a function of ``seed``).

    ``decoder``: PlaneDecoder arguments (``latent_channels`` is taken from ``config``).
    ``pretrained``: a diffusers UNet folder (e.g. Stable Diffusion's ``unet/``) to start
    from instead of a new UNet; it is adapted with :func:`adapt_pretrained` and must take
    ``config.latent_channels`` input channels.
    """
    from diffusers import UNet2DConditionModel

    from polydiff.apps.contract import seeded
    from polydiff.diffusion import build_network
    from polydiff.diffusion.networks import finish_network

    if pretrained is not None:
        try:
            unet = UNet2DConditionModel.from_pretrained(pretrained, use_safetensors=True)
        except (OSError, ValueError) as err:
            raise UserError(f"cannot load the pretrained UNet {pretrained}: "
                            f"{str(err).splitlines()[0]}") from err
        if unet.config.in_channels != config.latent_channels:
            raise UserError(f"{pretrained}: the UNet takes {unet.config.in_channels} channels, "
                            f"the config's latent_channels is {config.latent_channels}")
        unet = seeded(seed, lambda: adapt_pretrained(unet, config.text_dim))
        unet = finish_network(unet, {"type": "unet2d_condition"})
    else:
        block = network_block(config.plane_size, config.latent_channels, config.text_dim,
                              tuple(channels), attention_levels, layers_per_block, heads,
                              norm_groups)
        unet = enable_joint_views(seeded(seed, lambda: build_network(block)))
    args = dict(decoder or {}, latent_channels=config.latent_channels)
    dec = seeded(seed + 1, lambda: PlaneDecoder(**args))
    scheduler = make_scheduler_4step(prediction_type, beta_schedule, **(scheduler_kwargs or {}))
    return TriplaneModel(unet, dec, scheduler, config)


def latent_shape(config: TriplaneConfig, batch: int) -> tuple[int, ...]:
    """(B, 6, C, R, R)."""
    return (batch, PLANES, config.latent_channels, config.plane_size, config.plane_size)


def sample_latents(model: TriplaneModel, text: Tensor, *, steps: int | None = None,
                   generator: torch.Generator | None = None, hooks=(), keep_x0: bool = False,
                   progress: bool = False):
    """Denoise B latents (B, 6, C, R, R) from noise for prompts ``text`` (B, D) in ``steps``
    DDIM steps with the backbone's sampler; returns its SampleOutput."""
    from polydiff.diffusion import sample

    device = text.device
    fn = PlaneDenoiser(model.unet, text)
    return sample(fn, model.scheduler, latent_shape(model.config, len(text)),
                  steps=steps or model.config.steps, generator=generator, hooks=hooks,
                  device=device, keep_x0=keep_x0, progress=progress)


def save_triplane(folder: str | os.PathLike, model: TriplaneModel, meta: dict) -> Path:
    """Write the checkpoint folder (see the module docstring); ``meta`` is the contract's
    ``checkpoint_meta(...)`` (plus ``train``)."""
    from polydiff.diffusion import save_checkpoint

    folder = save_checkpoint(folder, model.unet, model.scheduler, meta)
    # the decoder is not one of the backbone's network types: saved beside unet/ by itself
    model.decoder.save_pretrained(folder / DECODER, safe_serialization=True)
    return folder


def load_triplane_model(folder: str | os.PathLike | None = None,
                        device: torch.device | str = "cpu") -> TriplaneModel:
    """The generator in ``folder`` (default: the bundled polydiff/weights/mesh/triplane)."""
    from polydiff.apps.contract import load_app_checkpoint, typed_config

    ckpt = load_app_checkpoint(APP, folder, device, kind=KIND)
    sub = ckpt.folder / DECODER
    if not any(sub.glob("*.safetensors")):
        raise UserError(f"{ckpt.folder} has no plane decoder ({DECODER}/*.safetensors)")
    try:
        decoder = PlaneDecoder.from_pretrained(sub, use_safetensors=True,
                                               low_cpu_mem_usage=False)
    except (OSError, ValueError, RuntimeError) as err:
        raise UserError(f"cannot load {sub}: {str(err).splitlines()[0]}") from err
    config = typed_config(ckpt, TriplaneConfig)
    return TriplaneModel(enable_joint_views(ckpt.net), decoder.to(device).eval(),
                         ckpt.scheduler, config)


@torch.no_grad()
def generate_triplane_mesh(prompt: str, model: TriplaneModel, steps: int = 4,
                           resolution: int | None = None,
                           generator: torch.Generator | None = None,
                           device: torch.device | str = "cpu", *, text_encoder=None,
                           normalise: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Text -> mesh: sample the six planes in ``steps`` steps, decode, marching cubes.

    Args:
        prompt: the text; an empty prompt is a UserError.
        model: from :func:`load_triplane_model`.
        steps: sampler steps (the model is distilled for 4).
        resolution: marching-cubes cells per side, in [16, 512] (default from the config).
        generator: source of the initial noise (on ``device``); same seed, same mesh.
        text_encoder: a TextEncoder giving ``model.config.text_dim`` embeddings (default:
            the bundled all-MiniLM-L6-v2).
        normalise: centre the mesh and scale its largest side to 1 (the unit cube).
    Returns:
        verts (N, 3) float32 world coordinates (+z up) in [-0.5, 0.5]^3, faces (F, 3)
        int64 counter-clockwise seen from outside (a closed surface), colors (N, 3) in
        [0, 1]; all on the CPU.
    """
    from polydiff.apps.mesh.text_encoder import TextEncoder
    from polydiff.geometry.meshes import normalise_verts
    from polydiff.geometry.triplane import check_resolution, extract_mesh

    if not isinstance(prompt, str) or not prompt.strip():
        raise UserError("empty prompt: describe the object to generate")
    if not 1 <= int(steps) <= 1000:
        raise UserError(f"steps must lie in [1, 1000], got {steps}")
    resolution = check_resolution(resolution or model.config.resolution)
    encoder = text_encoder or TextEncoder(device="cpu")
    if encoder.dim != model.config.text_dim:
        raise UserError(f"text encoder {encoder.name} gives {encoder.dim}-d embeddings; the "
                        f"triplane model needs {model.config.text_dim}-d "
                        f"({model.config.text_encoder})")
    device = torch.device(device)
    unet, decoder = model.unet.to(device), model.decoder.to(device)
    text = encoder(prompt).to(device)                                      # (1, D)
    latent = sample_latents(model._replace(unet=unet, decoder=decoder), text, steps=steps,
                            generator=generator).sample                    # (1, 6, C, R, R)
    geo, tex = decoder(latent)                                             # (1, 3, F, R', R')
    mesh = extract_mesh(decoder.field, geo, tex, resolution)
    verts = mesh.verts.float().cpu()
    if normalise:
        verts = normalise_verts(verts)
    return verts, mesh.faces.cpu(), mesh.colors.float().clamp(0, 1).cpu()
