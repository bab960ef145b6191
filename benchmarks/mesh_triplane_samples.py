"""The bundled triplane generator, sampled in 4 steps for one prompt per shape kind in the
training vocabulary and one in the held-out vocabulary (unseen synonyms and frames).

Checks, written to benchmarks/results/mesh_triplane_samples.json with a contact sheet .png:
  * every mesh is closed (watertight, consistently wound) and inside the unit cube;
  * colour: the named colour nearest to the mean vertex colour equals the prompt's colour;
  * shape kind: nearest-neighbour classifier over ground-truth renders of fresh procedural
    shapes (the one of benchmarks/mesh_normals_samples; 1/11 is chance);
  * seconds per mesh at the default resolution.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import trimesh

from benchmarks.common import figure_path, write_json
from benchmarks.mesh_normals_samples import nearest_kind, references
from polydiff.apps.mesh.captions import COLOURS, Spec, caption
from polydiff.apps.mesh.dataset import MeshDataConfig, views_tensor
from polydiff.apps.mesh.generate import turntable
from polydiff.apps.mesh.plots import contact_sheet
from polydiff.apps.mesh.text_encoder import TextEncoder
from polydiff.apps.mesh.triplane_model import generate_triplane_mesh, load_triplane_model
from polydiff.geometry.render import orbit_cameras, render_mesh
from polydiff.geometry.shapes import SHAPE_KINDS


def nearest_colour(rgb: np.ndarray) -> str:
    names = list(COLOURS)
    table = np.array([COLOURS[n][0] for n in names])
    return names[int(np.linalg.norm(table - rgb, axis=1).argmin())]


def canonical_views(verts, faces, cfg: MeshDataConfig) -> torch.Tensor:
    """The teacher's canonical-rig views (V, 4, H, W) of a mesh, as the references are."""
    cams = orbit_cameras(0.0, 360.0 * torch.arange(cfg.views, dtype=torch.float64) / cfg.views,
                         cfg.distance, cfg.fov_deg, cfg.size)
    out = render_mesh(verts.float(), faces, cams)
    return views_tensor(out.normals, out.mask)


def main(quick: bool = True, model_dir: str | None = None, resolution: int | None = None) -> dict:
    """Sample, check and picture one prompt per kind in each vocabulary (one size: ``quick``
    is accepted for ``benchmarks.run`` and changes nothing)."""
    model = load_triplane_model(model_dir)
    encoder = TextEncoder()
    rng = np.random.default_rng(0)
    colours = list(COLOURS)
    specs = [Spec(kind, colours[i % len(colours)]) for i, kind in enumerate(SHAPE_KINDS)]
    prompts = {split: [caption(s, rng, split) for s in specs] for split in ("train", "heldout")}
    data_cfg = MeshDataConfig(p_random_rig=0.0)
    refs, ref_kinds = references(data_cfg, 6)
    result = {"model": str(model_dir or "bundled"), "steps": model.config.steps,
              "resolution": resolution or model.config.resolution, "prompts": prompts}
    rows, times = {}, []
    for split, texts in prompts.items():
        checks = {"watertight": [], "in_unit_cube": [], "colour": [], "colour_ok": [],
                  "kind": [], "faces": []}
        views = []
        for spec, prompt in zip(specs, texts):
            t0 = time.time()
            verts, faces, colors = generate_triplane_mesh(
                prompt, model, resolution=resolution, generator=torch.Generator().manual_seed(0),
                text_encoder=encoder)
            times.append(time.time() - t0)
            mesh = trimesh.Trimesh(verts.numpy(), faces.numpy(), process=False)
            checks["watertight"].append(bool(mesh.is_watertight and mesh.is_winding_consistent))
            checks["in_unit_cube"].append(bool(verts.abs().max() <= 0.5 + 1e-6))
            name = nearest_colour(colors.numpy().mean(0))
            checks["colour"].append(name)
            checks["colour_ok"].append(name == spec.colour)
            checks["faces"].append(int(len(faces)))
            views.append(canonical_views(verts, faces, data_cfg))
            rows[f"{split}: {prompt}"] = turntable(verts, faces, colors, size=96)
        pred = nearest_kind(torch.stack(views), refs, ref_kinds)
        checks["kind"] = [SHAPE_KINDS[i] for i in pred]
        checks["kind_accuracy"] = float(np.mean([k == s.shape for k, s in
                                                 zip(checks["kind"], specs)]))
        checks["colour_accuracy"] = float(np.mean(checks["colour_ok"]))
        checks["watertight_share"] = float(np.mean(checks["watertight"]))
        result[split] = checks
    result["seconds_per_mesh"] = float(np.median(times))
    write_json("mesh_triplane_samples", result)
    contact_sheet(figure_path("mesh_triplane_samples"), rows,
                  title="triplane generator, 4 steps (train words, then held-out words)")
    for split in prompts:
        r = result[split]
        print(f"{split}: watertight {r['watertight_share']:.2f}, colour {r['colour_accuracy']:.2f}"
              f", kind {r['kind_accuracy']:.2f} (chance {1 / len(SHAPE_KINDS):.2f})")
    print(f"{result['seconds_per_mesh']:.2f} s per mesh")
    return result


if __name__ == "__main__":
    import sys

    main(model_dir=sys.argv[1] if len(sys.argv) > 1 else None)
