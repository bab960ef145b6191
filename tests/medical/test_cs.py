"""ℓ1-wavelet FISTA: the prox is exact for t = 0, and it beats zero-filling on a phantom."""

import numpy as np
import torch

from polydiff.medical.cs import CSConfig, fista_l1_wavelet, wavelet_shrink
from polydiff.medical.kspace import ifft2c, zero_filled
from polydiff.medical.masks import budget, fixed_mask
from polydiff.medical.metrics import psnr, ssim
from polydiff.medical.phantoms import phantom_volume


def test_shrink_with_zero_threshold_is_identity():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 16)) + 1j * rng.standard_normal((16, 16))
    assert np.allclose(wavelet_shrink(x, 0.0, CSConfig(), shift=(3, 5)), x)


def test_fista_beats_zero_filled():
    k = torch.from_numpy(phantom_volume(1, 64, 0)[0])
    mask = torch.from_numpy(fixed_mask("random", budget(64, 4), 0).mask)
    truth = ifft2c(k).abs().numpy()[None]
    zf = zero_filled(k, mask).numpy()[None]
    cs = fista_l1_wavelet(k, mask, CSConfig(iters=40)).abs().numpy()[None]
    assert ssim(truth, cs) > ssim(truth, zf) + 0.1
    assert psnr(truth, cs) > psnr(truth, zf) + 1.5
