"""The bundled multi-view normal model, sampled for one prompt per shape kind in the training
vocabulary and one in the held-out vocabulary (unseen synonyms and sentence frames).

Checks, written to benchmarks/results/mesh_normals_samples.json with a contact sheet .png:
  * the raw normal channels' length inside the generated mask (1 for unit normals);
  * the generated mask's coverage against ground-truth renders of the same kind;
  * shape kind recognised by a nearest-neighbour classifier over ground-truth renders of
    fresh procedural shapes (canonical rig; its leave-one-out accuracy on the references
    is the ceiling, 1/11 is chance).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks.common import figure_path, write_json
from polydiff.apps.mesh.captions import COLOURS, Spec, caption
from polydiff.apps.mesh.dataset import MeshDataConfig, render_object
from polydiff.apps.mesh.multiview import camera_features
from polydiff.apps.mesh.normals import decode_views, load_normal_model, sample_views
from polydiff.apps.mesh.text_encoder import TextEncoder
from polydiff.geometry.shapes import SHAPE_KINDS
from polydiff.plotting import pyplot, save_figure

REF_SEED = 12345  # reference shapes: not the training seed


def references(cfg: MeshDataConfig, per_kind: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth canonical-rig views (N, V, 4, H, W) of ``per_kind`` shapes per kind."""
    ref_cfg = MeshDataConfig(**{**cfg.__dict__, "p_random_rig": 0.0})
    rng = np.random.default_rng(REF_SEED)
    xs, kinds = [], []
    while min((kinds.count(k) for k in range(len(SHAPE_KINDS))), default=0) < per_kind:
        x, _, spec = render_object(ref_cfg, rng)
        k = SHAPE_KINDS.index(spec.shape)
        if kinds.count(k) < per_kind:
            xs.append(x)
            kinds.append(k)
    return torch.stack(xs), torch.tensor(kinds)


def nearest_kind(x: torch.Tensor, refs: torch.Tensor, ref_kinds: torch.Tensor) -> torch.Tensor:
    """Kind of the nearest reference (L2 over all views and channels) for each x (B, ...)."""
    d = torch.cdist(x.flatten(1), refs.flatten(1))
    return ref_kinds[d.argmin(1)]


def to_rgb(x: torch.Tensor) -> np.ndarray:
    """One view (4, H, W) -> RGB image of (n + 1) / 2 on a white background."""
    normals, mask = decode_views(x[None])
    rgb = (normals[0] + 1) / 2
    rgb[~mask[0]] = 1.0
    return rgb.numpy()


def main(quick: bool = True, model_dir: str | None = None) -> dict:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = load_normal_model(model_dir)
    cfg = model.config
    data_cfg = MeshDataConfig(**{k: v for k, v in (cfg.data or {}).items()
                                 if k in MeshDataConfig.__dataclass_fields__})
    if isinstance(data_cfg.elevation_range, list):
        data_cfg.elevation_range = tuple(data_cfg.elevation_range)
    rng = np.random.default_rng(0)
    colours = list(COLOURS)
    specs = [Spec(kind, colours[i % len(colours)]) for i, kind in enumerate(SHAPE_KINDS)]
    prompts = {split: [caption(s, rng, split) for s in specs] for split in ("train", "heldout")}
    encoder = TextEncoder()
    views = cfg.views
    azimuths = 360.0 * torch.arange(views) / views
    feats = camera_features(torch.zeros(views), azimuths)[None]
    steps = 20 if quick else cfg.sample_steps
    t0 = time.time()
    samples = {}
    for split, texts in prompts.items():
        samples[split] = sample_views(model, encoder(texts), feats, steps,
                                      torch.Generator().manual_seed(0))
    seconds = (time.time() - t0) / sum(len(p) for p in prompts.values())
    refs, ref_kinds = references(data_cfg, 6 if quick else 20)
    # leave-one-out accuracy of the classifier on the references: the ceiling
    d = torch.cdist(refs.flatten(1), refs.flatten(1))
    d.fill_diagonal_(float("inf"))
    ceiling = float((ref_kinds[d.argmin(1)] == ref_kinds).float().mean())
    truth = torch.arange(len(SHAPE_KINDS))
    result = {"model": str(model_dir or "bundled"), "steps": steps,
              "guidance_scale": cfg.guidance_scale, "size": cfg.size, "views": views,
              "seconds_per_object": seconds, "classifier_ceiling_loo": ceiling,
              "chance": 1 / len(SHAPE_KINDS), "prompts": prompts}
    ref_cover = {k: float((refs[ref_kinds == i][:, :, 3] > 0).float().mean())
                 for i, k in enumerate(SHAPE_KINDS)}
    for split, x in samples.items():
        raw = x[:, :, :3].permute(0, 1, 3, 4, 2).norm(dim=-1)             # (B, V, H, W)
        mask = x[:, :, 3] > 0
        pred = nearest_kind(x, refs, ref_kinds)
        result[split] = {
            "kind_accuracy": float((pred == truth).float().mean()),
            "predicted": [SHAPE_KINDS[i] for i in pred],
            "normal_length_mean": float(raw[mask].mean()),
            "normal_length_std": float(raw[mask].std()),
            "mask_coverage": [float(m.float().mean()) for m in mask],
            "reference_coverage": [ref_cover[k] for k in SHAPE_KINDS],
            "background_normal_length_mean": float(raw[~mask].mean()),
        }
    write_json("mesh_normals_samples", result)
    draw(samples, prompts, result, refs, ref_kinds)
    print(f"mesh normals: kind accuracy {result['train']['kind_accuracy']:.2f} (train words), "
          f"{result['heldout']['kind_accuracy']:.2f} (held-out), ceiling {ceiling:.2f}, "
          f"|n| {result['train']['normal_length_mean']:.3f}, {seconds:.2f} s/object")
    return result


def draw(samples, prompts, result, refs, ref_kinds) -> None:
    plt = pyplot()
    rows = [(split, i) for split in ("train", "heldout") for i in range(len(SHAPE_KINDS))]
    views = samples["train"].shape[1]
    fig, axes = plt.subplots(len(rows), views + 1, figsize=(1.3 * (views + 1) + 3.2,
                                                            1.3 * len(rows)))
    for r, (split, i) in enumerate(rows):
        for v in range(views):
            axes[r, v].imshow(to_rgb(samples[split][i, v]), interpolation="nearest")
        ref = refs[ref_kinds == i][0, 0]
        axes[r, views].imshow(to_rgb(ref), interpolation="nearest")
        pred = result[split]["predicted"][i]
        axes[r, 0].set_ylabel(f"{prompts[split][i]}\n[{split}] -> {pred}", rotation=0,
                              ha="right", va="center", fontsize=7)
        for a in axes[r]:
            a.set_xticks([])
            a.set_yticks([])
    for v in range(views):
        axes[0, v].set_title(f"az {360 * v // views}: (n+1)/2", fontsize=7)
    axes[0, views].set_title("a true render", fontsize=7)
    save_figure(fig, figure_path("mesh_normals_samples"))


if __name__ == "__main__":
    import sys

    main(quick="--full" not in sys.argv,
         model_dir=next((a for a in sys.argv[1:] if not a.startswith("--")), None))
