"""Test sets with ground truth, as ``polydiff mono scenes`` writes them.

A test set is one folder; sample ``0007`` is

    0007.png              the image (8-bit RGB)
    0007.depth.npy        z-depth in metres, float32 H x W
    0007.normals.npy      unit normals, float32 H x W x 3, OpenCV camera frame
    0007.intrinsics.json  fx, fy, cx, cy, width, height in pixels
    0007.scene.json       camera height above the floor (metres), world up, seed

so that ``polydiff mono estimate TESTSET -o PRED`` reads the images directly (the ground
truth is not an image) and ``polydiff mono evaluate --truth TESTSET --pred PRED`` finds
``PRED/0007.png.depth.npy`` and the rest by the image's name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polydiff.apps.contract import Outputs
from polydiff.apps.mono.images import read_image
from polydiff.apps.mono.plots import rgb_to_uint8, save_png
from polydiff.geometry.cameras import Intrinsics
from polydiff.geometry.scenes import SceneConfig, render_scene
from polydiff.runtime import UserError

TRUTH_FILES = ("depth.npy", "normals.npy", "intrinsics.json", "scene.json")
# Peak bytes per pixel of rendering one scene (float64 rays, hits, shading), rounded up.
RENDER_BYTES_PER_PIXEL = 2000


@dataclass
class Sample:
    """One ground-truth sample: image (H, W, 3), depth (H, W), normals (H, W, 3), K."""

    name: str  # the image's file name, e.g. "0007.png"
    image: np.ndarray
    depth: np.ndarray
    normals: np.ndarray | None
    intrinsics: Intrinsics
    camera_height: float | None


def declare_scenes(out: Outputs, folder: Path, n: int) -> list[dict[str, Path]]:
    """Declare the files of ``n`` samples; per sample, kind -> temporary path."""
    return [{kind: out.file(folder / f"{i:04d}.{kind}") for kind in ("png", *TRUTH_FILES)}
            for i in range(n)]


def write_scenes(targets: list[dict[str, Path]], width: int, height: int, seed: int,
                 progress: bool = False) -> None:
    """Render one procedural scene per entry of ``targets`` (from ``declare_scenes``)."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    cfg = SceneConfig(height=height, width=width)
    for i, files in enumerate(tqdm(targets, desc="rendering scenes", disable=not progress)):
        s = render_scene(rng, cfg)
        save_png(files["png"], rgb_to_uint8(s.image.numpy()))
        for kind, values in (("depth.npy", s.depth), ("normals.npy", s.normals)):
            with open(files[kind], "wb") as f:
                np.save(f, values.numpy())
        files["intrinsics.json"].write_text(json.dumps(s.intrinsics.to_dict(), indent=2))
        files["scene.json"].write_text(json.dumps(
            {"camera_height_m": s.camera_height, "up_camera_frame": s.up.tolist(),
             "seed": seed, "index": i}, indent=2))


def sample_names(folder: Path) -> list[str]:
    """The images of ``folder`` that have ground truth beside them (sorted)."""
    if not folder.is_dir():
        raise UserError(f"test set folder not found: {folder}")
    names = sorted(p.name for p in folder.iterdir()
                   if p.suffix == ".png" and (folder / f"{p.stem}.depth.npy").is_file())
    if not names:
        raise UserError(f"no samples in {folder} (NNNN.png with NNNN.depth.npy beside it; "
                        "write a test set with `polydiff mono scenes`)")
    return names


def load_samples(folder: Path, limit: int | None = None) -> Iterator[Sample]:
    """The samples of ``folder`` in order (the first ``limit``), read one at a time; bad or
    missing files are UserErrors."""
    for name in sample_names(folder)[:limit]:
        yield load_sample(folder, name)


def load_sample(folder: Path, name: str) -> Sample:
    """One sample of a test set by its image's file name."""
    image = read_image(folder / name)
    h, w = image.shape[:2]
    stem = Path(name).stem
    try:
        depth = np.load(folder / f"{stem}.depth.npy", allow_pickle=False)
        nfile = folder / f"{stem}.normals.npy"
        normals = np.load(nfile, allow_pickle=False) if nfile.is_file() else None
        intr = Intrinsics.from_dict(json.loads((folder / f"{stem}.intrinsics.json")
                                               .read_text()))
        scene = folder / f"{stem}.scene.json"
        height = json.loads(scene.read_text()).get("camera_height_m") if scene.is_file() \
            else None
    except (OSError, ValueError, AttributeError) as err:
        raise UserError(f"sample {folder / stem}: {str(err).splitlines()[0]}") from err
    if depth.shape != (h, w) or (normals is not None and normals.shape != (h, w, 3)):
        raise UserError(f"sample {folder / stem}: depth/normals do not match the {w}x{h} image")
    if (intr.width, intr.height) != (w, h):
        raise UserError(f"sample {folder / stem}: intrinsics are for {intr.width}x"
                        f"{intr.height}, the image is {w}x{h}")
    return Sample(name, image, depth.astype(np.float64), normals, intr, height)
