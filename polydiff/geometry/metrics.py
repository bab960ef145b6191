"""Evaluation metrics of monocular geometry as the field defines them (Marigold, DM-Calib).

Depth: least-squares scale and shift on valid pixels (in depth or in disparity space,
the prediction converted to that space first), then
AbsRel = mean |d_hat - d| / d, RMSE, and delta_k = fraction with max(d_hat/d, d/d_hat) < 1.25^k.
Normals: angle in degrees; mean, median and fraction below 11.25, 22.5 and 30 degrees.
Intrinsics: e_f = max relative focal error, e_b = max principal point error relative to the
half image size.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from polydiff.geometry.cameras import Intrinsics


class DepthMetrics(NamedTuple):
    abs_rel: float
    rmse: float
    delta1: float
    delta2: float
    delta3: float


class NormalMetrics(NamedTuple):
    mean: float
    median: float
    below_11_25: float
    below_22_5: float
    below_30: float


class IntrinsicsMetrics(NamedTuple):
    e_f: float
    e_b: float


def fit_scale_shift(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Least-squares (s, b) minimising sum (s pred + b - target)^2 over 1-D arrays."""
    A = np.stack([pred, np.ones_like(pred)], 1).astype(np.float64)
    (s, b), *_ = np.linalg.lstsq(A, target.astype(np.float64), rcond=None)
    return float(s), float(b)


def _fit(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``s pred + b`` with (s, b) the least-squares fit of pred to target on ``mask``."""
    s, b = fit_scale_shift(pred[mask], target[mask])
    return s * pred + b


def align_depth(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray,
                space: Literal["depth", "disparity"] = "depth",
                pred_kind: Literal["depth", "disparity"] = "depth") -> np.ndarray:
    """Affine-align a relative prediction (H, W) to ground-truth depth on ``mask``; the
    aligned depth (H, W).

    ``pred_kind`` says what the prediction is: affine-invariant depth (mono's, Marigold's)
    or affine-invariant disparity (e.g. Depth Anything's). ``space`` says where the
    least-squares residual is measured: in depth (fit to gt) or in disparity (fit to 1/gt,
    which weighs near pixels more). A prediction of the other kind is converted first; as
    its shift is unknown, it is fitted in its own space, inverted, and fitted again in
    ``space``. A perfect affine copy of either kind thus aligns exactly in both spaces.
    """
    if space not in ("depth", "disparity") or pred_kind not in ("depth", "disparity"):
        raise ValueError(f"space and pred_kind must be 'depth' or 'disparity', not "
                         f"{space!r}, {pred_kind!r}")
    target = {"depth": gt, "disparity": 1.0 / np.where(mask, gt, 1.0)}
    if pred_kind != space:  # into the other kind: fit in its own space, then invert
        own = _fit(pred, target[pred_kind], mask)
        pred = 1.0 / np.clip(own, 1e-3 * target[pred_kind][mask].min(), None)
    aligned = _fit(pred, target[space], mask)
    if space == "disparity":
        aligned = 1.0 / np.clip(aligned, 1e-3 / gt[mask].max(), None)
    return aligned


def depth_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, *,
                  space: Literal["depth", "disparity"] = "depth", align: bool = True,
                  pred_kind: Literal["depth", "disparity"] = "depth") -> DepthMetrics:
    """Metrics of predicted (H, W) against gt depth (H, W) on valid pixels (gt > 0, finite).

    ``align``: affine-align the prediction first (see :func:`align_depth`); without it
    ``pred`` must be metric depth."""
    valid = np.isfinite(gt) & (gt > 0) & np.isfinite(pred)
    if mask is not None:
        valid &= mask
    if valid.sum() < 2:
        raise ValueError("fewer than two valid depth pixels")
    d_hat = align_depth(pred, gt, valid, space, pred_kind) if align else pred
    d_hat, d = d_hat[valid], gt[valid]
    d_hat = np.clip(d_hat, 1e-6 * d.max(), None)
    ratio = np.maximum(d_hat / d, d / d_hat)
    return DepthMetrics(
        abs_rel=float(np.mean(np.abs(d_hat - d) / d)),
        rmse=float(np.sqrt(np.mean((d_hat - d) ** 2))),
        delta1=float(np.mean(ratio < 1.25)),
        delta2=float(np.mean(ratio < 1.25**2)),
        delta3=float(np.mean(ratio < 1.25**3)),
    )


def normal_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None
                   ) -> NormalMetrics:
    """(H, W, 3) normals (need not be unit) -> angular error statistics in degrees."""
    p = pred / np.linalg.norm(pred, axis=-1, keepdims=True)
    g = gt / np.linalg.norm(gt, axis=-1, keepdims=True)
    err = np.degrees(np.arccos(np.clip((p * g).sum(-1), -1.0, 1.0)))
    valid = np.isfinite(err) if mask is None else np.isfinite(err) & mask
    err = err[valid]
    return NormalMetrics(float(err.mean()), float(np.median(err)), float(np.mean(err < 11.25)),
                         float(np.mean(err < 22.5)), float(np.mean(err < 30.0)))


def intrinsics_metrics(pred: Intrinsics, gt: Intrinsics) -> IntrinsicsMetrics:
    """DM-Calib's e_f and e_b of estimated against true intrinsics (same image size)."""
    e_f = max(abs(pred.fx - gt.fx) / gt.fx, abs(pred.fy - gt.fy) / gt.fy)
    e_b = max(2 * abs(pred.cx - gt.cx) / gt.width, 2 * abs(pred.cy - gt.cy) / gt.height)
    return IntrinsicsMetrics(float(e_f), float(e_b))
