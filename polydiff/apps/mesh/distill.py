"""Progressive Rendering Distillation (TriplaneTurbo): train the generator from 2-D teachers.

One iteration (:func:`prd_loss`), with no 3-D data anywhere:

1. prompts -> text embeddings; the backbone's sampler denoises the six planes from noise in
   the generator's 4 steps, keeping every step's x̂₀ *with its graph* (:class:`KeepX0`);
2. each x̂₀ is decoded to a triplane field;
3. the field is rendered from the teacher's views: the marching-cubes mesh through the
   differentiable rasterizer (``render="mesh"``; vertices follow the SDF as in MeshSDF) or
   SDF volume rendering (``render="volume"``);
4. every teacher noises the renders to a random level and denoises them; the student is
   pulled towards the teacher's estimate (score distillation in x̂₀ form: the gradient
   (x − x̂₀^teacher) is the SDS gradient w(t)(ε̂ − ε) with w(t) = √((1−ᾱ)/ᾱ));
   eikonal and sparsity terms keep the SDF a clean distance field, and a containment term
   (:func:`bound_loss`) keeps the surface inside the cube the planes span.

Teachers plug in through the :class:`Teacher` protocol, so any multi-view model (the part-1
normal model here, a user's MVDream-class RGB model) can be used. :class:`NormalTeacher`
wraps the bundled multi-view normal model; :class:`TextColourTeacher` is the colour
teacher: its estimate is the render's coverage painted in the colour a learned head reads
from the prompt's sentence embedding (:mod:`polydiff.apps.mesh.colour`), so paraphrases and
synonyms get their colour through the text encoder. :class:`PromptColourTeacher` is the
older keyword *fallback* (the colour word of the prompt looked up in the caption tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from polydiff.apps.mesh.triplane_model import TriplaneModel, sample_latents
from polydiff.diffusion import SamplerHook, StepState
from polydiff.geometry.cameras import Cameras
from polydiff.geometry.triplane import (
    TriplaneField,
    differentiable_surface,
    eikonal_loss,
    extract_mesh,
    sparsity_loss,
    volume_render,
)
from polydiff.runtime import UserError


class ViewRig(NamedTuple):
    """V views of one object: cameras and their orbit angles in degrees, each (V,)."""

    cameras: Cameras
    elevation: Tensor
    azimuth: Tensor


class Renders(NamedTuple):
    """Student renders, each (B, V, ·, H, W): world normals (3, zero off the object),
    coverage mask (1, in [0, 1]) and premultiplied colour (3, black background) or None."""

    normals: Tensor
    mask: Tensor
    color: Tensor | None


class TeacherOutput(NamedTuple):
    """x: the renders in the teacher's space, with their graph (B, V, C, H, W);
    x0_hat: the teacher's denoised estimate of x noised to the drawn level (no graph)."""

    x: Tensor
    x0_hat: Tensor


class Teacher(Protocol):
    """A frozen multi-view model the student is distilled from.

    ``size`` is the image side it sees and ``views`` its number of views; ``rig`` draws the
    views of one iteration; ``denoise`` gets the student's renders (B, V, ·, H, W), the rig,
    the prompts' embeddings (B, D) and texts, noise levels in [0, 1] (B,) (fractions of its
    training timesteps) and a generator, and returns :class:`TeacherOutput`.
    """

    name: str
    size: int
    views: int

    def rig(self, generator: torch.Generator) -> ViewRig: ...

    def denoise(self, renders: Renders, rig: ViewRig, text: Tensor, prompts: list[str],
                level: Tensor, generator: torch.Generator) -> TeacherOutput: ...


def _uniform(generator: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


class NormalTeacher:
    """The part-1 multi-view normal model (``normals.NormalModel``) as a PRD teacher.

    Its views are 4 channels (world normal, mask in [-1, 1]); the rig is a random elevation
    in the model's training range and a random azimuth offset; classifier-free guidance
    with ``guidance_scale`` (zero embedding = unconditional, as it was trained).
    """

    name = "normals"

    def __init__(self, model, guidance_scale: float = 3.0) -> None:
        model.net.requires_grad_(False)
        self.model, self.guidance_scale = model, guidance_scale
        self.size, self.views = model.config.size, model.config.views

    def rig(self, generator: torch.Generator) -> ViewRig:
        from polydiff.apps.mesh.normals import rig_cameras

        lo, hi = self.model.config.elevation_range
        elevation = _uniform(generator, lo, hi)
        cams, az = rig_cameras(self.model.config, self.views, elevation,
                               _uniform(generator, 0.0, 360.0))
        return ViewRig(cams, torch.full_like(az, elevation), az)

    def denoise(self, renders: Renders, rig: ViewRig, text: Tensor, prompts: list[str],
                level: Tensor, generator: torch.Generator) -> TeacherOutput:
        from polydiff.apps.mesh.multiview import MultiViewDenoiser, camera_features
        from polydiff.diffusion import classifier_free, to_x0

        if text.shape[-1] != self.model.config.text_dim:
            raise UserError(f"the normal teacher needs {self.model.config.text_dim}-d text "
                            f"embeddings, got {text.shape[-1]}-d")
        x = torch.cat([renders.normals, 2 * renders.mask - 1], dim=2)    # (B, V, 4, H, W)
        sched = self.model.scheduler
        T = sched.config.num_train_timesteps
        t = (level * (T - 1)).round().long().clamp(0, T - 1).cpu()
        ab = sched.alphas_cumprod[t].to(x).reshape(-1, 1, 1, 1, 1)
        noise = torch.randn(x.shape, generator=generator).to(x)
        with torch.no_grad():
            x_t = ab.sqrt() * x.detach() + (1 - ab).sqrt() * noise
            feats = camera_features(rig.elevation, rig.azimuth)[None].to(x)
            cond = MultiViewDenoiser(self.model.net, text.to(x), feats)
            fn = cond if self.guidance_scale == 1 else classifier_free(
                cond, MultiViewDenoiser(self.model.net, torch.zeros_like(text).to(x), feats),
                self.guidance_scale)
            out = fn(x_t, t.to(x.device))
            x0_hat = to_x0(out, x_t, ab, sched.config.prediction_type)
        return TeacherOutput(x, x0_hat)


class PromptColourTeacher:
    """FALLBACK colour teacher (no learned colour model): the estimate is the render's own
    coverage painted in the colour the prompt names (``colour_names.prompt_colour``);
    prompts without a colour word give no colour signal. Needs colour renders."""

    name = "prompt-colour-fallback"

    def __init__(self, size: int = 32, views: int = 4) -> None:
        self.size, self.views = size, views

    def rig(self, generator: torch.Generator) -> ViewRig:
        from polydiff.geometry.render import orbit_cameras

        az = _uniform(generator, 0, 360) + 360.0 * torch.arange(self.views,
                                                               dtype=torch.float64) / self.views
        return ViewRig(orbit_cameras(0.0, az, 2.2, 40.0, self.size), torch.zeros_like(az), az)

    def denoise(self, renders: Renders, rig: ViewRig, text: Tensor, prompts: list[str],
                level: Tensor, generator: torch.Generator) -> TeacherOutput:
        from polydiff.apps.mesh.captions import COLOURS
        from polydiff.apps.mesh.colour_names import prompt_colour

        if renders.color is None:
            raise ValueError("the colour teacher needs colour renders")
        x = renders.color
        target = x.detach().clone()
        for b, prompt in enumerate(prompts):
            name = prompt_colour(prompt)
            if name is not None:
                rgb = torch.tensor(COLOURS[name][0]).to(x).reshape(1, 3, 1, 1)
                target[b] = renders.mask[b].detach() * rgb
        return TeacherOutput(x, target)


class TextColourTeacher(PromptColourTeacher):
    """Colour teacher from the text embedding: the estimate is the render's own coverage
    painted in ``head.rgb(text)`` (a :class:`~polydiff.apps.mesh.colour.ColourHead`), for
    every prompt; no keyword lookup. Needs colour renders."""

    name = "text-colour"

    def __init__(self, head, size: int = 32, views: int = 4) -> None:
        super().__init__(size, views)
        self.head = head

    def denoise(self, renders: Renders, rig: ViewRig, text: Tensor, prompts: list[str],
                level: Tensor, generator: torch.Generator) -> TeacherOutput:
        if renders.color is None:
            raise ValueError("the colour teacher needs colour renders")
        x = renders.color                                             # (B, V, 3, H, W)
        rgb = self.head.rgb(text).to(x)[:, None, :, None, None]       # (B, 1, 3, 1, 1)
        return TeacherOutput(x, renders.mask.detach() * rgb)


# ----------------------------------------------------------------------------- rendering
@dataclass
class DistillConfig:
    """PRD settings (levels are fractions of a teacher's training timesteps)."""

    render: str = "mesh"                 # "mesh" (rasterized MC surface) or "volume"
    mesh_resolution: int = 32            # marching cubes while training
    supersample: int = 2                 # mesh renders at k x the teacher's size, pooled
    volume_samples: int = 32
    volume_beta: float = 0.01
    level_range: tuple[float, float] = (0.02, 0.98)
    level_final: tuple[float, float] = (0.02, 0.6)  # annealed to by the end of training
    normal_weight: float = 1.0
    colour_weight: float = 1.0
    eikonal_weight: float = 0.1
    sparsity_weight: float = 0.01
    bound_weight: float = 1.0            # containment: keep the surface off the cube's faces
    bound_margin: float = 2.0            # in marching-cubes cells (2·bound/(mesh_resolution−1))
    reg_points: int = 2048               # random points per object for the regularisers
    guidance_scale: float = 3.0          # of the normal teacher


def render_field(field: TriplaneField, geo: Tensor, tex: Tensor, cameras: Cameras,
                 cfg: DistillConfig) -> Renders:
    """Differentiable renders of B fields (geo, tex (B, 3, F, R, R)) from V cameras.

    ``mesh``: marching cubes (no gradient) then the MeshSDF surface through the
    rasterizer at ``supersample`` x the size, average-pooled back: silhouette gradients
    come from the rasterizer's edge antialiasing, which needs triangles larger than pixels.
    Colour is rendered on the detached surface, so colour losses train only the RGB head.
    An object whose field has no surface falls back to volume rendering.
    """
    if cfg.render == "volume":
        return _volume(field, geo, tex, cameras, cfg)
    if cfg.render != "mesh":
        raise ValueError(f"render must be 'mesh' or 'volume', got {cfg.render!r}")
    from polydiff.geometry.render import render_mesh

    k = max(1, int(cfg.supersample))
    fine = Cameras(cameras.K.clone(), cameras.R, cameras.t, cameras.width * k,
                   cameras.height * k)
    fine.K[:, :2] *= k

    def pool(x: Tensor) -> Tensor:                    # (V, H k, W k, C) -> (V, C, H, W)
        return F.avg_pool2d(x.permute(0, 3, 1, 2), k) if k > 1 else x.permute(0, 3, 1, 2)

    normals, masks, colors = [], [], []
    for b in range(len(geo)):
        g, t = geo[b:b + 1], tex[b:b + 1]
        try:
            mesh = extract_mesh(field, g.detach(), None, cfg.mesh_resolution, min_component=0)
        except UserError:  # no surface (all outside / all inside): volume rendering
            r = _volume(field, g, t, cameras, cfg)
            normals.append(r.normals[0])
            masks.append(r.mask[0])
            colors.append(r.color[0])
            continue
        verts = differentiable_surface(field, g, mesh.verts)
        out = render_mesh(verts, mesh.faces, fine, backend="torch")
        # colour on the frozen surface: a colour loss trains the RGB head, never the shape
        rgb = field.rgb(t, mesh.verts[None])[0]
        color = render_mesh(mesh.verts, mesh.faces, fine, colors=rgb, backend="torch").color
        normals.append(pool(out.normals))
        masks.append(pool(out.mask[..., None]))
        colors.append(pool(color))
    return Renders(torch.stack(normals), torch.stack(masks), torch.stack(colors))


def _volume(field, geo, tex, cameras, cfg) -> Renders:
    r = volume_render(field, geo, tex, cameras, samples=cfg.volume_samples,
                      beta=cfg.volume_beta)
    return Renders(r.normals.permute(0, 1, 4, 2, 3), r.mask[:, :, None],
                   r.color.permute(0, 1, 4, 2, 3))


# ----------------------------------------------------------------------------- the loss
class KeepX0(SamplerHook):
    """Keep every step's x̂₀ with its graph to the network (the sampler detaches x_t)."""

    needs_grad = True

    def __init__(self) -> None:
        self.x0: list[Tensor] = []

    def on_x0(self, state: StepState, x0: Tensor) -> Tensor:
        self.x0.append(state.x0)
        return x0


class PRDLoss(NamedTuple):
    """The total loss (with graph) and its parts as floats (means over the steps)."""

    total: Tensor
    parts: dict[str, float]


def level_range(cfg: DistillConfig, progress: float) -> tuple[float, float]:
    """The noise-level range at training progress in [0, 1] (linear anneal)."""
    p = min(max(progress, 0.0), 1.0)
    lo = cfg.level_range[0] + p * (cfg.level_final[0] - cfg.level_range[0])
    hi = cfg.level_range[1] + p * (cfg.level_final[1] - cfg.level_range[1])
    return lo, hi


def face_points(batch: int, count: int, bound: float, generator: torch.Generator) -> Tensor:
    """(batch, count, 3) points uniform on the six faces of the cube [-bound, bound]^3."""
    p = (torch.rand(batch, count, 3, generator=generator) - 0.5) * 2 * bound
    axis = torch.randint(0, 3, (batch, count, 1), generator=generator)
    side = torch.randint(0, 2, (batch, count, 1), generator=generator) * 2 - 1
    return torch.where(torch.arange(3) == axis, side * bound, p)


def bound_loss(field: TriplaneField, geo: Tensor, points: Tensor, margin: float) -> Tensor:
    """Mean relu(margin − sdf) at points (B, N, 3) on the cube's faces (geo (B, 3, C, R, R)).

    Marching cubes closes a field that reaches the cube's faces with the faces themselves
    (:func:`~polydiff.geometry.triplane.marching_cubes`); those clamp vertices are not on
    the field's zero level, so the surface renders as the bounding box whatever the prompt
    and the MeshSDF gradient there barely moves it. This term keeps the field outside
    (sdf >= margin) on the faces, so every rendered vertex is a true surface point.
    """
    return F.relu(margin - field.sdf(geo, points)).mean()


def prd_loss(model: TriplaneModel, teachers: list[Teacher], text: Tensor, prompts: list[str],
             cfg: DistillConfig, generator: torch.Generator, *, progress: float = 0.0,
             steps: int | None = None) -> PRDLoss:
    """One PRD iteration's loss for B prompts (text (B, D) on the model's device).

    The first teacher draws the rig every teacher sees. ``generator`` (CPU) drives the
    initial noise, rig, noise levels and teacher noise; the same seed gives the same loss.
    """
    if not teachers:
        raise ValueError("PRD needs at least one teacher")
    keep = KeepX0()
    sample_latents(model, text, steps=steps, generator=generator, hooks=[keep])
    rig = teachers[0].rig(generator)
    lo, hi = level_range(cfg, progress)
    B = len(text)
    weights = {"normals": cfg.normal_weight, PromptColourTeacher.name: cfg.colour_weight,
               TextColourTeacher.name: cfg.colour_weight}
    sums: dict[str, Tensor] = {}
    total = text.new_zeros(())
    for x0 in keep.x0:                                       # each step's x̂₀, (B, 6, C, R, R)
        geo, tex = model.decoder(x0)
        renders = render_field(model.decoder.field, geo, tex, rig.cameras, cfg)
        for teacher in teachers:
            level = lo + (hi - lo) * torch.rand(B, generator=generator)
            out = teacher.denoise(renders, rig, text, prompts, level, generator)
            term = F.mse_loss(out.x, out.x0_hat.detach())
            sums[teacher.name] = sums.get(teacher.name, 0) + term.detach()
            total = total + weights.get(teacher.name, 1.0) * term
        bound = model.decoder.field.config.bound
        pts = ((torch.rand(B, cfg.reg_points, 3, generator=generator) - 0.5) * 2 * bound).to(geo)
        eik = eikonal_loss(model.decoder.field, geo, pts)
        spa = sparsity_loss(model.decoder.field, geo, pts)
        sums["eikonal"] = sums.get("eikonal", 0) + eik.detach()
        sums["sparsity"] = sums.get("sparsity", 0) + spa.detach()
        total = total + cfg.eikonal_weight * eik + cfg.sparsity_weight * spa
        if cfg.bound_weight > 0:  # (off: the same random stream as before the term existed)
            margin = cfg.bound_margin * 2 * bound / (cfg.mesh_resolution - 1)
            pts = face_points(B, cfg.reg_points, bound, generator).to(geo)
            box = bound_loss(model.decoder.field, geo, pts, margin)
            sums["bound"] = sums.get("bound", 0) + box.detach()
            total = total + cfg.bound_weight * box
    n = len(keep.x0)
    return PRDLoss(total / n, {k: float(v) / n for k, v in sums.items()})
