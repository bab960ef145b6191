"""The real photograph of the mono benchmark: Middlebury's motorcycle from scikit-image."""

import numpy as np
from PIL import Image

from polydiff.apps.mono.photos import (
    MOTORCYCLE_BASELINE,
    MOTORCYCLE_DOFFS,
    MOTORCYCLE_F,
    middlebury_motorcycle,
    motorcycle_disparity,
    vertical_prior,
)


def test_the_disparity_belongs_to_the_left_view():
    """Left pixel (v, u) shows what right pixel (v, u - d) shows: checked on the shipped
    pair, against the same disparity shifted by 3 px either way."""
    from importlib.resources import files

    data = files("skimage") / "data"
    left = np.asarray(Image.open(data / "motorcycle_left.png").convert("L"), np.float64)
    right = np.asarray(Image.open(data / "motorcycle_right.png").convert("L"), np.float64)
    d = motorcycle_disparity()
    v, u = np.nonzero(np.isfinite(d))
    errors = []
    for shift in (0.0, -3.0, 3.0):
        ur = np.round(u - d[v, u] - shift).astype(int)
        ok = (ur >= 0) & (ur < left.shape[1])
        errors.append(np.mean(np.abs(left[v[ok], u[ok]] - right[v[ok], ur[ok]])))
    assert errors[0] < 0.7 * min(errors[1:]), errors


def test_the_sample_has_metric_depth_and_the_calibrated_camera():
    s = middlebury_motorcycle()
    assert s.image.shape == (500, 741, 3) and s.depth.shape == (500, 741)
    k = s.intrinsics
    assert k.fx == k.fy == MOTORCYCLE_F and (k.width, k.height) == (741, 500)
    valid = np.isfinite(s.depth)
    assert 0.85 < valid.mean() < 0.99
    # Z = B f / (d + doffs) over the documented disparity range 23..245 px at full size
    lo, hi = (MOTORCYCLE_BASELINE * MOTORCYCLE_F / (np.array([245, 23]) / 4 + MOTORCYCLE_DOFFS))
    assert lo - 0.05 < np.nanmin(s.depth) and np.nanmax(s.depth) < hi + 0.05
    small = middlebury_motorcycle(192)
    assert small.image.shape == (130, 192, 3) and small.intrinsics.width == 192
    # (130 rows are 500 * 0.2599, not 500 * 192 / 741: fy / fx is off by 0.3 %)
    assert abs(small.intrinsics.fx / (MOTORCYCLE_F * 192 / 741) - 1) < 1e-9
    assert abs(small.intrinsics.fy / small.intrinsics.fx - 1) < 0.005


def test_the_vertical_prior_grows_towards_the_top():
    ramp = vertical_prior(5, 3)
    assert ramp.shape == (5, 3) and (np.diff(ramp, axis=0) < 0).all()
    assert (ramp == ramp[:, :1]).all()
