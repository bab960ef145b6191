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
    est = intrinsics_from_camera_image(camera_image(K), np.random.default_rng(0),
                                       square_pixels=K.fx == K.fy)
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
    est = intrinsics_from_camera_image(cam, rng, square_pixels=False)
    err = intrinsics_metrics(est, K)
    assert err.e_f < 0.01 and err.e_b < 0.01
    # a plain least-squares fit (no RANSAC) would be ruined by the outliers
    loose = intrinsics_from_camera_image(cam, np.random.default_rng(1), threshold=1e9,
                                         square_pixels=False)
    assert intrinsics_metrics(loose, K).e_f > 0.05


def test_seeded_ransac_is_repeatable():
    K = Intrinsics(60.0, 60.0, 32.0, 32.0, 64, 64)
    gen = torch.Generator().manual_seed(0)
    cam = camera_image(K) + 0.01 * torch.randn(2, 64, 64, generator=gen)
    a = intrinsics_from_camera_image(cam, np.random.default_rng(5))
    b = intrinsics_from_camera_image(cam, np.random.default_rng(5))
    assert a == b


def test_square_pixels_survive_noise_and_outliers():
    K = Intrinsics(80.0, 80.0, 66.0, 45.0, 128, 96)
    gen = torch.Generator().manual_seed(2)
    cam = camera_image(K)
    cam += 2e-4 * torch.randn(2, 96, 128, generator=gen)
    bad = torch.rand(96, 128, generator=gen) < 0.3
    cam[:, bad] = torch.rand(2, int(bad.sum()), generator=gen) * 2 - 1
    est = intrinsics_from_camera_image(cam, np.random.default_rng(2))
    assert est.fx == est.fy
    assert intrinsics_metrics(est, K).e_f < 0.01 and intrinsics_metrics(est, K).e_b < 0.01


def test_a_photo_squeezed_to_a_square_comes_back_in_its_own_pixels():
    photo = Intrinsics(500.0, 500.0, 330.0, 236.0, 640, 480)
    # the Camera Image a network at 48 x 48 should give for the squeezed photo
    cam = camera_image(photo.resized(48, 48))
    for square in (True, False):
        est = intrinsics_from_camera_image(cam, np.random.default_rng(0), size=(640, 480),
                                           square_pixels=square)
        assert (est.width, est.height) == (640, 480)
        for a, b in zip((est.fx, est.fy, est.cx, est.cy), (500.0, 500.0, 330.0, 236.0)):
            assert a == pytest.approx(b, rel=1e-5)


def test_one_focal_length_unless_two_are_asked_for():
    """A network that does not see the squeeze gives a Camera Image with fx' = fy' at
    48 x 48: read back at 640 x 480 with two focal lengths, fy / fx = H / W = 0.75 (the
    reported bug); with square pixels fx = fy, between the two separate fits."""
    cam = camera_image(Intrinsics(40.0, 40.0, 24.0, 24.0, 48, 48))
    rng = np.random.default_rng(0)
    two = intrinsics_from_camera_image(cam, rng, size=(640, 480), square_pixels=False)
    assert two.fy / two.fx == pytest.approx(0.75, rel=1e-6)
    one = intrinsics_from_camera_image(cam, rng, size=(640, 480))
    assert one.fx == one.fy and two.fy < one.fx < two.fx
    assert one.cx == pytest.approx(320.0) and one.cy == pytest.approx(240.0)
