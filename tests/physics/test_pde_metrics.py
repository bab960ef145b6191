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
    nrmse_spacetime,
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
    assert nrmse_spacetime(PRED, TRUTH) == pytest.approx(np.mean(per_sample))
    corr = [[np.corrcoef(p[i, k], t[i, k])[0, 1] for k in range(6)] for i in range(4)]
    np.testing.assert_allclose(correlation_per_time(PRED, TRUTH), np.mean(corr, 0), rtol=1e-12)
    per_time = np.linalg.norm(p - t, axis=2) / np.linalg.norm(t, axis=2)
    np.testing.assert_allclose(nrmse_per_time(PRED, TRUTH), per_time.mean(0), rtol=1e-12)


def pdebench_nrmse(pred: np.ndarray, target: np.ndarray) -> float:
    """PDEBench's err_nMSE (pdebench/models/metrics.py, metric_func), written out here in
    its own layout: arrays (batch, x..., time, channel); per batch item, channel and time the
    RMS over space of the error over the RMS over space of the target; the mean over the
    batch, then (if_mean) over channels and times."""
    nb, nt, nc = target.shape[0], target.shape[-2], target.shape[-1]
    ratios = np.zeros((nb, nc, nt))
    for b in range(nb):
        for c in range(nc):
            for k in range(nt):
                err = pred[b, ..., k, c] - target[b, ..., k, c]
                ratios[b, c, k] = (np.sqrt(np.mean(err**2))
                                   / np.sqrt(np.mean(target[b, ..., k, c] ** 2)))
    return float(ratios.mean(axis=0).mean())


@pytest.mark.parametrize("space", [(10,), (5, 2)])
def test_nrmse_is_pdebench_s(space):
    """polydiff (N, nt, *space) against PDEBench's (N, *space, nt, 1) formula."""
    truth = TRUTH.reshape(4, 6, *space)
    # the amplitude grows along time, so averaging per time differs from space-time pooling
    truth = truth * torch.logspace(0, 2, 6, dtype=truth.dtype).reshape(1, 6, *[1] * len(space))
    pred = truth + 0.3 * torch.from_numpy(RNG.standard_normal(truth.shape))
    theirs = pdebench_nrmse(np.moveaxis(pred.numpy(), 1, -1)[..., None],
                            np.moveaxis(truth.numpy(), 1, -1)[..., None])
    assert nrmse(pred, truth) == pytest.approx(theirs, rel=1e-12)
    assert nrmse_per_time(pred, truth).mean().item() == pytest.approx(theirs, rel=1e-12)
    assert abs(nrmse_spacetime(pred, truth) - theirs) > 0.5 * theirs  # not the same metric


def test_per_time_and_space_time_differ_by_hand():
    """Two times of amplitude 1 and 100 with the same absolute error 0.1 everywhere:
    PDEBench gives (0.1 + 0.001) / 2, pooling space and time gives 0.1 / sqrt(5000.5)."""
    truth = torch.ones(1, 2, 8, dtype=torch.float64)
    truth[:, 1] = 100.0
    pred = truth + 0.1
    assert nrmse(pred, truth) == pytest.approx(0.0505)
    assert nrmse_spacetime(pred, truth) == pytest.approx(0.1 / np.sqrt(5000.5))


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
    assert set(out) == {"mse", "nrmse", "nrmse_spacetime", "time_until_decorrelation",
                        "nrmse_per_time", "correlation_per_time"}
    assert len(out["nrmse_per_time"]) == 6 and out["mse"] == pytest.approx(mse(PRED, TRUTH))
    with pytest.raises(ValueError):
        mse(PRED, TRUTH[:, :-1])
