"""Where a triplane training run loses the prompted shape, stage by stage.

The warm-up (``apps/mesh/anchor``) passes a shape through three hands before the student
makes it: the normal teacher's fused mesh, turned into a target SDF grid; the stage-1
auto-decoder latent fitted to that grid; the student's own 4-step sample for the target's
caption. For the first ``--items`` teacher meshes of a run, each of the three is rendered
on the canonical rig and judged by the benchmark's shape classifier
(``benchmarks/mesh_normals_samples``: nearest neighbour over ground-truth renders). Also
judged: the per-kind mean of the target grids (truncated at the anchor's truncation), the
shape a denoiser that regresses to the mean of a kind's targets would make.

    python -m benchmarks.mesh_anchor_chain runs/mesh_triplane_tiny_v10 [--items 110] [--tag T]

Needs the run folder of ``polydiff mesh train`` (its ``train_state/`` keeps the anchor set and
the latents; the bundled checkpoint has neither). Writes
benchmarks/results/mesh_anchor_chain[_T].json and a bar chart .png.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import figure_path, write_json
from benchmarks.mesh_normals_samples import nearest_kind, references
from benchmarks.mesh_triplane_samples import canonical_views
from polydiff.apps.mesh.dataset import MeshDataConfig
from polydiff.geometry.shapes import SHAPE_KINDS

DEFAULT_RUN = "runs/mesh_triplane_tiny_v10"
STAGES = ("target", "latent", "student")


def grid_mesh(sdf: torch.Tensor, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The closed surface of an SDF grid (G, G, G) indexed [x, y, z] over [-bound, bound]^3
    (``geometry.triplane.marching_cubes``) as float32 verts and int64 faces."""
    from polydiff.geometry.triplane import marching_cubes

    v, f = marching_cubes(sdf, bound)
    return torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(f)


def field_mesh(decoder, latent: torch.Tensor, resolution: int):
    from polydiff.geometry.triplane import extract_mesh

    geo, tex = decoder(latent)
    m = extract_mesh(decoder.field, geo, tex, resolution)
    return m.verts.float(), m.faces


def run_anchor(run: Path):
    """The run's trained model, anchor set, latents with their decoder, and target kinds."""
    import copy

    from polydiff.apps.mesh.anchor import (
        LATENT_FILE,
        SET_FILE,
        anchor_specs,
        load_anchor_set,
        load_latents,
    )
    from polydiff.apps.mesh.triplane_model import load_triplane_model
    from polydiff.runtime import UserError

    state = run / "train_state"
    for name in (SET_FILE, LATENT_FILE):
        if not (state / name).is_file():
            raise UserError(f"{run} has no {state.name}/{name}: give the out_dir of a "
                            f"`polydiff mesh train` run with anchor.fit_steps > 0")
    meta = json.loads((run / "polydiff.json").read_text())
    model = load_triplane_model(run)
    anchor = load_anchor_set(state / SET_FILE)
    specs = anchor_specs(int(meta["train"]["seed"]), len(anchor.prompts))
    if [p for p, _ in specs] != anchor.prompts:
        raise UserError(f"{run}: the anchor set's prompts are not anchor_specs of its seed")
    fitted = copy.deepcopy(model.decoder)
    latents = load_latents(state / LATENT_FILE, fitted)
    kinds = [s.shape for _, s in specs]
    return model, anchor, latents, fitted.eval(), kinds, float(meta["anchor"]["truncation"])


def accuracy(found: list[str], truth: list[str]) -> dict:
    return {"accuracy": float(np.mean([f == t for f, t in zip(found, truth)])),
            "per_kind": {k: [int(sum(f == k for f, t in zip(found, truth) if t == k)),
                             truth.count(k)] for k in SHAPE_KINDS},
            "found": found}


@torch.no_grad()
def main(quick: bool = True, run_dir: str | None = None, items: int | None = None,
         tag: str = "") -> dict:
    from tqdm.auto import tqdm

    from polydiff.apps.mesh.triplane_model import sample_latents
    from polydiff.geometry.meshes import normalise_verts

    run = Path(run_dir or DEFAULT_RUN)
    if run_dir is None and not run.is_dir():
        print(f"skipped: no training run at {run} (python -m polydiff.apps.mesh.train_triplane "
              f"--config configs/mesh/triplane_tiny_v10.yaml makes it)")
        return {}
    model, anchor, latents, fitted, kinds, trunc = run_anchor(run)
    n = min(len(kinds), items or (33 if quick else 110))
    cfg = MeshDataConfig(p_random_rig=0.0)
    refs, ref_kinds = references(cfg, 6 if quick else 12)
    res = model.config.resolution

    def judge(meshes) -> list[str]:
        views = torch.stack([canonical_views(normalise_verts(v), f, cfg) for v, f in meshes])
        return [SHAPE_KINDS[int(k)] for k in nearest_kind(views, refs, ref_kinds)]

    def items_of(stage: str):
        return tqdm(range(n), desc=f"{stage} meshes")

    found = {
        "target": judge([grid_mesh(anchor.sdf[i], anchor.bound) for i in items_of("target")]),
        "latent": judge([field_mesh(fitted, latents[i:i + 1], res)
                         for i in items_of("latent")]),
        "student": judge([field_mesh(model.decoder, sample_latents(
            model, anchor.text[i:i + 1], generator=torch.Generator().manual_seed(0)).sample,
            res) for i in items_of("student")]),
    }
    truth = kinds[:n]
    present = [k for k in SHAPE_KINDS if k in kinds]
    means = judge([grid_mesh(anchor.sdf[[i for i, t in enumerate(kinds) if t == k]]
                             .clamp(-trunc, trunc).mean(0), anchor.bound) for k in present])
    result = {"run": str(run), "items": n, "stages": {s: accuracy(found[s], truth)
                                                       for s in STAGES},
              "kind_mean_target": dict(zip(present, means)),
              "kind_mean_right": float(np.mean([m == k for m, k in zip(means, present)]))}
    name = "mesh_anchor_chain" + (f"_{tag}" if tag else "")
    write_json(name, result)
    draw(result, figure_path(name))
    for s in STAGES:
        print(f"{s}: {result['stages'][s]['accuracy']:.2f} of {n}")
    print("kind means read as: " + ", ".join(f"{k}->{m}" for k, m in zip(present, means)))
    return result


def draw(result: dict, path: Path) -> None:
    from polydiff.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.5))
    width = 0.8 / len(STAGES)
    for j, s in enumerate(STAGES):
        per = result["stages"][s]["per_kind"]
        share = [per[k][0] / max(1, per[k][1]) for k in SHAPE_KINDS]
        ax.bar(np.arange(len(SHAPE_KINDS)) + (j - 1) * width, share, width,
               label=f"{s} ({result['stages'][s]['accuracy']:.2f})")
    ax.set_xticks(np.arange(len(SHAPE_KINDS)), SHAPE_KINDS)
    ax.set_ylabel("judged the prompted kind")
    ax.set_title(f"{result['run']}: the first {result['items']} warm-up targets, stage by stage")
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    import argparse
    import sys

    from polydiff.runtime import UserError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", default=None, help="training run folder (out_dir)")
    parser.add_argument("--items", type=int, default=None, help="teacher meshes to judge")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--tag", default="", help="results name suffix")
    a = parser.parse_args()
    try:
        main(quick=not a.full, run_dir=a.run, items=a.items, tag=a.tag)
    except UserError as err:
        sys.exit(f"error: {err}")
