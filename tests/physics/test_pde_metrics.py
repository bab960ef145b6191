"""PDE metrics against numpy's own formulas and hand-built known answers."""

import numpy as np
import pytest
import torch

from polydiff.physics.pde_metrics import (
    correlation_per_time,
    evaluate_predictions,
    mse,
    nrmse,
    nrmse_per_time,
    time_until_decorrelation,
)

RNG = np.random.default_rng(0)
TRUTH = torch.from_numpy(RNG.standard_normal((4, 6, 10)))
PRED = TRUTH + 0.3 * torch.from_numpy(RNG.standard_normal((4, 6, 10)))


def test_against_numpy():
    t, p = TRUTH.numpy(), PRED.numpy()
    assert mse(PRED, TRUTH) == pytest.approx(np.mean((p - t) ** 2))
    per_sample = [np.sqrt(np.mean((p[i] - t[i]) ** 2)) / np.sqrt(np.mean(t[i] ** 2))
                  for i in range(4)]
    assert nrmse(PRED, TRUTH) == pytest.approx(np.mean(per_sample))
    corr = [[np.corrcoef(p[i, k], t[i, k])[0, 1] for k in range(6)] for i in range(4)]
    np.testing.assert_allclose(correlation_per_time(PRED, TRUTH), np.mean(corr, 0), rtol=1e-12)
    per_time = np.linalg.norm(p - t, axis=2) / np.linalg.norm(t, axis=2)
    np.testing.assert_allclose(nrmse_per_time(PRED, TRUTH), per_time.mean(0), rtol=1e-12)


def test_known_answers():
    assert nrmse(1.1 * TRUTH, TRUTH) == pytest.approx(0.1)
    assert mse(TRUTH, TRUTH) == 0
    # correlation ignores offsets and positive scales
    np.testing.assert_allclose(correlation_per_time(2 * TRUTH + 5, TRUTH), 1.0)
    # a 2-D field (N, nt, nx, ny) is handled the same as flattened space
    two_d = TRUTH.reshape(4, 6, 5, 2)
    assert nrmse(1.1 * two_d, two_d) == pytest.approx(0.1)


def test_time_until_decorrelation():
    times = torch.linspace(0, 2.5, 6)
    pred = TRUTH.clone()
    pred[:, 3:] = -TRUTH[:, 3:]  # correlation 1, 1, 1, -1, -1, -1
    assert time_until_decorrelation(pred, TRUTH, times=times) == pytest.approx(1.0)
    assert time_until_decorrelation(pred, TRUTH) == 2  # in steps
    assert time_until_decorrelation(TRUTH, TRUTH, times=times) == pytest.approx(2.5)
    # a flat truth that the prediction matches counts as correlated
    flat = torch.ones(2, 3, 8)
    assert time_until_decorrelation(flat.clone(), flat) == 2


def test_evaluate_predictions_and_errors():
    out = evaluate_predictions(PRED, TRUTH, times=torch.arange(6) * 0.1)
    assert set(out) == {"mse", "nrmse", "time_until_decorrelation", "nrmse_per_time",
                        "correlation_per_time"}
    assert len(out["nrmse_per_time"]) == 6 and out["mse"] == pytest.approx(mse(PRED, TRUTH))
    with pytest.raises(ValueError):
        mse(PRED, TRUTH[:, :-1])
