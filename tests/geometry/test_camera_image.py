"""DM-Calib Camera Image: encoding matches the definition; RANSAC recovers K."""

import math

import numpy as np
import pytest
import torch

from polydiff.geometry.camera_image import camera_image, intrinsics_from_camera_image
from polydiff.geometry.cameras import Intrinsics
from polydiff.geometry.metrics import intrinsics_metrics


def test_definition_at_one_pixel():
    K = Intrinsics(50.0, 40.0, 30.0, 20.0, 64, 48)
    cam = camera_image(K)
    u, v = 7, 41
    r = np.array([(u + 0.5 - 30.0) / 50.0, (v + 0.5 - 20.0) / 40.0, 1.0])
    r /= np.linalg.norm(r)
    assert cam[0, v, u] == pytest.approx(math.atan2(r[0], r[2]) / math.pi * 2, abs=1e-6)
    assert cam[1, v, u] == pytest.approx(math.acos(r[1]) / math.pi * 2 - 1, abs=1e-6)
    assert cam.abs().max() <= 1


@pytest.mark.parametrize("K", [Intrinsics(30.0, 30.0, 34.0, 29.0, 64, 64),
                               Intrinsics(300.0, 330.0, 150.0, 90.0, 320, 200)])
def test_round_trip_exact(K):
    est = intrinsics_from_camera_image(camera_image(K), np.random.default_rng(0))
    for a, b in zip((est.fx, est.fy, est.cx, est.cy), (K.fx, K.fy, K.cx, K.cy)):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-4)


def test_ransac_survives_noise_and_outliers():
    K = Intrinsics(80.0, 72.0, 66.0, 45.0, 128, 96)
    rng = np.random.default_rng(1)
    gen = torch.Generator().manual_seed(1)
    cam = camera_image(K, torch.zeros(96, 128))
    cam[:2] += 2e-4 * torch.randn(2, 96, 128, generator=gen)
    bad = torch.rand(96, 128, generator=gen) < 0.3  # 30 % of the pixels are garbage
    cam[:2, bad] = torch.rand(2, int(bad.sum()), generator=gen) * 2 - 1
    est = intrinsics_from_camera_image(cam, rng)
    err = intrinsics_metrics(est, K)
    assert err.e_f < 0.01 and err.e_b < 0.01
    # a plain least-squares fit (no RANSAC) would be ruined by the outliers
    loose = intrinsics_from_camera_image(cam, np.random.default_rng(1), threshold=1e9)
    assert intrinsics_metrics(loose, K).e_f > 0.05


def test_seeded_ransac_is_repeatable():
    K = Intrinsics(60.0, 60.0, 32.0, 32.0, 64, 64)
    gen = torch.Generator().manual_seed(0)
    cam = camera_image(K) + 0.01 * torch.randn(2, 64, 64, generator=gen)
    a = intrinsics_from_camera_image(cam, np.random.default_rng(5))
    b = intrinsics_from_camera_image(cam, np.random.default_rng(5))
    assert a == b
