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


# ------------------------------------------------------------ conservative coarse-graining
def _exact_cell_means(lat_edges: np.ndarray, lon_edges: np.ndarray) -> np.ndarray:
    """Exact area means of f = sin(φ)·cos(λ) + 2 over the cells between the given edges.

    ∫ sin φ cos φ dφ / ∫ cos φ dφ = (sin φn + sin φs)/2 and the mean of cos λ over a cell is
    (sin λe − sin λw)/Δλ, so the cell mean has a closed form.
    """
    s, n = np.radians(lat_edges[:-1]), np.radians(lat_edges[1:])
    w, e = np.radians(lon_edges[:-1]), np.radians(lon_edges[1:])
    lat_part = (np.sin(n) + np.sin(s)) / 2
    lon_part = (np.sin(e) - np.sin(w)) / (e - w)
    return lat_part[:, None] * lon_part[None, :] + 2.0


@pytest.mark.parametrize("factor,south,step", [(4, 20.0, 2.5), (8, 10.0, 10.0 / 8),
                                               (2, 50.0, 10.0)])
def test_conservative_coarsening_matches_the_exact_area_integral(factor, south, step):
    from polydiff.physics.interpolation import conservative_coarsen

    h = w = 4 * factor if step < 5 else 2 * factor
    lat_edges = south + step * np.arange(h + 1)
    lon_edges = -30.0 + step * np.arange(w + 1)
    fine = _exact_cell_means(lat_edges, lon_edges)
    lat = (lat_edges[:-1] + lat_edges[1:]) / 2
    coarse = conservative_coarsen(fine, lat, factor)
    exact = _exact_cell_means(lat_edges[::factor], lon_edges[::factor])
    np.testing.assert_allclose(coarse, exact, rtol=0, atol=1e-12)
    plain = fine.reshape(h // factor, factor, w // factor, factor).mean((1, 3))
    assert np.abs(plain - exact).max() > 1e-5  # the unweighted mean is not conservative


def test_conservative_coarsening_reduces_to_the_block_mean_on_equal_areas():
    from polydiff.physics.atmos_fields import block_mean
    from polydiff.physics.interpolation import ConservativePool, conservative_coarsen

    x = torch.randn(3, 2, 16, 24, generator=make_generator(0), dtype=torch.float64)
    np.testing.assert_allclose(conservative_coarsen(x, None, 4), block_mean(x, 4).numpy(),
                               atol=1e-14)
    pool = ConservativePool(4, None, height=16)
    np.testing.assert_allclose(pool.forward(x), AvgPool(4).forward(x), atol=1e-14)
    # a band of latitudes at the equator is nearly equal-area: close to the plain mean
    near = conservative_coarsen(x, np.linspace(-0.75, 0.75, 16), 4)
    np.testing.assert_allclose(near, block_mean(x, 4).numpy(), atol=3e-4)  # 1 - cos 0.75°


def test_conservative_pool_adjoint_and_projection():
    from polydiff.physics.interpolation import ConservativePool

    lat = 50.0 + 1.5 * np.arange(16)
    op = ConservativePool(4, lat, sigma=0.1)
    g = make_generator(1)
    x = torch.randn(2, 3, 16, 8, generator=g, dtype=torch.float64)
    y = torch.randn(2, 3, 4, 2, generator=g, dtype=torch.float64)
    assert torch.allclose((op.forward(x) * y).sum(), (x * op.adjoint(y)).sum())  # <Ax,y>=<x,Aᵀy>
    projected = op.project(x, y)
    assert torch.allclose(op.forward(projected), y, atol=1e-12)  # exact data consistency
    assert torch.allclose(op.forward(torch.ones(1, 16, 8, dtype=torch.float64)),
                          torch.ones(1, 4, 2, dtype=torch.float64))  # means of constants


def test_cell_area_weights_follow_sin_differences_and_stop_at_the_poles():
    from polydiff.physics.interpolation import cell_area_weights

    lat = np.array([-85.0, -75.0, 75.0, 85.0])  # irregular on purpose: the step is 10
    w = cell_area_weights(np.array([75.0, 85.0]))
    exact = np.sin(np.radians([80.0, 90.0])) - np.sin(np.radians([70.0, 80.0]))
    np.testing.assert_allclose(w, exact / exact.mean())
    assert cell_area_weights(lat[:2]).shape == (2,)
