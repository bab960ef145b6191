"""ADS kernels against closed forms, and the acquisition hook inside the sampling loop."""

import contextlib
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
from polydiff.diffusion.operators import channels_to_complex
from polydiff.medical.kspace import MaskedFFT2, fft2c
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


def _run(kernel, n=16, particles=4, steps=8, seed=0, device="cpu"):
    b = budget(n, 4)
    gen = torch.Generator(device).manual_seed(seed)
    truth = torch.randn(1, 2, n, n, generator=gen, device=device)
    k = fft2c(channels_to_complex(truth))[0]
    mask = torch.zeros(n, dtype=torch.bool, device=device)
    mask[torch.as_tensor(center_columns(b), device=device)] = True
    y = torch.zeros(1, n, n, dtype=k.dtype, device=device)
    y[..., mask] = k[:, mask]
    op = MaskedFFT2(mask)
    guide = MeasurementGuidance(op, y, 0.5, mode="dps")
    acq = ActiveAcquisition(guide, lambda x0: fft2c(channels_to_complex(x0)),
                            lambda cols: k[:, cols], acquisition_steps(steps, b.total - b.center,
                                                                        (0.0, 0.7)), kernel)
    # ε-model of zero: x̂₀ = x_t/√ᾱ, so the particles disagree wherever nothing is measured
    out = sample(lambda x, t: torch.zeros_like(x), make_scheduler("ddim"), (particles, 2, n, n),
                 steps=steps, generator=gen, hooks=[guide, acq, DataConsistency(op, y)],
                 device=device)
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


# Tensor methods that copy device data to the host (a synchronisation on CUDA).
HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")


@contextlib.contextmanager
def no_host_reads(monkeypatch):
    """Make every host read of a tensor's values fail inside the block."""
    with monkeypatch.context() as m:
        for name in HOST_READS:
            def refuse(*args, _name=name, **kwargs):
                raise AssertionError(f"Tensor.{_name} read values back to the host")
            m.setattr(torch.Tensor, name, refuse)
        yield


def test_acquisition_steps_never_read_the_device(monkeypatch):
    """The hook's per-step work (score, top-k, mask and y updates) stays on the device."""
    b, acq, op, y, k, _ = _run("ads", steps=8)
    guide, mask = acq.guidance, op.mask.clone()
    mask[:] = False
    mask[torch.as_tensor(center_columns(b))] = True
    op.mask.copy_(mask)
    y.zero_()
    y[..., mask] = k[:, mask]
    fresh = ActiveAcquisition(guide, acq.predict, acq.scanner, [0, 0, 1], "ads")
    x0 = torch.randn(4, 2, 16, 16, generator=torch.Generator().manual_seed(1))
    state = type("S", (), {"index": 0, "x0": x0})()
    with no_host_reads(monkeypatch):
        fresh.after_step(state, x0)
        state.index = 1
        fresh.after_step(state, x0)
    assert len(fresh.acquired) == 3 and int(op.mask.sum()) == b.center + 3
    assert torch.equal(y[0][:, op.mask], k[:, op.mask])


def test_the_guard_catches_a_host_read(monkeypatch):
    with no_host_reads(monkeypatch), pytest.raises(AssertionError, match="host"):
        torch.ones(3).sum().item()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_acquisition_on_cuda_never_synchronises():
    b, acq, op, y, k, x = _run("ads", device="cuda")  # warm-up, and the whole loop on CUDA
    assert x.device.type == "cuda" and len(acq.acquired) == b.total - b.center
    fresh = ActiveAcquisition(acq.guidance, acq.predict, acq.scanner, [0], "ads")
    op.mask[:] = False
    op.mask[torch.as_tensor(center_columns(b), device="cuda")] = True
    state = type("S", (), {"index": 0, "x0": x})()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fresh.after_step(state, x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(fresh.acquired) == 1
