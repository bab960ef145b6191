"""Test sets with ground truth (written by ``polydiff mono scenes``) and their evaluation.

A test set is a folder of sample folders, each holding image.png, depth.npy (z-depth in
metres, H x W), normals.npy (H x W x 3, OpenCV camera frame), intrinsics.json and
scene.json (camera height in metres).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from polydiff.apps.mono.outputs import read_image, save_rgb
from polydiff.apps.mono.pipeline import EstimateOptions, MonoPrediction, fixed_fov_intrinsics
from polydiff.geometry.cameras import Intrinsics
from polydiff.geometry.metrics import depth_metrics, intrinsics_metrics, normal_metrics
from polydiff.geometry.scenes import SceneConfig, render_scene
from polydiff.runtime import UserError


@dataclass
class Sample:
    """One ground-truth sample: image (H, W, 3), depth (H, W), normals (H, W, 3), K."""

    name: str
    image: np.ndarray
    depth: np.ndarray
    normals: np.ndarray | None
    intrinsics: Intrinsics
    camera_height: float | None


def write_scenes(folder: Path, n: int, width: int, height: int, seed: int) -> None:
    """Render ``n`` procedural scenes with ground truth into ``folder``/0000, 0001, ..."""
    rng = np.random.default_rng(seed)
    cfg = SceneConfig(height=height, width=width)
    for i in range(n):
        s = render_scene(rng, cfg)
        sub = folder / f"{i:04d}"
        sub.mkdir(parents=True)
        save_rgb(sub / "image.png", s.image.numpy())
        np.save(sub / "depth.npy", s.depth.numpy())
        np.save(sub / "normals.npy", s.normals.numpy())
        (sub / "intrinsics.json").write_text(json.dumps(s.intrinsics.to_dict(), indent=2))
        (sub / "scene.json").write_text(json.dumps(
            {"camera_height_m": s.camera_height, "up_camera_frame": s.up.tolist(),
             "seed": seed, "index": i}, indent=2))


def load_samples(folder: Path, limit: int | None = None) -> list[Sample]:
    """Every sample folder under ``folder`` (sorted); bad or missing files are UserErrors."""
    if not folder.is_dir():
        raise UserError(f"data folder not found: {folder}")
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and (p / "image.png").is_file())
    if not subs:
        raise UserError(f"no samples (sub-folders with image.png) in {folder}")
    return [_load_sample(p) for p in subs[:limit]]


def _load_sample(sub: Path) -> Sample:
    image = read_image(sub / "image.png")
    h, w = image.shape[:2]
    try:
        depth = np.load(sub / "depth.npy", allow_pickle=False)
        normals = (np.load(sub / "normals.npy", allow_pickle=False)
                   if (sub / "normals.npy").is_file() else None)
        intr = Intrinsics.from_dict(json.loads((sub / "intrinsics.json").read_text()))
        scene = sub / "scene.json"
        height = json.loads(scene.read_text()).get("camera_height_m") if scene.is_file() else None
    except (OSError, ValueError) as err:
        raise UserError(f"sample {sub}: {str(err).splitlines()[0]}") from err
    if depth.shape != (h, w) or (normals is not None and normals.shape != (h, w, 3)):
        raise UserError(f"sample {sub}: depth/normals do not match the {w}x{h} image")
    if (intr.width, intr.height) != (w, h):
        raise UserError(f"sample {sub}: intrinsics are for {intr.width}x{intr.height}, "
                        f"the image is {w}x{h}")
    return Sample(sub.name, image, depth.astype(np.float64), normals, intr, height)


def sample_metrics(pred: MonoPrediction, gt: Sample, options_tasks: tuple[str, ...],
                   space: str = "depth") -> dict[str, float]:
    """Per-sample metrics of the tasks run; a failed intrinsics fit counts as the 60-degree
    fixed-field-of-view guess (and in ``intrinsics_failed``)."""
    out: dict[str, float] = {}
    if pred.depth is not None:
        out.update(depth_metrics(pred.depth, gt.depth, space=space)._asdict())
    if pred.normals is not None and gt.normals is not None:
        out.update({f"normal_{k}": v
                    for k, v in normal_metrics(pred.normals, gt.normals)._asdict().items()})
    if "camera" in options_tasks:
        intr = pred.intrinsics or fixed_fov_intrinsics(gt.intrinsics.width, gt.intrinsics.height)
        out.update(intrinsics_metrics(intr, gt.intrinsics)._asdict())
        out["intrinsics_failed"] = float(pred.intrinsics is None)
    return out


def evaluate(pipeline, samples: list[Sample], options: EstimateOptions, seed: int,
             space: str = "depth") -> dict:
    """Mean metrics over ``samples`` and the images per second of ``pipeline``."""
    rows, seconds = [], 0.0
    for s in samples:
        gen = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        pred = pipeline(s.image, options, gen)
        seconds += time.perf_counter() - start
        rows.append(sample_metrics(pred, s, options.tasks, space))
    keys = rows[0].keys()
    means = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    return {"n": len(samples), "mode": options.mode, "space": space,
            "images_per_second": len(samples) / max(seconds, 1e-9), **means}
