"""One image in, every result out: the network's estimates plus intrinsics and metric scale."""

from __future__ import annotations

import time

import numpy as np
import torch

from polydiff.apps.mono.config import EstimateOptions
from polydiff.apps.mono.metric_depth import metric_depth_from_floor
from polydiff.apps.mono.results import ImageResult
from polydiff.geometry.cameras import Intrinsics

FALLBACK_FOV_DEG = 60.0
# Metric depth needs the fitted floor to cover at least this share of the image's pixels;
# below it (a portrait, a close-up, a table top) depth stays relative, with a note.
MIN_FLOOR_FRACTION = 0.02


def fixed_fov_intrinsics(width: int, height: int, fov_x_deg: float = FALLBACK_FOV_DEG
                         ) -> Intrinsics:
    """The fixed-field-of-view guess (centred principal point, square pixels)."""
    return Intrinsics.from_fov(fov_x_deg, width, height)


def estimate_image(predictor, image: np.ndarray, options: EstimateOptions,
                   generator: torch.Generator, camera_height: float | None,
                   min_floor_fraction: float = MIN_FLOOR_FRACTION) -> ImageResult:
    """Run ``predictor`` on (H, W, 3) ``image`` and make depth metric where a floor allows.

    ``camera_height``: metres above the floor (None keeps depth relative). The floor's
    support (the share of the pixels on the fitted floor plane; None when no fit ran) is
    ``info["floor_support"]``; below ``min_floor_fraction`` depth stays relative.
    """
    h, w = image.shape[:2]
    start = time.perf_counter()
    pred = predictor(image, options, generator)
    seconds = time.perf_counter() - start
    notes = list(pred.notes)
    intrinsics = pred.intrinsics
    if intrinsics is None:
        intrinsics = fixed_fov_intrinsics(w, h)
        notes.append(f"intrinsics not estimated: a {FALLBACK_FOV_DEG:g} degree horizontal "
                     "field of view is assumed")
    depth, metric, fit_info = pred.depth, False, None
    if depth is not None and camera_height is not None:
        if pred.normals is None:
            notes.append("no metric scale: the floor is found from normals (add the normals task)")
        else:
            rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=generator)))
            fit = metric_depth_from_floor(depth, pred.normals, intrinsics, camera_height, rng)
            if fit is None:
                notes.append("no floor plane found: depth stays relative")
            else:
                fit_info = {"scale_m": fit.scale, "shift_m": fit.shift,
                            "floor_fraction": fit.floor_fraction,
                            "floor_pixels_read": fit.floor_pixels,
                            "min_floor_fraction": min_floor_fraction,
                            "used": fit.floor_fraction >= min_floor_fraction}
                if fit_info["used"]:
                    depth, metric = fit.depth, True
                else:
                    notes.append(f"the floor covers {100 * fit.floor_fraction:.2g} % of the "
                                 f"pixels (< {100 * min_floor_fraction:g} %): depth stays "
                                 "relative")
    info = {"mode": options.mode, "tasks": list(options.tasks), "seconds": round(seconds, 4),
            "focal_lengths": "one (square pixels)" if options.square_pixels else "two (fx, fy)",
            "camera_height_m": camera_height, "metric_fit": fit_info,
            "floor_support": None if fit_info is None else fit_info["floor_fraction"],
            "notes": notes}
    if options.mode != "one-step":
        info.update(steps=options.steps, members=options.members)
        if options.mode == "refine":
            info["refine_steps"] = options.refine_steps
        if pred.depth_uncertainty is not None:
            info["depth_uncertainty_mean"] = float(pred.depth_uncertainty.mean())
        if pred.normals_uncertainty is not None:
            info["normals_uncertainty_mean_deg"] = float(pred.normals_uncertainty.mean())
    return ImageResult(image, depth, metric, pred.normals, intrinsics,
                       pred.intrinsics is not None, info, pred.depth_uncertainty,
                       pred.normals_uncertainty)
