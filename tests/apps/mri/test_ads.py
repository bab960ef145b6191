"""ADS kernels against closed forms, and the acquisition hook inside the sampling loop."""

import math

import pytest
import torch

from polydiff.apps.mri.ads import (
    KERNELS,
    ActiveAcquisition,
    acquisition_steps,
    ads_score,
    gmm_score,
    variance_score,
)
from polydiff.apps.mri.config import KERNEL_NAMES
from polydiff.diffusion import DataConsistency, MeasurementGuidance, make_scheduler, sample
from polydiff.medical.kspace import MaskedFFT2, channels_to_complex, fft2c
from polydiff.medical.masks import budget, center_columns


def test_kernels_closed_form_for_two_particles():
    y = torch.zeros(2, 3, 4, dtype=torch.complex128)
    y[1, :, 2] = 1.0  # the particles differ only in column 2, d_12 = 3
    sigma = 1.5
    d = 3 / (2 * sigma**2)
    expect_ads = torch.full((4,), 2 * math.log(2.0), dtype=torch.float64)
    expect_ads[2] = 2 * math.log(1 + math.exp(d))
    assert torch.allclose(ads_score(y, sigma), expect_ads)
    expect_gmm = torch.zeros(4, dtype=torch.float64)
    expect_gmm[2] = -(math.log(1 + math.exp(-d)) - math.log(2))
    assert torch.allclose(gmm_score(y, sigma), expect_gmm)
    assert torch.allclose(variance_score(y, sigma), torch.tensor([0, 0, 1.5, 0.0],
                                                                 dtype=torch.float64))
    for fn in KERNELS.values():
        assert int(fn(y, sigma).argmax()) == 2


def test_schedule_spreads_acquisitions_over_the_window():
    steps = acquisition_steps(50, 10, (0.0, 0.6))
    assert len(steps) == 10 and steps[0] == 0 and steps[-1] < 30
    assert steps == sorted(steps)
    assert acquisition_steps(4, 10, (0.0, 1.0)).count(0) == 3  # several per step when needed
    with pytest.raises(ValueError):
        acquisition_steps(10, 2, (0.5, 0.4))


def _run(kernel, n=16, particles=4, steps=8, seed=0):
    b = budget(n, 4)
    gen = torch.Generator().manual_seed(seed)
    truth = torch.randn(1, 2, n, n, generator=gen)
    k = fft2c(channels_to_complex(truth))[0]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.as_tensor(center_columns(b))] = True
    y = torch.zeros(1, n, n, dtype=k.dtype)
    y[..., mask] = k[:, mask]
    op = MaskedFFT2(mask)
    guide = MeasurementGuidance(op, y, 0.5, mode="dps")
    acq = ActiveAcquisition(guide, lambda x0: fft2c(channels_to_complex(x0)),
                            lambda col: k[:, col], acquisition_steps(steps, b.total - b.center,
                                                                      (0.0, 0.7)), kernel)
    # ε-model of zero: x̂₀ = x_t/√ᾱ, so the particles disagree wherever nothing is measured
    out = sample(lambda x, t: torch.zeros_like(x), make_scheduler("ddim"), (particles, 2, n, n),
                 steps=steps, generator=gen, hooks=[guide, acq, DataConsistency(op, y)])
    return b, acq, op, y, k, out.sample


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_acquires_exactly_k_distinct_lines_after_the_centre(kernel):
    b, acq, op, y, k, x = _run(kernel)
    assert len(acq.acquired) == b.total - b.center
    assert len(set(acq.acquired)) == len(acq.acquired)
    assert not set(acq.acquired) & set(center_columns(b).tolist())
    assert int(op.mask.sum()) == b.total
    # y holds exactly the acquired columns of the truth, and the final sample matches them
    assert torch.equal(y[0][:, op.mask], k[:, op.mask]) and (y[0][:, ~op.mask] == 0).all()
    kx = fft2c(channels_to_complex(x))
    assert torch.allclose(kx[:, :, op.mask], k[None][:, :, op.mask], atol=1e-4)


def test_acquisition_is_seeded():
    assert _run("ads", seed=3)[1].acquired == _run("ads", seed=3)[1].acquired


def test_acquiring_twice_is_refused():
    _, acq, *_ = _run("variance", steps=4)
    with pytest.raises(RuntimeError, match="already acquired"):
        acq.acquire(acq.acquired[0])


def test_kernel_names_match_the_table():
    assert KERNEL_NAMES == tuple(KERNELS)
