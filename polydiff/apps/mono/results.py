"""The result files of ``polydiff mono estimate``, named after the input's full file name.

For an input ``photo.jpg`` and ``-o out``, every file is ``out/photo.jpg.<result>``, so that
``photo.jpg`` and ``photo.png`` of one folder get results of their own:

    photo.jpg.depth.npy         float32 H x W: metres when a floor gave the scale,
                                otherwise relative depth in [0, 1] (0 near)
    photo.jpg.depth.png         16-bit: millimetres when metric, otherwise relative x 65535
    photo.jpg.depth_vis.png     coloured depth
    photo.jpg.points.ply        coloured point cloud (camera frame; every k-th pixel in
                                both directions when the image has more than MAX_POINTS)
    photo.jpg.normals.npy       float32 H x W x 3, unit, OpenCV camera frame
    photo.jpg.normals.png
    photo.jpg.intrinsics.json   fx, fy, cx, cy, width, height in pixels
    photo.jpg.estimate.json     mode, timings, units, notes
    photo.jpg.depth_uncertainty.npy/.png, photo.jpg.normals_uncertainty.npy/.png
                                with more than one member (ensemble / refine)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polydiff.apps.contract import Outputs
from polydiff.apps.mono.metric_depth import grid_stride, strided_camera
from polydiff.apps.mono.plots import (
    depth_picture,
    normals_picture,
    save_png,
    uncertainty_picture,
)
from polydiff.geometry.cameras import Intrinsics
from polydiff.geometry.pointcloud import depth_to_points, write_ply
from polydiff.runtime import UserError, check_finite

MAX_POINTS = 1_000_000
TASK_FILES: dict[str, tuple[str, ...]] = {
    "depth": ("depth.npy", "depth.png", "depth_vis.png", "points.ply"),
    "normals": ("normals.npy", "normals.png"),
    "camera": (),
}
UNCERTAINTY_FILES: dict[str, tuple[str, ...]] = {
    "depth": ("depth_uncertainty.npy", "depth_uncertainty.png"),
    "normals": ("normals_uncertainty.npy", "normals_uncertainty.png"),
}
ALWAYS = ("intrinsics.json", "estimate.json")


@dataclass
class ImageResult:
    """Everything written for one image (arrays at the input size H x W)."""

    image: np.ndarray  # (H, W, 3) in [0, 1]
    depth: np.ndarray | None  # (H, W) metres if metric else relative [0, 1]
    metric: bool
    normals: np.ndarray | None  # (H, W, 3)
    intrinsics: Intrinsics  # estimated, or the fixed-field-of-view guess
    intrinsics_estimated: bool
    info: dict  # settings and notes for estimate.json
    depth_uncertainty: np.ndarray | None = None  # (H, W), relative units
    normals_uncertainty: np.ndarray | None = None  # (H, W), degrees


def result_kinds(tasks: tuple[str, ...], uncertainty: bool) -> list[str]:
    """The results (``depth.npy``, ...) written for ``tasks``, uncertainty maps or not."""
    kinds = [k for t in tasks for k in TASK_FILES[t]]
    if uncertainty:
        kinds += [k for t in tasks for k in UNCERTAINTY_FILES.get(t, ())]
    return kinds + list(ALWAYS)


def result_path(folder: Path, input_name: str, kind: str) -> Path:
    """``folder/<input file name>.<kind>``, e.g. ``out/photo.jpg.depth.png``."""
    return folder / f"{input_name}.{kind}"


def declare(out: Outputs, folder: Path, input_name: str, kinds: list[str]) -> dict[str, Path]:
    """Declare the results of one input; returns kind -> temporary path to write."""
    return {k: out.file(result_path(folder, input_name, k)) for k in kinds}


def write_result(targets: dict[str, Path], res: ImageResult, name: str) -> None:
    """Write ``res`` to the declared temporary paths ``targets`` (kind -> path); every
    declared kind must be written. Non-finite results are a UserError (nothing written)."""
    hint = "the checkpoint (--model) gives NaN or infinity for this image"
    for what, values in (("depth", res.depth), ("normals", res.normals),
                         ("depth uncertainty", res.depth_uncertainty),
                         ("normals uncertainty", res.normals_uncertainty)):
        if values is not None:
            check_finite(values, f"the {what} of {name}", hint)
    def need(values: np.ndarray | None) -> np.ndarray:
        if values is None:  # the plan and the estimate disagree: a bug, not a user error
            raise RuntimeError(f"{name}: a declared result is missing from the estimate")
        return values

    writers = {
        "depth.npy": lambda p: _save_npy(p, need(res.depth)),
        "depth.png": lambda p: save_png(p, depth_png(need(res.depth), res.metric)),
        "depth_vis.png": lambda p: save_png(p, depth_picture(need(res.depth))),
        "points.ply": lambda p: _write_points(p, need(res.depth), res),
        "normals.npy": lambda p: _save_npy(p, need(res.normals)),
        "normals.png": lambda p: save_png(p, normals_picture(need(res.normals))),
        "depth_uncertainty.npy": lambda p: _save_npy(p, need(res.depth_uncertainty)),
        "depth_uncertainty.png": lambda p: save_png(p, uncertainty_picture(
            need(res.depth_uncertainty))),
        "normals_uncertainty.npy": lambda p: _save_npy(p, need(res.normals_uncertainty)),
        "normals_uncertainty.png": lambda p: save_png(p, uncertainty_picture(
            need(res.normals_uncertainty))),
        "intrinsics.json": lambda p: Path(p).write_text(
            json.dumps(res.intrinsics.to_dict(), indent=2)),
        "estimate.json": lambda p: Path(p).write_text(json.dumps(_info(res), indent=2)),
    }
    for kind, path in targets.items():
        writers[kind](path)


def depth_png(depth: np.ndarray, metric: bool) -> np.ndarray:
    """(H, W) depth -> uint16: millimetres when metric, otherwise relative x 65535."""
    scaled = np.asarray(depth, np.float32) * np.float32(1000.0 if metric else 65535.0)
    np.round(scaled, out=scaled)
    np.clip(scaled, 0, 65535, out=scaled)
    return scaled.astype(np.uint16)


def points_stride(height: int, width: int) -> int:
    """Every k-th pixel in both directions goes into points.ply (1 up to MAX_POINTS)."""
    return grid_stride(height, width, MAX_POINTS)


def _info(res: ImageResult) -> dict:
    h, w = res.image.shape[:2]
    return {**res.info, "width": w, "height": h,
            "depth_units": "m" if res.metric else "relative (0 near, 1 far)",
            "depth_png_scale": 1000.0 if res.metric else 65535.0,
            "intrinsics_estimated": res.intrinsics_estimated,
            "points_stride": points_stride(h, w)}


def _save_npy(path: str | os.PathLike, values: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, np.asarray(values, np.float32))


def _write_points(path: str | os.PathLike, depth: np.ndarray, res: ImageResult) -> None:
    k = points_stride(*depth.shape)
    depth = depth[::k, ::k]
    if not res.metric:
        depth = depth + 0.1  # relative depth: keep the points off the eye
    camera = strided_camera(res.intrinsics, k, *depth.shape)
    pts, rgb = depth_to_points(depth, camera, res.image[::k, ::k])
    write_ply(path, pts, rgb)


# ----------------------------------------------------------------------------- reading
@dataclass
class StoredResult:
    """What an estimate output folder holds for one input (None where not written)."""

    depth: np.ndarray | None
    metric: bool
    normals: np.ndarray | None
    intrinsics: Intrinsics | None
    intrinsics_estimated: bool


def read_result(folder: Path, input_name: str, width: int, height: int) -> StoredResult:
    """The results of ``input_name`` in ``folder``, checked against the W x H image."""
    def path(kind: str) -> Path:
        return result_path(folder, input_name, kind)

    try:
        info = json.loads(path("estimate.json").read_text()) \
            if path("estimate.json").is_file() else {}
        depth = _load_npy(path("depth.npy"), (height, width))
        normals = _load_npy(path("normals.npy"), (height, width, 3))
        asked = "camera" in info.get("tasks", ["camera"])  # else intrinsics.json is the guess
        intr = Intrinsics.from_dict(json.loads(path("intrinsics.json").read_text())) \
            if asked and path("intrinsics.json").is_file() else None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{folder}: cannot read the results of {input_name}: "
                        f"{str(err).splitlines()[0]}") from err
    if depth is None and normals is None and intr is None:
        raise UserError(f"{folder} holds no results of {input_name} (expected "
                        f"{result_path(folder, input_name, 'depth.npy')}; write them with "
                        "`polydiff mono estimate`)")
    if intr is not None and (intr.width, intr.height) != (width, height):
        raise UserError(f"{path('intrinsics.json')} is for {intr.width}x{intr.height}, the "
                        f"image is {width}x{height}")
    for what, values in (("depth", depth), ("normals", normals)):
        if values is not None and not np.isfinite(values).all():
            raise UserError(f"{path(what + '.npy')} holds non-finite values")
    return StoredResult(depth, info.get("depth_units") == "m", normals, intr,
                        bool(info.get("intrinsics_estimated", intr is not None)))


def _load_npy(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    if not path.is_file():
        return None
    values = np.load(path, allow_pickle=False)
    if values.shape != shape:
        raise ValueError(f"{path.name} has shape {values.shape}, expected {shape}")
    if values.dtype.kind != "f":
        raise ValueError(f"{path.name} does not hold floats")
    return values.astype(np.float64)
