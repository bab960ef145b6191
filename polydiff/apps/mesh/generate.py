"""Text -> coloured, watertight mesh in the unit cube, by either of the app's two routes.

* ``triplane`` (default): the text-conditioned six-plane generator, 4 sampler steps, SDF +
  colour heads, marching cubes (TriplaneTurbo / Progressive Rendering Distillation).
* ``normals``: V normal maps from the multi-view normal model, fused into a mesh through the
  differentiable rasterizer (Direct2.5); the mesh takes the colour the normal model's colour
  head reads from the prompt's embedding (``colour/`` in its folder; a model without one
  falls back to the colour word of the prompt).

Also the shared steps of every mesh command: turning arrays into a file and a picture.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from polydiff.runtime import UserError, check_finite

MODES = ("triplane", "normals")
DEFAULT_GREY = (0.7, 0.7, 0.7)
EMPTY_DRAWS = 4  # triplane noise draws of one seed tried before "no surface" is an error


class GeneratedMesh(NamedTuple):
    """A generated mesh on the CPU: verts (N, 3) in [-0.5, 0.5]^3 (+z up), faces (F, 3),
    colors (N, 3) in [0, 1]; ``seconds`` of generation; ``notes`` for the user."""

    verts: Tensor
    faces: Tensor
    colors: Tensor
    seconds: float
    notes: tuple[str, ...] = ()


class MeshGenerator:
    """The model of one mode, loaded once for many prompts."""

    def __init__(self, mode: str, model: str | Path | None, device: torch.device,
                 encoder=None, snap: bool = True) -> None:
        """``encoder``: prompts -> embeddings (default: the bundled text encoder on the CPU;
        an ``EmbeddingTable`` where that is not installed). ``snap``: read each prompt as the
        nearest caption of the training vocabulary (:mod:`polydiff.apps.mesh.snapping`)."""
        from polydiff.apps.mesh.text_encoder import TextEncoder

        if mode not in MODES:
            raise UserError(f"unknown mode {mode!r} (use {' or '.join(MODES)})")
        self.mode, self.device = mode, device
        if mode == "triplane":
            from polydiff.apps.mesh.triplane_model import load_triplane_model

            self.model = load_triplane_model(model, device)
        else:
            from polydiff.apps.contract import bundled_folder
            from polydiff.apps.mesh.colour import load_colour_head
            from polydiff.apps.mesh.normals import KIND, load_normal_model

            self.model = load_normal_model(model, device)
            self.colour = load_colour_head(model if model is not None else
                                           bundled_folder("mesh", KIND))
        self.encoder = encoder if encoder is not None else TextEncoder(device="cpu")
        if snap:
            from polydiff.apps.mesh.snapping import SnappedEncoder

            self.encoder = SnappedEncoder(self.encoder)

    def __call__(self, prompt: str, *, steps: int | None, resolution: int | None,
                 views: int, seed: int, fuse_iterations: int = 150) -> GeneratedMesh:
        """One mesh for ``prompt``; the same seed gives the same mesh."""
        from polydiff.runtime import make_generator

        t0 = time.perf_counter()
        generator = make_generator(seed, self.device)
        text, encoder, read = prompt, self.encoder, ()
        if hasattr(encoder, "read_as"):  # snapping: condition on the caption read, once
            text, encoder = encoder.read_as(prompt)[0], encoder.encoder
            read = (f"read as {text!r}, the nearest caption of the training vocabulary "
                    "(--no-snap: as written)",)
        if self.mode == "triplane":
            from polydiff.apps.mesh.triplane_model import generate_triplane_mesh
            from polydiff.geometry.triplane import EmptyFieldError

            notes: tuple[str, ...] = ()
            for draw in range(1, EMPTY_DRAWS + 1):  # thin shapes can vanish for some draws
                try:
                    verts, faces, colors = generate_triplane_mesh(
                        text, self.model, steps=steps or 4, resolution=resolution,
                        generator=generator, device=self.device, text_encoder=encoder)
                    break
                except EmptyFieldError as err:
                    if draw == EMPTY_DRAWS:
                        raise UserError(f"no surface for {prompt!r} with seed {seed} in "
                                        f"{EMPTY_DRAWS} noise draws: the generated SDF is "
                                        "positive everywhere; another --seed may give one"
                                        ) from err
            if draw > 1:
                notes = (f"the first {draw - 1} noise draw(s) of seed {seed} gave no surface; "
                         f"this mesh is draw {draw} of the same seed",)
        else:
            verts, faces, colors, notes = self._normals(text, encoder, steps, resolution,
                                                        views, generator, fuse_iterations)
        check_finite(verts, "the generated mesh", "a model that does not fit this prompt")
        return GeneratedMesh(verts, faces, colors, time.perf_counter() - t0, notes + read)

    def _normals(self, prompt, encoder, steps, resolution, views, generator, iterations):
        from polydiff.apps.mesh.captions import COLOURS
        from polydiff.apps.mesh.colour_names import prompt_colour
        from polydiff.apps.mesh.normals import generate_normal_views
        from polydiff.geometry.fusion import fuse_views
        from polydiff.geometry.meshes import normalise_verts

        got = generate_normal_views(prompt, self.model, views=views, steps=steps,
                                    generator=generator, device=self.device,
                                    text_encoder=encoder)
        verts, faces = fuse_views(got.normals, got.mask, got.K, got.c2w,
                                  grid=min(resolution or 64, 128), iterations=iterations,
                                  device=self.device,
                                  generator=torch.Generator().manual_seed(0))
        verts = normalise_verts(verts)
        notes: tuple[str, ...] = ()
        if self.colour is not None:
            rgb = self.colour.rgb(encoder(prompt))[0].tolist()
        else:
            name = prompt_colour(prompt)
            rgb = COLOURS[name][0] if name else DEFAULT_GREY
            notes = () if name else ("the prompt names no colour known to the colour "
                                     "fallback; the mesh is grey",)
        colors = torch.tensor(rgb, dtype=torch.float32).expand(len(verts), 3).clone()
        return verts, faces, colors, notes


def mesh_file_bytes(verts: Tensor, faces: Tensor, colors: Tensor | None, fmt: str) -> bytes:
    """The file contents (GLB / OBJ / PLY) of a mesh given as arrays."""
    from polydiff.geometry.meshes import mesh_bytes, mesh_from_arrays

    return mesh_bytes(mesh_from_arrays(verts, faces, colors), fmt)


def turntable(verts: Tensor, faces: Tensor, colors: Tensor | None, *, views: int = 4,
              size: int = 128, elevation: float = 20.0) -> list[np.ndarray]:
    """Shaded renders (H, W, 3) of a unit-cube mesh from ``views`` azimuths."""
    from polydiff.apps.mesh.plots import shaded_image
    from polydiff.geometry.render import orbit_cameras, render_mesh

    azimuths = [30.0 + 360.0 * i / views for i in range(views)]
    cams = orbit_cameras(elevation, azimuths, distance=2.4, fov_deg=40.0, size=size)
    with torch.no_grad():
        out = render_mesh(verts.float(), faces, cams, colors=colors, backend="auto")
    mask = out.mask.numpy() > 0.5
    color = None if out.color is None else \
        (out.color / out.mask.clamp_min(1e-6)[..., None]).clamp(0, 1).numpy()
    return [shaded_image(out.normals[i].numpy(), mask[i], None if color is None else color[i])
            for i in range(views)]
