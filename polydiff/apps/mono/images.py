"""Input images of ``polydiff mono``: finding them, checking their declared size from the
header alone, and reading them as float RGB.

Sizes: sides of 8 to 16384 pixels and at most ``MAX_MEGAPIXELS`` megapixels (a 200-MP
phone mode is refused, a 50-MP one is not). The memory an estimate needs grows with the
pixel count (the results are written at the input size); it is estimated from the header
before anything is decoded and refused beyond what the machine can give.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from polydiff.runtime import UserError, check_memory, format_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MIN_SIDE, MAX_SIDE = 8, 16384
MAX_MEGAPIXELS = 50
# Peak memory of `mono estimate` per input pixel beyond python, torch and diffusers: 57 bytes
# measured on a 12-megapixel JPEG (peak RSS 1.0 GB, of which 0.32 GB the imports; see
# benchmarks/mono_depth.py, "large_image"), with room to spare.
BYTES_PER_PIXEL = 100
BASE_BYTES = 600 * 2**20  # python, torch, diffusers, the network


def estimate_bytes(width: int, height: int) -> float:
    """Estimated peak memory (bytes) of estimating one ``width`` x ``height`` image."""
    return BASE_BYTES + BYTES_PER_PIXEL * float(width) * float(height)


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


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) that ``path`` declares in its header (nothing is decoded), after
    checking it against the bounds and the free memory."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        raise UserError(f"cannot read image {path}: {str(err).splitlines()[0]}") from err
    check_size(path, w, h)
    return w, h


def check_size(path: Path, w: int, h: int) -> None:
    """Refuse sides outside [MIN_SIDE, MAX_SIDE], more than MAX_MEGAPIXELS, or more memory
    than the machine can give, naming the estimate."""
    need = estimate_bytes(w, h)
    if min(w, h) < MIN_SIDE or max(w, h) > MAX_SIDE:
        raise UserError(f"image {path} is {w}x{h}: sides must lie in [{MIN_SIDE}, {MAX_SIDE}] "
                        "pixels")
    if w * h > MAX_MEGAPIXELS * 1e6:
        raise UserError(f"image {path} declares {w}x{h} = {w * h / 1e6:.1f} megapixels, more "
                        f"than the {MAX_MEGAPIXELS} megapixels mono accepts (it would need "
                        f"about {format_bytes(need)} of memory); downscale it first")
    check_memory(need, f"estimating image {path} ({w}x{h})")


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1]; grayscale, palette, 16-bit and alpha are converted
    (alpha is composited over white). Unreadable files and refused sizes are UserErrors."""
    image_size(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img = ImageOps.exif_transpose(img)
                array = _to_rgb(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        raise UserError(f"cannot read image {path}: {str(err).splitlines()[0]}") from err
    if not np.isfinite(array).all():
        raise UserError(f"image {path} holds non-finite values")
    return array


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / peak, 0, 1)
        return np.repeat(a[..., None], 3, -1).astype(np.float32)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255
        return rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    rgb = np.array(img.convert("RGB"), dtype=np.float32)
    rgb /= 255
    return rgb
