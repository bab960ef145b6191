"""`polydiff mesh generate` end to end: seconds per mesh (triplane vs normals mode) and how
well the generated shapes follow held-out paraphrased prompts.

Both modes run through ``MeshGenerator`` (the code behind the CLI) at their defaults
(triplane: 4 steps, marching cubes at the model's resolution; normals: the normal model's
sampler steps, 4 views, fusion on a 64 grid with 150 iterations). Measured:

* seconds per mesh (median; model loading excluded), normals / triplane on the same prompts,
  run alternately so machine load hits both alike; the load average is recorded;
* agreement with the prompt, judged from renders only:
  - shape kind: the nearest-neighbour classifier over ground-truth normal renders of fresh
    procedural shapes (``benchmarks/mesh_normals_samples``; its leave-one-out accuracy on
    the references is the ceiling, 1/11 chance), applied to the mesh rendered on the
    canonical 4-view rig;
  - colour: the named colour nearest to the mean rendered colour (turntable renders);
  - prompts are written with held-out synonyms and sentence frames only (``captions``),
    plus one set in training words for comparison;
  - the student twice: reading each prompt as the nearest training caption (the default,
    ``apps/mesh/snapping``) and conditioned on the prompt as written (``--no-snap``);
* the student's decoded-SDF spread across the held-out prompts vs across noise seeds;
* what snapping reads: the share of anchor captions the prompts are read as that name the
  prompted shape and colour, with colour-survey names (``apps/mesh/colour_names``) and by
  the encoder alone;
* the normal teacher itself: shape accuracy of its sampled views for the same prompts (what
  Progressive Rendering Distillation can at best pass on to the student).

    python -m benchmarks.run mesh_generate            # quick: 4 normals-mode meshes
    python -m benchmarks.mesh_generate [--full] [--triplane DIR] [--normals DIR] [--tag T]

Writes benchmarks/results/mesh_generate[_T].json and a PNG contact sheet.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from benchmarks.common import figure_path, write_json
from benchmarks.mesh_normals_samples import nearest_kind, references
from benchmarks.mesh_triplane_samples import canonical_views, nearest_colour
from polydiff.apps.mesh.captions import COLOURS, Spec, caption, heldout_prompts
from polydiff.apps.mesh.dataset import MeshDataConfig
from polydiff.geometry.shapes import SHAPE_KINDS
from polydiff.runtime import UserError

SPEED_GOAL_S = 10.0       # per mesh on the 2-core CPU at the default resolution
SPEEDUP_GOAL = 5.0        # triplane mode against normals mode
ANCHOR_GPU_S = 1.2        # TriplaneTurbo, per mesh on a GPU
AS_WRITTEN = "triplane, as written"   # the student with --no-snap


def prompt_sets(heldout_reps: int) -> dict[str, list[tuple[str, Spec]]]:
    """Prompts with their specs: one per shape kind per repetition; colours cycle so every
    kind meets several colours. Rep 0 is the set of benchmarks/mesh_triplane_samples."""
    rng = np.random.default_rng(0)
    colours = list(COLOURS)
    out: dict[str, list[tuple[str, Spec]]] = {"train": [], "heldout": []}
    for rep in range(max(1, heldout_reps)):
        specs = [Spec(kind, colours[(i + 5 * rep) % len(colours)])
                 for i, kind in enumerate(SHAPE_KINDS)]
        for split in ("train", "heldout"):
            texts = [caption(s, rng, split) for s in specs]
            if split == "heldout" or rep == 0:
                out[split] += list(zip(texts, specs))
    return out


def rendered_colour(verts: torch.Tensor, faces: torch.Tensor, colors: torch.Tensor) -> str:
    """Nearest named colour to the mean colour of the mesh's turntable renders."""
    from polydiff.geometry.render import orbit_cameras, render_mesh

    cams = orbit_cameras(20.0, [30.0, 120.0, 210.0, 300.0], distance=2.4, fov_deg=40.0,
                         size=64)
    with torch.no_grad():
        out = render_mesh(verts.float(), faces, cams, colors=colors.float())
    cover = out.mask.sum()
    mean = (out.color.reshape(-1, 3).sum(0) / cover.clamp_min(1e-6)).numpy()
    return nearest_colour(mean)


def judge(meshes: list, specs: list[Spec], refs, ref_kinds, data_cfg) -> dict:
    """Shape kind and colour of generated meshes (GeneratedMesh, or None where no draw of the
    seed had a surface: kind and colour "empty", counted wrong) against their specs;
    "redrawn" counts meshes from a later draw of the seed (the first had no surface)."""
    made = [m for m in meshes if m is not None]
    views = torch.stack([canonical_views(m.verts, m.faces, data_cfg) for m in made])
    found = iter([SHAPE_KINDS[i] for i in nearest_kind(views, refs, ref_kinds)])
    kinds = [next(found) if m is not None else "empty" for m in meshes]
    colours = [rendered_colour(m.verts, m.faces, m.colors) if m is not None else "empty"
               for m in meshes]
    return {"kind": kinds, "colour": colours,
            "kind_accuracy": float(np.mean([k == s.shape for k, s in zip(kinds, specs)])),
            "colour_accuracy": float(np.mean([c == s.colour for c, s in zip(colours, specs)])),
            "watertight_share": float(np.mean([m is not None and watertight(m)
                                               for m in meshes])),
            "empty": len(meshes) - len(made),
            "redrawn": sum(any("noise draw" in n for n in m.notes) for m in made),
            "seconds": [m.seconds for m in made]}


def watertight(mesh) -> bool:
    import trimesh

    t = trimesh.Trimesh(mesh.verts.numpy(), mesh.faces.numpy(), process=False)
    return bool(t.is_watertight and t.is_winding_consistent)


def separation(gen, prompts: list[tuple[str, Spec]], seeds=(0, 1, 2)) -> dict:
    """How much the student's decoded field varies across prompts vs across noise seeds
    (``apps/mesh/separation``; a student that ignores its prompt varies with neither)."""
    from polydiff.apps.mesh.separation import prompt_separation

    return prompt_separation(gen.model, gen.encoder([p for p, _ in prompts]), list(seeds))


def snapping_accuracy(encoder, prompts: list[tuple[str, Spec]]) -> dict:
    """How often the anchor caption a prompt is read as names its shape and colour, with
    the colour-survey names (the default) and by the sentence encoder alone."""
    from polydiff.apps.mesh.snapping import SnappedEncoder, anchor_captions, anchor_specs

    spec_of = dict(zip(anchor_captions(), anchor_specs()))
    out = {}
    for key, names in (("colour_names", True), ("encoder_only", False)):
        read = SnappedEncoder(encoder, colour_names=names).read_as([p for p, _ in prompts])
        got = [spec_of[c] for c in read]
        out[key] = {"read_as": read,
                    "kind_accuracy": float(np.mean([g.shape == s.shape for g, (_, s) in
                                                    zip(got, prompts)])),
                    "colour_accuracy": float(np.mean([g.colour == s.colour for g, (_, s) in
                                                      zip(got, prompts)]))}
    return out


def teacher_accuracy(normal_model, encoder, prompts: list[tuple[str, Spec]], refs, ref_kinds,
                     seed: int = 0) -> dict:
    """Shape accuracy of the normal model's own sampled views (canonical rig)."""
    from polydiff.apps.mesh.multiview import camera_features
    from polydiff.apps.mesh.normals import sample_views

    cfg = normal_model.config
    az = 360.0 * torch.arange(cfg.views) / cfg.views
    feats = camera_features(torch.zeros(cfg.views), az)[None]
    x = sample_views(normal_model, encoder([p for p, _ in prompts]), feats, None,
                     torch.Generator().manual_seed(seed))
    kinds = [SHAPE_KINDS[i] for i in nearest_kind(x, refs, ref_kinds)]
    return {"kind": kinds, "guidance_scale": cfg.guidance_scale, "steps": cfg.sample_steps,
            "kind_accuracy": float(np.mean([k == s.shape for k, (_, s) in
                                            zip(kinds, prompts)]))}


def main(quick: bool = True, triplane_dir: str | None = None, normals_dir: str | None = None,
         tag: str = "") -> dict:
    from polydiff.apps.mesh.generate import MeshGenerator, turntable
    from polydiff.apps.mesh.plots import contact_sheet

    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = torch.device("cpu")
    load_before = os.getloadavg()[0]
    gens = {"triplane": MeshGenerator("triplane", triplane_dir, device),
            "normals": MeshGenerator("normals", normals_dir, device)}
    gens["normals"].encoder = gens["triplane"].encoder          # one encoder, one cache
    sets = prompt_sets(2 if quick else 4)
    n_normals = 4 if quick else len(SHAPE_KINDS)
    data_cfg = MeshDataConfig(p_random_rig=0.0)
    refs, ref_kinds = references(data_cfg, 6 if quick else 12)
    d = torch.cdist(refs.flatten(1), refs.flatten(1))
    d.fill_diagonal_(float("inf"))
    ceiling = float((ref_kinds[d.argmin(1)] == ref_kinds).float().mean())

    def run(mode: str, prompt: str):
        """The mesh, or None when seed 0's noise draws all gave a field with no surface."""
        try:
            return gens[mode](prompt, steps=None, resolution=None, views=4, seed=0,
                              fuse_iterations=150)
        except UserError as err:
            print(f"{mode}: {err}")
            return None

    meshes: dict[str, dict[str, list]] = {"triplane": {}, "normals": {}}
    # the speed pairs first: the same held-out prompts, modes alternating
    paired = sets["heldout"][:n_normals]
    for prompt, _ in paired:
        for mode in ("triplane", "normals"):
            meshes[mode].setdefault("heldout", []).append(run(mode, prompt))
    for split, prompts in sets.items():
        done = len(meshes["triplane"].get(split, []))
        for prompt, _ in prompts[done:]:
            meshes["triplane"].setdefault(split, []).append(run("triplane", prompt))
    # the same prompts conditioned as written (--no-snap), the same seeds
    gens[AS_WRITTEN] = MeshGenerator("triplane", triplane_dir, device,
                                     encoder=gens["triplane"].encoder.encoder, snap=False)
    meshes[AS_WRITTEN] = {split: [run(AS_WRITTEN, p) for p, _ in prompts]
                          for split, prompts in sets.items()}
    load_after = os.getloadavg()[0]

    t_tri = [m.seconds for m in meshes["triplane"]["heldout"][:n_normals] if m is not None]
    t_nor = [m.seconds for m in meshes["normals"]["heldout"] if m is not None]
    result: dict = {
        "models": {"triplane": str(triplane_dir or "bundled"),
                   "normals": str(normals_dir or "bundled")},
        "resolution": gens["triplane"].model.config.resolution,
        "triplane_steps": gens["triplane"].model.config.steps,
        "normals_steps": gens["normals"].model.config.sample_steps,
        "load_average": [load_before, load_after],
        "seconds_per_mesh": {"triplane": float(np.median(
            [m.seconds for ms in meshes["triplane"].values() for m in ms if m is not None])),
            "triplane_paired": float(np.median(t_tri)), "normals": float(np.median(t_nor))},
        "goals": {"seconds_per_mesh": SPEED_GOAL_S, "speedup": SPEEDUP_GOAL,
                  "anchor_gpu_seconds": ANCHOR_GPU_S},
        "classifier_ceiling_loo": ceiling, "chance": 1 / len(SHAPE_KINDS),
        "prompts": {k: [p for p, _ in v] for k, v in sets.items()},
    }
    result["speedup"] = result["seconds_per_mesh"]["normals"] / \
        result["seconds_per_mesh"]["triplane_paired"]
    for mode, by_split in meshes.items():
        result[mode] = {split: judge(ms, [s for _, s in sets[split][:len(ms)]], refs, ref_kinds,
                                     data_cfg) for split, ms in by_split.items()}
    result["teacher_views"] = {split: teacher_accuracy(gens["normals"].model,
                                                       gens["triplane"].encoder, prompts, refs,
                                                       ref_kinds)
                               for split, prompts in sets.items()}
    result["teacher_views_as_written"] = {
        split: teacher_accuracy(gens["normals"].model, gens[AS_WRITTEN].encoder, prompts, refs,
                                ref_kinds) for split, prompts in sets.items()}
    result["snapping"] = {split: snapping_accuracy(gens[AS_WRITTEN].encoder, prompts)
                          for split, prompts in sets.items()}
    result["snapping"]["heldout_fresh300"] = snapping_accuracy(
        gens[AS_WRITTEN].encoder, heldout_prompts(np.random.default_rng(12345), 300))
    result["separation"] = separation(gens["triplane"], sets["heldout"][:len(SHAPE_KINDS)])
    name = "mesh_generate" + (f"_{tag}" if tag else "")
    write_json(name, result)

    rows = {}
    for mode, n in (("triplane", len(SHAPE_KINDS)), ("normals", n_normals)):
        r = result[mode]["heldout"]
        for i, ((prompt, _), m) in enumerate(zip(sets["heldout"], meshes[mode]["heldout"])):
            if i >= n:
                break
            if m is None:
                continue
            rows[f"[{mode}] {prompt} -> {r['kind'][i]}, {r['colour'][i]} "
                 f"({m.seconds:.1f} s)"] = turntable(m.verts, m.faces, m.colors, size=96)
    s = result["seconds_per_mesh"]
    contact_sheet(figure_path(name), rows,
                  title=f"held-out prompts: triplane {s['triplane']:.2f} s/mesh, normals "
                        f"{s['normals']:.1f} s/mesh ({result['speedup']:.0f}x)")
    for mode in ("triplane", AS_WRITTEN, "normals"):
        for split, r in result[mode].items():
            print(f"{mode} {split} ({len(r['kind'])}): kind {r['kind_accuracy']:.2f}, colour "
                  f"{r['colour_accuracy']:.2f}, watertight {r['watertight_share']:.2f}")
    sep = result["separation"]
    print(f"student field spread: across prompts {sep['sdf_across_prompts']:.4f}, across "
          f"seeds {sep['sdf_across_seeds']:.4f} (separation {sep['separation']:.1f})")
    for split, r in result["snapping"].items():
        print(f"snapped caption {split}: " + ", ".join(
            f"{k} kind {v['kind_accuracy']:.2f} colour {v['colour_accuracy']:.2f}"
            for k, v in r.items()))
    for key in ("teacher_views", "teacher_views_as_written"):
        for split, r in result[key].items():
            print(f"{key} {split}: kind {r['kind_accuracy']:.2f}")
    print(f"seconds per mesh: triplane {s['triplane']:.2f}, normals {s['normals']:.1f} "
          f"({result['speedup']:.1f}x); classifier ceiling {ceiling:.2f}; load "
          f"{load_before:.1f}-{load_after:.1f}")
    return result


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--triplane", default=None, help="triplane model folder")
    parser.add_argument("--normals", default=None, help="normal model folder")
    parser.add_argument("--tag", default="", help="results name suffix")
    a = parser.parse_args()
    main(quick=not a.full, triplane_dir=a.triplane, normals_dir=a.normals, tag=a.tag)
