"""Does the triplane generator follow its prompt? Field variation across prompts vs seeds.

For P prompts and S noise seeds the generator's 4-step latents are decoded and the SDF
(and colour) sampled on a coarse grid. A generator that follows its condition varies more
from prompt to prompt than from seed to seed; a decoder that ignores its input varies with
neither. Returned numbers (all on the grid over [-bound, bound]^3):

* ``sdf_across_prompts``: RMS over seeds and grid points of the SDF's standard deviation
  across prompts (same seed); ``sdf_across_seeds``: the same across seeds (same prompt);
* ``occupancy_*``: the same for the inside indicator (sdf < 0), so a shape change counts
  and a uniform offset of a far-away field does not;
* ``rgb_*``: for the colour at the grid points inside;
* ``latent_*``: for the latents themselves, relative to their RMS;
* ``separation``: sdf_across_prompts / sdf_across_seeds (> 1: the prompt matters more).
"""

from __future__ import annotations

import torch
from torch import Tensor

from polydiff.apps.mesh.triplane_model import TriplaneModel, sample_latents
from polydiff.geometry.triplane import grid_points


def _spread(x: Tensor, dim: int) -> float:
    """RMS over everything else of the std of x along ``dim``."""
    return float(x.std(dim=dim, unbiased=False).pow(2).mean().sqrt())


@torch.no_grad()
def field_samples(model: TriplaneModel, text: Tensor, seeds: list[int], *,
                  resolution: int = 16, steps: int | None = None
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Latents (S, P, ...), SDF (S, P, N) and colour (S, P, N, 3) on a resolution^3 grid
    for prompts ``text`` (P, D) and each seed in ``seeds`` (the sampler's initial noise,
    the same for every prompt)."""
    dec = model.decoder
    pts = grid_points(resolution, dec.field.config.bound, text.device).reshape(1, -1, 3)
    lat, sdf, rgb = [], [], []
    for seed in seeds:  # every prompt from the same initial noise
        z = torch.cat([sample_latents(model, t[None], steps=steps, generator=torch.Generator(
            device=text.device).manual_seed(seed)).sample for t in text])  # (P, 6, C, R, R)
        geo, tex = dec(z)
        p = pts.expand(len(text), -1, -1)
        lat.append(z)
        sdf.append(dec.field.sdf(geo, p))
        rgb.append(dec.field.rgb(tex, p))
    return torch.stack(lat), torch.stack(sdf), torch.stack(rgb)


def prompt_separation(model: TriplaneModel, text: Tensor, seeds: list[int], *,
                      resolution: int = 16, steps: int | None = None) -> dict[str, float]:
    """The numbers of the module docstring for P >= 2 prompts (text (P, D)) and S >= 2
    seeds."""
    if len(text) < 2 or len(seeds) < 2:
        raise ValueError("prompt_separation needs at least 2 prompts and 2 seeds")
    lat, sdf, rgb = field_samples(model, text, seeds, resolution=resolution, steps=steps)
    occ = (sdf < 0).float()
    inside = occ[..., None]
    rgb_in = rgb * inside + (1 - inside) * (rgb * inside).sum((0, 1, 2), keepdim=True) / \
        inside.sum((0, 1, 2), keepdim=True).clamp_min(1)      # outside: the mean inside colour
    scale = float(lat.pow(2).mean().sqrt())
    out = {"latent_across_prompts": _spread(lat, 1) / scale,
           "latent_across_seeds": _spread(lat, 0) / scale,
           "sdf_across_prompts": _spread(sdf, 1), "sdf_across_seeds": _spread(sdf, 0),
           "occupancy_across_prompts": _spread(occ, 1),
           "occupancy_across_seeds": _spread(occ, 0),
           "rgb_across_prompts": _spread(rgb_in, 1), "rgb_across_seeds": _spread(rgb_in, 0),
           "inside_fraction": float(occ.mean())}
    out["separation"] = out["sdf_across_prompts"] / max(out["sdf_across_seeds"], 1e-12)
    return out
