"""Metrics of mono's results against a test set with ground truth (``polydiff mono scenes``).

Either the model runs on the test set's images (as ``estimate`` would, with each sample's
true camera height for the metric scale), or the results an earlier ``estimate`` wrote
into a folder are read. Depth: AbsRel, RMSE and delta_k after least-squares scale and
shift in depth or disparity space (``polydiff.geometry.metrics``); where the depth is
metric, also ``metric_abs_rel`` without any alignment. Normals: angular errors. Intrinsics:
e_f and e_b of DM-Calib (a failed fit counts as the 60-degree guess, and in
``intrinsics_failed``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from polydiff.apps.mono.config import EstimateOptions
from polydiff.apps.mono.estimate import estimate_image, fixed_fov_intrinsics
from polydiff.apps.mono.results import StoredResult, read_result
from polydiff.apps.mono.testset import Sample
from polydiff.geometry.metrics import depth_metrics, intrinsics_metrics, normal_metrics


def sample_metrics(pred: StoredResult, gt: Sample, space: str = "depth") -> dict[str, float]:
    """Per-sample metrics of whatever ``pred`` holds."""
    out: dict[str, float] = {}
    if pred.depth is not None:
        out.update(depth_metrics(pred.depth, gt.depth, space=space)._asdict())
        if pred.metric:
            out["metric_abs_rel"] = depth_metrics(pred.depth, gt.depth, align=False).abs_rel
    if pred.normals is not None and gt.normals is not None:
        out.update({f"normal_{k}": v
                    for k, v in normal_metrics(pred.normals, gt.normals)._asdict().items()})
    if pred.intrinsics is not None:
        estimated = pred.intrinsics_estimated
        intr = pred.intrinsics if estimated else fixed_fov_intrinsics(gt.intrinsics.width,
                                                                      gt.intrinsics.height)
        out.update(intrinsics_metrics(intr, gt.intrinsics)._asdict())
        out["intrinsics_failed"] = float(not estimated)
    return out


def _summary(rows: list[dict[str, float]], **extra) -> dict:
    """Means over samples; a metric some samples lack is averaged over those that have it,
    with ``<metric>_n`` saying how many."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    out = {"n": len(rows), **extra}
    for k in keys:
        values = [r[k] for r in rows if k in r]
        out[k] = float(np.mean(values))
        if len(values) != len(rows):
            out[f"{k}_n"] = len(values)
    return out


def evaluate_model(predictor, samples: Iterable[Sample], options: EstimateOptions, seed: int,
                   space: str = "depth", progress: bool = False) -> dict:
    """Run ``predictor`` on every sample (seed ``seed`` each) and average the metrics;
    also the images per second of the network and of the whole estimate."""
    from tqdm.auto import tqdm

    rows, net_seconds, total_seconds = [], 0.0, 0.0
    for s in tqdm(samples, desc="evaluating", disable=not progress):
        start = time.perf_counter()
        res = estimate_image(predictor, s.image, options, torch.Generator().manual_seed(seed),
                             s.camera_height)
        total_seconds += time.perf_counter() - start
        net_seconds += res.info["seconds"]
        stored = StoredResult(res.depth, res.metric, res.normals,
                              res.intrinsics if "camera" in options.tasks else None,
                              res.intrinsics_estimated)
        rows.append(sample_metrics(stored, s, space))
    n = len(rows)
    return _summary(rows, mode=options.mode, space=space,
                    images_per_second=n / max(total_seconds, 1e-9),
                    network_images_per_second=n / max(net_seconds, 1e-9))


def evaluate_folder(pred: Path, samples: Iterable[Sample], space: str = "depth") -> dict:
    """Average the metrics of the results that ``estimate`` wrote into ``pred``."""
    rows = []
    for s in samples:
        h, w = s.depth.shape
        rows.append(sample_metrics(read_result(pred, s.name, w, h), s, space))
    return _summary(rows, space=space, pred=str(pred))
