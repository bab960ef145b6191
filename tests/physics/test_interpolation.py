"""Bicubic baseline and optimal interpolation against exact answers."""

import numpy as np
import pytest
import torch

from polydiff.diffusion import AvgPool, PointMask
from polydiff.physics.interpolation import (
    StationaryGaussian,
    bicubic_upsample,
    optimal_interpolation,
)
from polydiff.runtime import make_generator


def test_bicubic_reproduces_constants_and_smooth_periodic_fields():
    np.testing.assert_allclose(bicubic_upsample(np.full((2, 4, 4), 3.0), 4), 3.0)
    errors = []
    for n in (64, 128):  # bicubic interpolation converges as the sine gets better resolved
        k = 4
        fine_x = (np.arange(n) + 0.5) / n
        fine = np.broadcast_to(np.sin(2 * np.pi * fine_x)[None, :], (n, n))
        coarse = fine.reshape(n // k, k, n // k, k).mean((1, 3))
        up = bicubic_upsample(coarse, k)
        damp = np.sinc(k / n)  # block means of a sine: the sine damped by sinc(k/n)
        errors.append(float(np.abs(up - damp * fine).max()))
        np.testing.assert_allclose(up, -up[:, ::-1], atol=1e-12)  # centred: odd about the middle
    assert errors[0] < 1e-3 and errors[1] < errors[0] / 3.5  # converges (~second order)


def _prior(c=2, n=8, seed=0) -> StationaryGaussian:
    g = make_generator(seed)
    white = torch.randn(4000, c, n, n, generator=g, dtype=torch.float64)
    # correlated channels, smooth in space: a known stationary field
    smooth = (white + white.roll(1, -1) + white.roll(1, -2) + white.roll((1, 1), (-2, -1))) / 2
    mixed = torch.stack([smooth[:, 0], 0.8 * smooth[:, 0] + 0.6 * smooth[:, 1]], 1)
    return StationaryGaussian.fit(mixed)


def test_fitted_covariance_matches_the_empirical_one_and_samples_reproduce_it():
    prior = _prior()
    e = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
    e[0, 0, 3, 3] = 1.0
    col = prior.covariance(e)[0]
    assert col[0, 3, 3] == pytest.approx(1.0, rel=0.08)  # variance of channel 0
    assert col[1, 3, 3] == pytest.approx(0.8, rel=0.1)  # cross-covariance
    assert col[0, 3, 4] == pytest.approx(0.5, rel=0.15)  # neighbour covariance
    s = prior.sample(3000, make_generator(1))
    assert s[:, 0].var() == pytest.approx(1.0, rel=0.08)


def test_oi_posterior_is_the_gaussian_conditional_and_samples_agree():
    prior = _prior()
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[0, ::3, ::3] = True
    points = PointMask(mask, sigma=0.1)
    pool = AvgPool(4, sigma=0.05)
    truth = prior.sample(1, make_generator(2))
    ys = [points.forward(truth.float()), pool.forward(truth.float())]
    mean, members = optimal_interpolation(prior, [points, pool], ys, members=400,
                                          generator=make_generator(3))
    # dense reference: explicit covariance matrix and the textbook conditional mean
    n = 128
    eye = torch.eye(n, dtype=torch.float64).reshape(n, 2, 8, 8)
    cov = prior.covariance(eye).reshape(n, n)
    a = torch.cat([points.forward(eye.float()), pool.forward(eye.float()).reshape(n, -1)],
                  1).T.double()
    r = torch.diag(torch.cat([torch.full((mask.sum(),), 0.01), torch.full((8,), 0.0025)]))
    y = torch.cat([ys[0].reshape(-1), ys[1].reshape(-1)]).double()
    ref = cov @ a.T @ torch.linalg.solve(a @ cov @ a.T + r, y)
    assert torch.allclose(mean.reshape(-1), ref, atol=1e-8)
    assert torch.allclose(members.mean(0).reshape(-1), ref, atol=0.15)
    # the posterior explains the data to within its noise
    assert (points.forward(mean.float()) - ys[0]).abs().max() < 0.3
