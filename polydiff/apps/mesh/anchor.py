"""Teacher-anchored warm-up of the triplane student (before Progressive Rendering Distillation).

Score distillation alone left the tiny student with one shape for every prompt: its
gradients are noisy (random noise levels, random views), differ little from prompt to
prompt, and the shared plane decoder settled on the mean shape and went flat in its input.
The warm-up gives the student a dense, prompt-specific target built from the *teachers'
own outputs* (no ground-truth mesh anywhere):

1. for K training captions the frozen multi-view normal teacher samples its V views from a
   random rig or from its canonical one (classifier-free guidance, its own sampler), and
   they are fused into a mesh as ``mesh generate --mode normals`` does
   (``geometry.fusion.fuse_views``);
   With ``shared_geometry`` the captions of one shape kind and proportion share one mesh
   whatever their colour: a tiny few-step student regresses towards the mean of the
   targets its text cannot tell apart, and the mean of twenty different mugs is a ball.
   With ``draws`` > 1 the mesh whose renders best match its own views' silhouettes is kept;
2. that mesh becomes a truncated signed-distance grid (inside by the parity of ray
   crossings, distances by the Euclidean distance transform), and the colour teacher gives
   the object's colour from the prompt's embedding (``ColourHead``);
3. each warm-up step draws prompts from that set, each with several noise seeds in the same
   batch (so the student learns that the prompt, not the noise, decides the shape), runs
   the student's 4 steps keeping every x̂₀ (as PRD does) and regresses the decoded SDF
   (truncated L1, at uniform and near-surface points) and the colour near the surface.

The eikonal and containment terms of PRD stay on. Afterwards PRD continues from the
anchored student (``train_triplane``), optionally keeping the anchor term.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from polydiff.apps.mesh.captions import Spec
from polydiff.apps.mesh.distill import KeepX0, PRDLoss, bound_loss, face_points
from polydiff.apps.mesh.triplane_model import TriplaneModel, sample_latents
from polydiff.geometry.triplane import eikonal_loss, grid_points

SET_FILE = "anchor_set.safetensors"
LATENT_FILE = "anchor_latents.safetensors"


@dataclass
class AnchorConfig:
    """The warm-up (``steps`` = 0: none). Lengths in world units."""

    steps: int = 0                 # warm-up steps (counted in train.steps, done first)
    prompts: int = 64              # teacher meshes in the anchor set
    grid: int = 32                 # target SDF grid per side over [-bound, bound]^3
    fuse_iterations: int = 60      # fusion iterations per teacher mesh
    fuse_grid: int = 48
    rig: str = "random"            # "random": one random rig per prompt; "canonical": the
                                   # rig of ``mesh generate --mode normals`` (elevation 0)
    batch_size: int = 8            # objects per warm-up step (prompts x seeds_per_prompt)
    seeds_per_prompt: int = 2      # noise seeds of one prompt in a batch
    points: int = 2048             # SDF points per object per x̂₀ (half near the surface)
    truncation: float = 0.1        # |sdf| clamp of the L1 term
    near_width: float = 0.05       # near-surface sampling scale
    sdf_weight: float = 1.0
    colour_weight: float = 1.0
    weight_after: float = 0.0      # weight of the anchor loss during the PRD steps after
    fit_steps: int = 0             # auto-decoder steps: one free latent per teacher mesh
    fit_lr: float = 0.01           # of the free latents (the decoder: decoder_lr)
    fit_batch: int = 8
    latent_weight: float = 1e-3    # L2 on the free latents
    freeze_decoder: bool = True    # the PRD steps after the warm-up train only the UNet
    paraphrases: int = 0           # other training captions per teacher mesh (same shape,
                                   # colour, proportion) the warm-up also conditions on
    shared_geometry: bool = False  # one teacher mesh per shape kind and proportion, shared
                                   # by the captions of every colour (False: one per caption)
    draws: int = 1                 # teacher meshes drawn per target; the one that best
                                   # explains its own views' silhouettes is kept

    def __post_init__(self) -> None:
        if self.rig not in ("random", "canonical"):
            raise ValueError(f"anchor.rig must be 'random' or 'canonical', got {self.rig!r}")
        if self.draws < 1:
            raise ValueError(f"anchor.draws must be at least 1, got {self.draws}")


class AnchorSet(NamedTuple):
    """K teacher targets: prompts, text (K, D), sdf (K, G, G, G) over [-bound, bound]^3
    indexed [x, y, z] (negative inside), rgb (K, 3) in [0, 1]; optionally the embeddings
    (K, P, D) of P paraphrases of each prompt."""

    prompts: list[str]
    text: Tensor
    sdf: Tensor
    rgb: Tensor
    bound: float
    paraphrases: Tensor | None = None

    def condition(self, idx: Tensor, generator: torch.Generator) -> Tensor:
        """(B, D) text embeddings of the items ``idx``: each item's own prompt, or, where
        the set has paraphrases, one of its prompt and paraphrases drawn uniformly per
        item (so the student learns every wording of the target, not just one)."""
        if self.paraphrases is None:
            return self.text[idx]
        every = torch.cat([self.text[:, None], self.paraphrases], 1)[idx]    # (B, P+1, D)
        pick = torch.randint(0, every.shape[1], (len(idx),), generator=generator)
        return every[torch.arange(len(idx)), pick]


# ----------------------------------------------------------------------------- targets
def occupancy_grid(verts: Tensor, faces: Tensor, grid: int, bound: float) -> Tensor:
    """(G, G, G) bool: which ``grid_points`` lie inside a closed mesh (verts (M, 3), faces
    (F, 3)), by the parity of ray crossings along +x (one ray per (y, z) column, nudged
    off the grid so it never hits an edge exactly)."""
    axis = torch.linspace(-bound, bound, grid, dtype=torch.float64)
    y, z = torch.meshgrid(axis + 1.234e-5, axis + 2.345e-5, indexing="ij")
    ray = torch.stack([y.reshape(-1), z.reshape(-1)], -1)               # (R, 2)
    tri = verts.to(torch.float64)[faces]                                # (F, 3, 3)
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    e1, e2 = (b - a)[:, 1:], (c - a)[:, 1:]                             # (F, 2) in (y, z)
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = det.abs() > 1e-14
    det = torch.where(ok, det, torch.ones_like(det))
    d = ray[:, None] - a[None, :, 1:]                                   # (R, F, 2)
    u = (d[..., 0] * e2[:, 1] - d[..., 1] * e2[:, 0]) / det
    v = (e1[:, 0] * d[..., 1] - e1[:, 1] * d[..., 0]) / det
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1)
    x = a[:, 0] + u * (b[:, 0] - a[:, 0]) + v * (c[:, 0] - a[:, 0])     # (R, F)
    x = torch.where(hit, x, torch.full_like(x, float("inf"))).sort(-1).values
    crossings = torch.searchsorted(x, axis.expand(len(ray), -1).contiguous())  # (R, G)
    inside = (crossings % 2 == 1).reshape(grid, grid, grid)             # [y, z, x]
    return inside.permute(2, 0, 1).contiguous()                         # [x, y, z]


def sdf_grid(verts: Tensor, faces: Tensor, grid: int, bound: float) -> Tensor:
    """(G, G, G) signed distance (negative inside) of a closed mesh on ``grid_points``
    (distance transform of the occupancy: exact to about half a cell)."""
    from scipy.ndimage import distance_transform_edt

    occ = occupancy_grid(verts, faces, grid, bound).numpy()
    voxel = 2 * bound / (grid - 1)
    d_out = distance_transform_edt(~occ) if occ.any() else np.full(occ.shape, float(grid))
    d_in = distance_transform_edt(occ)
    sdf = np.where(occ, -(d_in - 0.5), d_out - 0.5) * voxel
    return torch.from_numpy(sdf).float()


def lookup(grids: Tensor, points: Tensor, bound: float) -> Tensor:
    """Trilinear values (B, N) of grids (B, G, G, G) indexed [x, y, z] over
    [-bound, bound]^3 (corner samples, as ``grid_points``) at points (B, N, 3)."""
    q = (points / bound).flip(-1)                      # grid_sample wants (z, y, x) of [x, y, z]
    out = F.grid_sample(grids[:, None], q[:, None, None], mode="bilinear",
                        padding_mode="border", align_corners=True)
    return out[:, 0, 0, 0]


@torch.no_grad()
def build_anchor_set(normal_model, colour_head, encoder, prompts: list[str], bound: float,
                     cfg: AnchorConfig, generator: torch.Generator, *, batch: int = 8,
                     paraphrases: list[list[str]] | None = None,
                     groups: list | None = None, progress: bool = True) -> AnchorSet:
    """Teacher meshes for ``prompts`` (see the module docstring): views sampled from a
    rig (``cfg.rig``), fused, turned into SDF grids; colour from the colour head.
    ``paraphrases``: P other captions per prompt, embedded alongside. ``groups``: a label
    per prompt; prompts with one label share one teacher mesh, made for the group's first
    prompt (None: a mesh per prompt). Of ``cfg.draws`` meshes per source, the one whose
    renders best cover its own views' masks is kept (:func:`silhouette_agreement`)."""
    from tqdm.auto import tqdm

    labels = list(range(len(prompts))) if groups is None else list(groups)
    if len(labels) != len(prompts):
        raise ValueError(f"{len(labels)} group labels for {len(prompts)} prompts")
    first = {g: i for i, g in reversed(list(enumerate(labels)))}
    sources = sorted(first.values())                  # the prompt each teacher mesh is for
    jobs = [i for i in sources for _ in range(cfg.draws)]
    text = encoder(prompts)
    best: dict[int, tuple[float, Tensor, Tensor]] = {}
    bar = tqdm(total=len(jobs), desc="teacher meshes", disable=not progress)
    for j in range(0, len(jobs), batch):
        chunk = jobs[j:j + batch]
        for i, mesh in zip(chunk, teacher_meshes(normal_model, text[chunk], cfg, generator)):
            if i not in best or mesh[0] > best[i][0]:
                best[i] = mesh
            bar.update(1)
    bar.close()
    grid = {i: sdf_grid(v, f, cfg.grid, bound) for i, (_, v, f) in best.items()}  # kept only
    grids = torch.stack([grid[first[g]] for g in labels])
    rgb = colour_head.rgb(text).float()
    alt = None
    if paraphrases:
        flat = [c for captions in paraphrases for c in captions]
        alt = encoder(flat).float().reshape(len(prompts), -1, text.shape[-1])
    return AnchorSet(list(prompts), text.float(), grids, rgb, bound, alt)


def teacher_meshes(normal_model, text: Tensor, cfg: AnchorConfig,
                   generator: torch.Generator) -> list[tuple[float, Tensor, Tensor]]:
    """For each row of ``text`` (B, D): the teacher's views from a rig, fused into a mesh,
    as (silhouette agreement, or 0 when ``cfg.draws`` is 1; verts (N, 3); faces (F, 3))."""
    from polydiff.apps.mesh.multiview import camera_features
    from polydiff.apps.mesh.normals import (
        camera_to_world,
        decode_views,
        rig_cameras,
        sample_views,
    )
    from polydiff.geometry.fusion import carve_only, fuse_views
    from polydiff.runtime import UserError

    ncfg = normal_model.config
    lo, hi = ncfg.elevation_range
    rigs = []
    for _ in range(len(text)):
        el, az0 = 0.0, 0.0
        if cfg.rig == "random":
            el = lo + (hi - lo) * float(torch.rand((), generator=generator))
            az0 = 360.0 * float(torch.rand((), generator=generator))
        cams, az = rig_cameras(ncfg, ncfg.views, el, az0)
        rigs.append((cams, camera_features(torch.full_like(az, el), az)))
    feats = torch.stack([f for _, f in rigs])                            # (b, V, 4)
    x = sample_views(normal_model, text, feats, None, generator)         # (b, V, 4, H, W)
    out = []
    for (cams, _), views in zip(rigs, x):
        normals, mask = decode_views(views)
        K, c2w = cams.K.float(), camera_to_world(cams).float()
        try:
            v, f = fuse_views(normals, mask, K, c2w, grid=cfg.fuse_grid,
                              iterations=cfg.fuse_iterations,
                              generator=torch.Generator().manual_seed(0))
        except (UserError, RuntimeError):      # views that do not fuse: their hull
            try:
                v, f = carve_only(mask, K, c2w, grid=cfg.fuse_grid)
            except UserError:                  # empty views: no target (a small ball)
                v, f = _ball()
        score = silhouette_agreement(v, f, mask, cams) if cfg.draws > 1 else 0.0
        out.append((score, v, f))
    return out


def silhouette_agreement(verts: Tensor, faces: Tensor, mask: Tensor, cameras) -> float:
    """Intersection over union of a mesh's rendered silhouettes with the masks (V, H, W)
    of the views it was fused from (1: every view explained; views the teacher sampled
    inconsistently fuse into a mesh that covers them worse)."""
    from polydiff.geometry.render import render_mesh

    drawn = render_mesh(verts.float(), faces, cameras).mask > 0.5
    mask = mask.bool()
    return float((drawn & mask).sum() / (drawn | mask).sum().clamp_min(1))


def _ball(radius: float = 0.25) -> tuple[Tensor, Tensor]:
    import trimesh

    m = trimesh.creation.icosphere(2, radius)
    return torch.as_tensor(m.vertices, dtype=torch.float32), torch.as_tensor(m.faces)


def save_anchor_set(path: str | Path, anchor: AnchorSet) -> None:
    """Write the set as safetensors (prompts and bound in the metadata), atomically."""
    from safetensors.torch import save_file

    from polydiff.runtime import atomic_output

    meta = {"prompts": json.dumps(anchor.prompts), "bound": repr(anchor.bound)}
    tensors = {"text": anchor.text.contiguous(), "sdf": anchor.sdf.contiguous(),
               "rgb": anchor.rgb.contiguous()}
    if anchor.paraphrases is not None:
        tensors["paraphrases"] = anchor.paraphrases.contiguous()
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_anchor_set(path: str | Path) -> AnchorSet:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}
    return AnchorSet(json.loads(meta["prompts"]), t["text"], t["sdf"], t["rgb"],
                     float(meta["bound"]), t.get("paraphrases"))


def anchor_specs(seed: int, count: int) -> list[tuple[str, Spec]]:
    """``count`` training-vocabulary captions with their specs, the shape kinds in turn
    (balanced), colours and proportions at random."""
    from polydiff.apps.mesh.captions import caption, random_spec
    from polydiff.geometry.shapes import SHAPE_KINDS

    rng = np.random.default_rng([seed, 7])
    out = []
    for i in range(count):
        spec = dataclasses.replace(random_spec(rng), shape=SHAPE_KINDS[i % len(SHAPE_KINDS)])
        out.append((caption(spec, rng, "train"), spec))
    return out


def paraphrase_prompts(specs: list[Spec], count: int, seed: int) -> list[list[str]]:
    """``count`` other training captions of each spec: first its anchor captions (the
    captions ``mesh generate`` snaps prompts to; ``snapping.spec_anchor_captions``) in a
    random order, then random captions in the training words and sentence frames."""
    from polydiff.apps.mesh.captions import caption
    from polydiff.apps.mesh.snapping import spec_anchor_captions

    rng = np.random.default_rng([seed, 11])
    out = []
    for spec in specs:
        forms = spec_anchor_captions(spec)
        captions = [forms[i] for i in rng.permutation(len(forms))][:count]
        captions += [caption(spec, rng, "train") for _ in range(count - len(captions))]
        out.append(captions)
    return out


# ----------------------------------------------------------------------------- the loss
def anchor_points(sdf: Tensor, count: int, bound: float, near_width: float,
                  generator: torch.Generator) -> Tensor:
    """(B, count, 3): half uniform in the cube, half at grid points drawn with weight
    exp(−|sdf|/near_width) and jittered by up to half a cell (near the target surface)."""
    B, G = len(sdf), sdf.shape[-1]
    n_near = count // 2
    uni = (torch.rand(B, count - n_near, 3, generator=generator) - 0.5) * 2 * bound
    w = torch.exp(-sdf.reshape(B, -1).abs() / near_width) + 1e-12
    idx = torch.multinomial(w, n_near, replacement=True, generator=generator)
    centres = grid_points(G, bound).reshape(-1, 3)[idx]                  # (B, n_near, 3)
    cell = 2 * bound / (G - 1)
    jitter = (torch.rand(B, n_near, 3, generator=generator) - 0.5) * cell
    near = (centres + jitter).clamp(-bound, bound)
    return torch.cat([uni, near], 1)


def anchor_batch(anchor: AnchorSet, prompts: int, seeds: int,
                 generator: torch.Generator) -> Tensor:
    """Indices (prompts * seeds,) into the set: ``prompts`` distinct items, each ``seeds``
    times in a row (their noise differs: the sampler draws it per object)."""
    idx = torch.randperm(len(anchor.prompts), generator=generator)[:prompts]
    return idx.repeat_interleave(seeds)


def anchor_loss(model: TriplaneModel, anchor: AnchorSet, idx: Tensor, cfg: AnchorConfig,
                generator: torch.Generator, *, eikonal_weight: float = 0.1,
                bound_weight: float = 1.0, bound_margin: float = 0.08,
                steps: int | None = None) -> PRDLoss:
    """The warm-up loss for the set's items ``idx`` (B,): the student's 4-step sample from
    fresh noise, every x̂₀ decoded and regressed on the teacher targets (see the module
    docstring). ``bound_margin`` in world units."""
    field = model.decoder.field
    bound = field.config.bound
    if abs(bound - anchor.bound) > 1e-6:
        raise ValueError(f"the anchor set spans ±{anchor.bound}, the decoder ±{bound}")
    device = next(model.decoder.parameters()).device
    text = anchor.condition(idx, generator).to(device)
    target = anchor.sdf[idx].to(device)
    rgb_target = anchor.rgb[idx].to(device)
    keep = KeepX0()
    sample_latents(model, text, steps=steps, generator=generator, hooks=[keep])
    total = text.new_zeros(())
    sums = {"anchor_sdf": 0.0, "anchor_rgb": 0.0, "eikonal": 0.0, "bound": 0.0}
    for x0 in keep.x0:
        geo, tex = model.decoder(x0)
        loss, parts = field_loss(field, geo, tex, target, rgb_target, cfg, bound, generator,
                                 eikonal_weight)
        total = total + loss
        for k, v in parts.items():
            sums[k] += v
        if bound_weight > 0:
            box = bound_loss(field, geo, face_points(len(idx), cfg.points // 4, bound,
                                                     generator).to(device), bound_margin)
            total = total + bound_weight * box
            sums["bound"] += float(box.detach())
    n = len(keep.x0)
    return PRDLoss(total / n, {k: v / n for k, v in sums.items()})


# ----------------------------------------------------------------------------- two stages
def field_loss(field, geo: Tensor, tex: Tensor, target: Tensor, rgb_target: Tensor,
               cfg: AnchorConfig, bound: float, generator: torch.Generator,
               eikonal_weight: float = 0.1) -> tuple[Tensor, dict[str, float]]:
    """Truncated-L1 SDF and near-surface colour regression of decoded fields (geo, tex
    (B, 3, F, R, R)) on target grids (B, G, G, G) and colours (B, 3), plus eikonal."""
    device = geo.device
    pts = anchor_points(target.cpu(), cfg.points, bound, cfg.near_width, generator).to(device)
    tau = cfg.truncation
    s = field.sdf(geo, pts)
    t = lookup(target, pts, bound)
    l_sdf = (s.clamp(-tau, tau) - t.clamp(-tau, tau)).abs().mean()
    near = (t < cfg.near_width).float()[..., None]
    c = field.rgb(tex, pts)
    l_rgb = ((c - rgb_target[:, None]) ** 2 * near).sum() / near.sum().clamp_min(1) / 3
    eik = eikonal_loss(field, geo, pts[:, : cfg.points // 4])
    total = cfg.sdf_weight * l_sdf + cfg.colour_weight * l_rgb + eikonal_weight * eik
    return total, {"anchor_sdf": float(l_sdf.detach()), "anchor_rgb": float(l_rgb.detach()),
                   "eikonal": float(eik.detach())}


def fit_latents(decoder, anchor: AnchorSet, shape: tuple[int, ...], cfg: AnchorConfig,
                generator: torch.Generator, *, decoder_lr: float = 3e-3,
                eikonal_weight: float = 0.1, progress: bool = True) -> Tensor:
    """Stage 1 (auto-decoder): one free latent (6, C, R, R) per teacher mesh, fitted jointly
    with the plane decoder (trained in place) so that each decodes to its target field.
    Every latent must explain a different shape, so the decoder cannot ignore its input.
    Returns the latents (K, 6, C, R, R), detached."""
    from tqdm.auto import tqdm

    device = next(decoder.parameters()).device
    K = len(anchor.prompts)
    z = (0.1 * torch.randn((K, *shape), generator=generator)).to(device).requires_grad_(True)
    opt = torch.optim.Adam([{"params": [z], "lr": cfg.fit_lr},
                            {"params": list(decoder.parameters()), "lr": decoder_lr}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, cfg.fit_steps))
    sdf, rgb = anchor.sdf.to(device), anchor.rgb.to(device)
    bar = tqdm(range(cfg.fit_steps), desc="anchor latents", disable=not progress)
    for _ in bar:
        idx = torch.randperm(K, generator=generator)[: cfg.fit_batch]
        geo, tex = decoder(z[idx])
        loss, parts = field_loss(decoder.field, geo, tex, sdf[idx], rgb[idx], cfg,
                                 anchor.bound, generator, eikonal_weight)
        loss = loss + cfg.latent_weight * z[idx].pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix({k[:10]: f"{v:.4f}" for k, v in parts.items()})
    return unit_scale(decoder, z.detach())


@torch.no_grad()
def unit_scale(decoder, latents: Tensor) -> Tensor:
    """Latents (K, ...) rescaled to unit RMS, the decoder's first conv divided by the same
    factor (in place), so every decoded field is unchanged: the diffusion model then
    denoises data of the scale its noise has."""
    scale = float(latents.pow(2).mean().sqrt())
    first = next(m for m in decoder.convs if isinstance(m, torch.nn.Conv2d))
    first.weight.mul_(scale)
    return latents / scale


def latent_loss(model: TriplaneModel, latents: Tensor, text: Tensor,
                generator: torch.Generator) -> PRDLoss:
    """Stage 2: the plane UNet as a text-conditioned denoiser of the fitted latents
    (B, 6, C, R, R) at the sampler's own timesteps (the backbone's ``denoising_loss``, in
    the scheduler's prediction type); each latent is its prompt's one target, so the best
    denoiser returns it from any noise: the few-step sampler then gives the prompt's shape
    whatever the seed."""
    from polydiff.apps.mesh.triplane_model import PlaneDenoiser
    from polydiff.diffusion import denoising_loss

    sched = model.scheduler
    sched.set_timesteps(model.config.steps)
    steps = sched.timesteps
    t = steps[torch.randint(0, len(steps), (len(latents),), generator=generator)]
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    loss = denoising_loss(PlaneDenoiser(model.unet, text), sched, latents, noise,
                          t.to(latents.device))                    # t per object
    return PRDLoss(loss, {"latent": float(loss.detach())})


def save_latents(path: str | Path, latents: Tensor, decoder) -> None:
    """The fitted latents with the decoder they were fitted with (safetensors)."""
    from safetensors.torch import save_file

    from polydiff.runtime import atomic_output

    tensors = {f"decoder.{k}": v.contiguous().cpu() for k, v in decoder.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file({"latents": latents.contiguous().cpu(), **tensors}, str(tmp))


def load_latents(path: str | Path, decoder) -> Tensor:
    """The latents of :func:`save_latents`; their decoder's weights go into ``decoder``."""
    from safetensors.torch import load_file

    t = load_file(str(path))
    decoder.load_state_dict({k[len("decoder."):]: v for k, v in t.items()
                             if k.startswith("decoder.")})
    return t["latents"]
