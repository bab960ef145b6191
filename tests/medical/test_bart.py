""".cfl/.hdr round trip; BART `pics` against our FFT convention when `bart` is installed."""

import numpy as np
import pytest
import torch

from polydiff.medical.bart import bart, bart_available, pics, read_cfl, write_cfl
from polydiff.medical.kspace import ifft2c
from polydiff.medical.metrics import ssim
from polydiff.medical.phantoms import phantom_volume
from polydiff.runtime import UserError


def test_cfl_round_trip_is_column_major(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 4, 5)) + 1j * rng.standard_normal((3, 4, 5))).astype(
        np.complex64)
    write_cfl(tmp_path / "x", x)
    assert (tmp_path / "x.hdr").read_text().splitlines() == ["# Dimensions", "3 4 5"]
    raw = np.fromfile(tmp_path / "x.cfl", dtype=np.complex64)
    assert raw[1] == x[1, 0, 0]  # first index fastest
    assert np.array_equal(read_cfl(tmp_path / "x"), x)
    (tmp_path / "x.hdr").write_text("# Dimensions\n3 4 6\n")
    with pytest.raises(UserError, match="header says"):
        read_cfl(tmp_path / "x")


needs_bart = pytest.mark.skipif(not bart_available(),
                                reason="the 'bart' executable is not on PATH (apt install bart)")


@needs_bart
def test_bart_fft_convention_matches_ours():
    k = phantom_volume(1, 32, 0)[0]
    ours = ifft2c(torch.from_numpy(k)).numpy()
    theirs = bart("fft -u -i 3", k[:, :, None, None]).reshape(32, 32)
    assert np.allclose(np.abs(theirs), np.abs(ours), atol=1e-5)


@needs_bart
def test_pics_fully_sampled_returns_the_image():
    k = phantom_volume(1, 32, 1)[0]
    truth = np.abs(ifft2c(torch.from_numpy(k)).numpy())
    rec = pics(k, np.ones(32, bool), lam=1e-4, iters=30)
    assert rec.shape == (32, 32)
    assert ssim(truth[None], rec[None]) > 0.98
