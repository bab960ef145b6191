"""Reading input images and writing the per-image result files of ``polydiff mono estimate``.

Files per image: depth.npy (float32 H x W; metres when a floor gave the scale, otherwise
relative depth in [0, 1]), depth.png (16-bit: millimetres when metric, otherwise
relative x 65535), depth_vis.png (coloured), normals.npy (H x W x 3, unit, OpenCV camera
frame), normals.png, intrinsics.json, points.ply and estimate.json (units and settings);
in ensemble mode also depth_uncertainty / normals_uncertainty (.npy and .png).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageOps

from polydiff.geometry.cameras import Intrinsics
from polydiff.geometry.pointcloud import depth_to_points, write_ply
from polydiff.runtime import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MIN_SIDE, MAX_SIDE, MAX_PIXELS = 8, 16384, 64_000_000


def find_images(path: Path) -> list[Path]:
    """The image itself, or the images directly inside a folder (sorted by name)."""
    if path.is_dir():
        found = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
        return found
    if not path.is_file():
        raise UserError(f"input not found: {path}")
    return [path]


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1]; grayscale, palette, 16-bit and alpha are converted
    (alpha is composited over white). Unreadable files and absurd sizes are UserErrors."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                _check_size(path, w, h)
                img = ImageOps.exif_transpose(img)
                array = _to_rgb(img)
    except UserError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        raise UserError(f"cannot read image {path}: {str(err).splitlines()[0]}") from err
    if not np.isfinite(array).all():
        raise UserError(f"image {path} holds non-finite values")
    return array


def _check_size(path: Path, w: int, h: int) -> None:
    if min(w, h) < MIN_SIDE or max(w, h) > MAX_SIDE or w * h > MAX_PIXELS:
        raise UserError(f"image {path} is {w}x{h}: sides must lie in [{MIN_SIDE}, {MAX_SIDE}] "
                        f"pixels and the area under {MAX_PIXELS} pixels")


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / peak, 0, 1)
        return np.repeat(a[..., None], 3, -1).astype(np.float32)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255
        return rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255


@dataclass
class ImageResult:
    """Everything written for one image (arrays at the input size)."""

    image: np.ndarray  # (H, W, 3) in [0, 1]
    depth: np.ndarray | None  # (H, W) metres if metric else relative [0, 1]
    metric: bool
    normals: np.ndarray | None  # (H, W, 3)
    intrinsics: Intrinsics  # estimated, or the fixed-FOV guess
    info: dict  # settings and notes for estimate.json
    depth_uncertainty: np.ndarray | None = None  # (H, W), ensemble mode, relative units
    normals_uncertainty: np.ndarray | None = None  # (H, W), ensemble mode, degrees


def write_result(folder: Path, res: ImageResult) -> list[str]:
    """Write the result files of one image into ``folder``; returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if res.depth is not None:
        depth = res.depth.astype(np.float32)
        np.save(folder / "depth.npy", depth)
        scale = 1000.0 if res.metric else 65535.0
        Image.fromarray(np.clip(np.round(depth * scale), 0, 65535).astype(np.uint16)).save(
            folder / "depth.png")
        save_rgb(folder / "depth_vis.png", colourise_depth(depth))
        written += ["depth.npy", "depth.png", "depth_vis.png"]
        pts_depth = depth if res.metric else depth + 0.1  # relative: keep points off the eye
        pts, rgb = depth_to_points(pts_depth, res.intrinsics, res.image)
        write_ply(folder / "points.ply", pts, rgb)
        written.append("points.ply")
    if res.normals is not None:
        np.save(folder / "normals.npy", res.normals.astype(np.float32))
        save_rgb(folder / "normals.png", colourise_normals(res.normals))
        written += ["normals.npy", "normals.png"]
    for name, unc in (("depth_uncertainty", res.depth_uncertainty),
                      ("normals_uncertainty", res.normals_uncertainty)):
        if unc is not None:
            np.save(folder / f"{name}.npy", unc.astype(np.float32))
            x = np.clip(unc / max(float(np.percentile(unc, 99)), 1e-9), 0, 1)
            save_rgb(folder / f"{name}.png", matplotlib.colormaps["magma"](x)[..., :3])
            written += [f"{name}.npy", f"{name}.png"]
    (folder / "intrinsics.json").write_text(json.dumps(res.intrinsics.to_dict(), indent=2))
    info = {**res.info, "depth_units": "m" if res.metric else "relative (0 near, 1 far)",
            "depth_png_scale": 1000.0 if res.metric else 65535.0}
    (folder / "estimate.json").write_text(json.dumps(info, indent=2))
    return written + ["intrinsics.json", "estimate.json"]


def save_rgb(path: Path, rgb: np.ndarray) -> None:
    """(H, W, 3) floats in [0, 1] -> 8-bit PNG."""
    Image.fromarray(np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)).save(path)


def colourise_depth(depth: np.ndarray) -> np.ndarray:
    """(H, W) depth -> (H, W, 3) Spectral colours between its 2nd and 98th percentiles."""
    lo, hi = np.percentile(depth, [2, 98])
    x = np.clip((depth - lo) / max(hi - lo, 1e-9), 0, 1)
    return matplotlib.colormaps["Spectral"](x)[..., :3]


def colourise_normals(normals: np.ndarray) -> np.ndarray:
    """(H, W, 3) OpenCV normals -> colours (x right -> red, y up -> green, z to viewer -> blue)."""
    return np.clip((normals * np.array([1.0, -1.0, -1.0]) + 1) / 2, 0, 1)
