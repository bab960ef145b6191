"""Hard constraints of super-resolved members: exact conservative means and rain >= 0,
together (alternating projections), on x̂₀ at every step and at the end."""

import numpy as np
import pytest
import torch

from polydiff.apps.atmos.constraints import ConstrainedX0, feasible, rescale_to_means
from polydiff.apps.atmos.superres import SuperresOptions
from polydiff.physics.interpolation import ConservativePool
from polydiff.runtime import UserError

LAT = np.arange(8) * 4.0 + 30.0  # fine latitudes: unequal cell areas


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    truth = torch.rand(1, 2, 8, 8, generator=g, dtype=torch.float64) ** 4  # >= 0, skewed
    op = ConservativePool(4, LAT)
    x = truth + 0.5 * torch.randn(3, 2, 8, 8, generator=g, dtype=torch.float64)
    return op, op.forward(truth), x


def test_feasible_meets_the_means_exactly_and_the_bound_closely():
    op, y, x = _problem()
    lower = torch.zeros(2, 8, 8)
    assert (x < 0).any() and (op.forward(x) - y).abs().max() > 0.1  # starts infeasible
    out = feasible(x, lower, op, y, iterations=200)
    assert (op.forward(out) - y).abs().max() < 1e-12  # ends on the means
    assert out.min() > -1e-3  # and (almost) on the bound
    once = op.project(x, y).clamp_min(0)  # project, then clip: the means are broken
    assert (op.forward(once) - y).abs().max() > 10 * (op.forward(out) - y).abs().max() + 1e-3


def test_a_feasible_field_is_left_alone_and_unbounded_channels_are_only_projected():
    op, y, _ = _problem(1)
    truth = op.pinv(y) + 0.0  # A x = y; make it nonnegative by adding a null-space-free shift
    truth = truth.clamp_min(0)
    y = op.forward(truth)
    np.testing.assert_allclose(feasible(truth, torch.zeros(2, 8, 8), op, y), truth, atol=1e-12)
    lower = torch.tensor([-np.inf, 0.0])[:, None, None].expand(2, 8, 8)
    _, _, x = _problem(2)
    out = feasible(x, lower, op, y, iterations=50)
    np.testing.assert_allclose(out[:, 0], op.project(x, y)[:, 0], atol=1e-12)  # vo: linear
    assert out[:, 1].min() > -1e-3


def test_the_hook_constrains_every_clean_estimate():
    op, y, x = _problem(3)
    hook = ConstrainedX0(op, y, torch.zeros(2, 8, 8), iterations=100)
    out = hook.on_x0(None, x)
    assert (op.forward(out) - y).abs().max() < 1e-12 and out.min() > -1e-2


@pytest.mark.parametrize("eta", [-0.1, 1.5, float("nan")])
def test_eta_out_of_range_is_a_user_error(eta):
    with pytest.raises(UserError, match="eta"):
        SuperresOptions(eta=eta)


def test_rescaling_meets_means_and_bound_exactly_even_where_a_block_holds_no_excess():
    op, y, x = _problem(4)
    lower = torch.tensor([-np.inf, 0.0])[:, None, None].expand(2, 8, 8).clone()
    x[0, 1, :4, :4] = -1.0  # a block with no rain at all in member 0, where the data rain
    assert y[0, 1, 0, 0] > 0
    out = rescale_to_means(x, lower, op, y)
    assert out[:, 1].min() >= 0.0
    np.testing.assert_allclose(op.forward(out)[:, 1], y[:, 1].expand(3, 2, 2), rtol=1e-12)
    np.testing.assert_array_equal(out[:, 0], x[:, 0])  # the unbounded channel is untouched
    ok = x[:, 1:].clamp_min(0)  # a nonnegative field on its own means is left alone
    y_ok = op.forward(ok)
    np.testing.assert_allclose(rescale_to_means(ok, lower[1:], op, y_ok), ok, rtol=1e-12)
