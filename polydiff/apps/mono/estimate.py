"""One image in, every result out: the network's estimates plus intrinsics and metric scale.

Also picks the model behind ``--model``: the bundled checkpoint, a polydiff mono folder,
or a user's Marigold depth/normals pipeline folder (diffusers layout, loaded offline).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from polydiff.apps.mono.metric import metric_depth_from_floor
from polydiff.apps.mono.model import load_model
from polydiff.apps.mono.outputs import ImageResult
from polydiff.apps.mono.pipeline import EstimateOptions, MonoPipeline, fixed_fov_intrinsics
from polydiff.runtime import UserError
from polydiff.weights import bundled_path


def load_pipeline(model_dir: Path | None, device: torch.device):
    """A MonoPipeline (bundled or polydiff folder) or a MarigoldPipeline (Marigold folder)."""
    folder = Path(model_dir) if model_dir is not None else bundled_path("mono")
    if not folder.is_dir():
        raise UserError(f"model folder not found: {folder}")
    index = folder / "model_index.json"
    if index.is_file():
        from polydiff.apps.mono.marigold import MarigoldPipeline

        return MarigoldPipeline.load(folder, json.loads(index.read_text()), device)
    return MonoPipeline(load_model(folder, device), device)


def estimate_image(pipeline, image: np.ndarray, options: EstimateOptions,
                   generator: torch.Generator, camera_height: float | None) -> ImageResult:
    """Run ``pipeline`` on (H, W, 3) ``image`` and make depth metric where a floor allows."""
    h, w = image.shape[:2]
    start = time.perf_counter()
    pred = pipeline(image, options, generator)
    seconds = time.perf_counter() - start
    notes = list(pred.notes)
    intrinsics = pred.intrinsics
    if intrinsics is None:
        intrinsics = fixed_fov_intrinsics(w, h)
        notes.append("intrinsics not estimated: a 60 degree horizontal field of view is assumed")
    depth, metric, scale = pred.depth, False, None
    if depth is not None and camera_height is not None:
        if pred.normals is None:
            notes.append("no metric scale: the floor is found from normals (add the normals task)")
        else:
            rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=generator)))
            fit = metric_depth_from_floor(depth, pred.normals, intrinsics, camera_height, rng)
            if fit is None:
                notes.append("no floor plane found: depth stays relative")
            else:
                depth, metric = fit.depth, True
                scale = {"scale_m": fit.scale, "shift_m": fit.shift,
                         "floor_fraction": float(fit.floor.mean())}
    info = {"mode": options.mode, "tasks": list(options.tasks), "seconds": round(seconds, 4),
            "camera_height_m": camera_height, "metric_fit": scale, "notes": notes}
    if options.mode != "one-step":
        info.update(steps=options.steps, ensemble=options.ensemble)
        if pred.depth_uncertainty is not None:
            info["depth_uncertainty_mean"] = float(pred.depth_uncertainty.mean())
        if pred.normals_uncertainty is not None:
            info["normals_uncertainty_mean_deg"] = float(pred.normals_uncertainty.mean())
    return ImageResult(image, depth, metric, pred.normals, intrinsics, info,
                       pred.depth_uncertainty, pred.normals_uncertainty)
