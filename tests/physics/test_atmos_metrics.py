"""Metrics against brute force, closed forms and exact spectra."""

import itertools

import numpy as np
import pytest

from polydiff.physics.atmos_metrics import (
    crps_ensemble,
    crps_gaussian,
    lat_weighted_rmse,
    latitude_weights,
    mean_mse_members_inf,
    radial_spectrum,
    spread_skill,
    weighted_mean,
)


def test_crps_matches_the_brute_force_pair_formula():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((7, 3, 4)), rng.standard_normal((3, 4))
    skill = np.abs(x - y).mean(0)
    pairs = sum(np.abs(x[i] - x[j]) for i, j in itertools.product(range(7), repeat=2))
    np.testing.assert_allclose(crps_ensemble(x, y, fair=False), skill - pairs / (2 * 49))
    np.testing.assert_allclose(crps_ensemble(x, y, fair=True), skill - pairs / (2 * 42))


def test_crps_of_a_large_gaussian_ensemble_is_the_closed_form():
    rng = np.random.default_rng(1)
    mu, sigma, y = 1.0, 2.0, np.array([0.0, 1.0, 4.0])
    members = mu + sigma * rng.standard_normal((20000, 3))
    np.testing.assert_allclose(crps_ensemble(members, y), crps_gaussian(mu, sigma, y), rtol=0.02)
    # and the closed form itself at y = μ: σ (2φ(0) − 1/√π)
    at_mean = 2 / np.sqrt(2 * np.pi) - 1 / np.sqrt(np.pi)
    assert crps_gaussian(0.0, 1.0, 0.0) == pytest.approx(at_mean)


def test_latitude_weighted_rmse_weights_by_cosine():
    lat = np.array([0.0, 60.0])
    np.testing.assert_allclose(latitude_weights(lat), [4 / 3, 2 / 3])
    err = np.array([[1.0, 1.0], [0.0, 0.0]])  # errors only on the equator row
    assert lat_weighted_rmse(err, 0 * err, lat) == pytest.approx(np.sqrt(2 / 3))


def test_spread_skill_is_one_for_a_calibrated_ensemble():
    rng = np.random.default_rng(2)
    lat = np.linspace(-30, 30, 8)
    centre = rng.standard_normal((400, 8, 8))
    truth = centre + rng.standard_normal((400, 8, 8))
    members = centre[None] + rng.standard_normal((5, 400, 8, 8))
    ss = spread_skill(members, truth, lat)
    assert np.sqrt(np.mean(ss.spread**2)) / np.sqrt(np.mean(ss.skill**2)) * np.sqrt(
        6 / 5) == pytest.approx(1.0, abs=0.05)
    assert ss.ratio.shape == (400,)


def test_spectrum_of_a_sine_peaks_at_its_wavenumber_and_obeys_parseval():
    n = 32
    y, x = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    f = 3.0 * np.sin(2 * np.pi * 5 * x / n) + 1.0 * np.cos(2 * np.pi * 3 * y / n)
    k, p = radial_spectrum(f)
    assert k[0] == 0 and len(k) == n // 2 + 1
    assert p[5] == pytest.approx(9.0 / 2) and p[3] == pytest.approx(1.0 / 2)
    assert p.sum() == pytest.approx((f**2).mean())
    assert np.delete(p, [3, 5]).max() < 1e-20


def test_members_inf_mse_removes_the_finite_ensemble_error():
    """Members = truth + a fixed bias b + independent noise: the M-member mean's MSE is
    b² + σ²/M, the estimate recovers b² (unbiased, averaged over many fields)."""
    rng = np.random.default_rng(0)
    lat = np.linspace(-60, 60, 8)
    truth = rng.normal(size=(4000, 8, 8))
    bias, sigma, m = 0.3, 1.0, 4
    members = truth + bias + sigma * rng.normal(size=(m, *truth.shape))
    naive = weighted_mean((members.mean(0) - truth) ** 2, lat).mean()
    assert naive == pytest.approx(bias**2 + sigma**2 / m, rel=0.02)
    assert mean_mse_members_inf(members, truth, lat).mean() == pytest.approx(bias**2, rel=0.03)
    with pytest.raises(ValueError):
        mean_mse_members_inf(members[:1], truth, lat)
