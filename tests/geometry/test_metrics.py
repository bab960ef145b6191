"""Metrics against hand-computed values."""

import numpy as np
import pytest

from polydiff.geometry.cameras import Intrinsics
from polydiff.geometry.metrics import (
    align_depth,
    depth_metrics,
    fit_scale_shift,
    intrinsics_metrics,
    normal_metrics,
)


def test_affine_prediction_is_perfect_after_alignment():
    gt = np.array([[1.0, 2.0], [4.0, 8.0]])
    m = depth_metrics(3 * gt - 1, gt)
    assert m.abs_rel == pytest.approx(0, abs=1e-12) and m.delta1 == 1.0
    disp = depth_metrics(0.5 / gt + 2, gt, space="disparity", pred_kind="disparity")
    assert disp.abs_rel == pytest.approx(0, abs=1e-12)
    assert fit_scale_shift(np.array([0.0, 1.0]), np.array([2.0, 5.0])) == pytest.approx((3, 2))


@pytest.mark.parametrize("space", ["depth", "disparity"])
def test_affine_copies_of_depth_or_disparity_align_exactly_in_both_spaces(space):
    # a room's depth (1-9 m) and affine copies of it in depth and in disparity form
    gt = np.random.default_rng(0).uniform(1.0, 9.0, (24, 32))
    depth_copy = 0.07 * gt + 0.3  # what mono and Marigold predict (relative depth)
    disparity_copy = 2.0 / gt - 0.1
    for pred, kind in ((depth_copy, "depth"), (disparity_copy, "disparity")):
        m = depth_metrics(pred, gt, space=space, pred_kind=kind)
        assert m.abs_rel < 1e-9 and m.delta1 == 1.0, (kind, m)
    # reading the depth copy as a disparity (the old `--space disparity`) is far off
    wrong = depth_metrics(depth_copy, gt, space="disparity", pred_kind="disparity")
    assert wrong.abs_rel > 0.3


def test_disparity_alignment_weighs_near_pixels_more():
    gt = np.array([1.0, 2.0, 4.0, 8.0])
    pred = gt * np.array([1.0, 1.0, 1.0, 1.5])  # the far pixel is off
    near = depth_metrics(pred, gt, space="disparity")
    far = depth_metrics(pred, gt, space="depth")
    err_d = np.abs(align_depth(pred, gt, np.ones(4, bool), "disparity") - gt) / gt
    err_z = np.abs(align_depth(pred, gt, np.ones(4, bool), "depth") - gt) / gt
    assert err_d[:3].max() < err_z[:3].max()  # disparity fits the near pixels better
    assert near.abs_rel > 0 and far.abs_rel > 0


def test_hand_computed_depth_metrics_without_alignment():
    gt = np.array([1.0, 2.0, 4.0, 10.0])
    pred = np.array([1.1, 2.0, 6.0, 10.0])  # ratios 1.1, 1, 1.5, 1
    m = depth_metrics(pred, gt, align=False)
    assert m.abs_rel == pytest.approx((0.1 + 0 + 0.5 + 0) / 4)
    assert m.rmse == pytest.approx(np.sqrt((0.01 + 4) / 4))
    assert (m.delta1, m.delta2, m.delta3) == (0.75, 1.0, 1.0)
    masked = depth_metrics(pred, gt, np.array([True, True, False, True]), align=False)
    assert masked.abs_rel == pytest.approx(0.1 / 3)


def test_hand_computed_normal_metrics():
    gt = np.array([[0.0, 0.0, -1.0]] * 4)
    ang = np.radians([0.0, 10.0, 20.0, 45.0])
    pred = np.stack([np.sin(ang), np.zeros(4), -np.cos(ang)], 1) * 3.0  # not unit
    m = normal_metrics(pred, gt)
    assert m.mean == pytest.approx(18.75) and m.median == pytest.approx(15.0)
    assert (m.below_11_25, m.below_22_5, m.below_30) == (0.5, 0.75, 0.75)


def test_hand_computed_intrinsics_errors():
    gt = Intrinsics(100.0, 100.0, 50.0, 40.0, 100, 80)
    est = Intrinsics(110.0, 95.0, 45.0, 44.0, 100, 80)
    e = intrinsics_metrics(est, gt)
    assert e.e_f == pytest.approx(0.1) and e.e_b == pytest.approx(0.1)
