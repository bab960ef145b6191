"""A real photograph with measured depth and calibration, and the simple baselines for it.

scikit-image's wheel ships the left view of the Middlebury 2014 "Motorcycle" stereo pair
with its ground-truth disparity, measured by structured light (Scharstein et al., GCPR
2014), down-sampled 4x to 741 x 500 (``skimage.data.stereo_motorcycle``). Its documented
calibration at that size: focal length 994.978 px (square pixels), principal point
(311.193, 254.877) px, baseline 193.001 mm and a principal-point offset between the two
cameras doffs = 31.086 px, so that z-depth is Z = baseline * f / (d + doffs). Pixels with
no ground truth (NaN or inf disparity) get NaN depth.
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np
from PIL import Image

from polydiff.apps.mono.testset import Sample
from polydiff.geometry.cameras import Intrinsics

MOTORCYCLE_F = 994.978  # px, at 741 x 500
MOTORCYCLE_C = (311.193, 254.877)  # px
MOTORCYCLE_BASELINE = 0.193001  # m
MOTORCYCLE_DOFFS = 31.086  # px


def motorcycle_disparity() -> np.ndarray:
    """(500, 741) float32 ground-truth disparity of the left view in pixels (NaN/inf: none)."""
    with np.load(files("skimage") / "data" / "motorcycle_disp.npz") as npz:
        return npz["arr_0"].astype(np.float32)


def middlebury_motorcycle(width: int | None = None) -> Sample:
    """The left view as a test sample at ``width`` pixels (default: 741, as shipped): image
    (H, W, 3) in [0, 1], metric z-depth (H, W) in metres (NaN where unknown), no normals,
    the calibrated intrinsics; the camera height is unknown (None)."""
    with Image.open(files("skimage") / "data" / "motorcycle_left.png") as img:
        rgb = img.convert("RGB")
    w0, h0 = rgb.size
    disparity = motorcycle_disparity()
    valid = np.isfinite(disparity) & (disparity > 0)
    depth = np.where(valid, MOTORCYCLE_BASELINE * MOTORCYCLE_F
                     / (np.where(valid, disparity, 1.0) + MOTORCYCLE_DOFFS), np.nan)
    intr = Intrinsics(MOTORCYCLE_F, MOTORCYCLE_F, *MOTORCYCLE_C, w0, h0)
    if width is not None and width != w0:
        height = round(h0 * width / w0)
        rgb = rgb.resize((width, height), Image.LANCZOS)
        depth = np.asarray(Image.fromarray(depth.astype(np.float32)).resize(
            (width, height), Image.NEAREST), np.float64)
        intr = intr.resized(width, height)
    image = np.asarray(rgb, np.float32) / 255.0
    return Sample("motorcycle.png", image, depth.astype(np.float64), None, intr, None)


def vertical_prior(height: int, width: int) -> np.ndarray:
    """The baseline depth (H, W): farther with each row up the picture (a ground-plane
    prior that sees nothing of the image); affine alignment fits its scale and shift."""
    return np.repeat(np.linspace(2.0, 1.0, height)[:, None], width, axis=1)
