"""Measurement operators: adjoints by the dot-product test, projections."""

import pytest
import torch

from polydiff.diffusion.operators import (
    AvgPool,
    PointMask,
    SparseLinear,
    Stack,
    inner,
)

G = torch.Generator().manual_seed(0)


def _rand_like(y):
    if isinstance(y, list):
        return [_rand_like(v) for v in y]
    if y.is_complex():
        return torch.complex(torch.randn(y.shape, generator=G), torch.randn(y.shape, generator=G))
    return torch.randn(y.shape, generator=G, dtype=y.dtype)


def _operators():
    mask = torch.rand(2, 8, 8, generator=G) < 0.3
    rows = torch.tensor([[0, 0], [1, 5], [2, 9], [2, 10]]).T
    bilinear = torch.sparse_coo_tensor(rows, torch.tensor([0.25, 0.75, 0.5, 0.5]), (3, 128),
                                       check_invariants=True)
    return {
        "point": (PointMask(mask, sigma=0.1), (3, 2, 8, 8)),
        "pool2": (AvgPool(2), (3, 2, 8, 8)),
        "pool4_1d": (AvgPool(4, dims=1), (3, 2, 16)),
        "sparse": (SparseLinear(bilinear, (2, 8, 8)), (3, 2, 8, 8)),
        "stack": (Stack([AvgPool(4, sigma=0.5), PointMask(mask)]), (3, 2, 8, 8)),
    }


@pytest.mark.parametrize("name", list(_operators()))
def test_adjoint_dot_product(name):
    op, shape = _operators()[name]
    x = torch.randn(shape, generator=G, dtype=torch.float64)
    y = _rand_like(op.forward(x))
    lhs = inner(op.forward(x), y) if not isinstance(y, list) else sum(
        inner(a, b) for a, b in zip(op.forward(x), y))
    rhs = inner(x, op.adjoint(y))
    torch.testing.assert_close(lhs.double(), rhs.double(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["point", "pool2", "sparse"])
def test_projection_satisfies_measurements(name):
    op, shape = _operators()[name]
    truth, start = torch.randn(shape, generator=G), torch.randn(shape, generator=G)
    y = op.forward(truth)
    projected = op.project(start, y)
    torch.testing.assert_close(op.forward(projected), y, rtol=1e-4, atol=1e-5)
    assert op.misfit(projected, y).abs().max() < 1e-6


def test_pool_rejects_grid_not_multiple_of_factor():
    with pytest.raises(ValueError, match="multiple"):
        AvgPool(3).forward(torch.zeros(1, 1, 8, 8))


def test_misfit_is_gaussian_negative_log_likelihood():
    op = AvgPool(2, sigma=0.5)
    x = torch.zeros(1, 1, 4, 4)
    y = torch.ones(1, 1, 2, 2)
    assert float(op.misfit(x, y)) == pytest.approx(4 / (2 * 0.25))
