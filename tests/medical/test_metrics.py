"""fastMRI metrics against scikit-image and closed forms."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from polydiff.medical.metrics import evaluate_volume, nmse, psnr, ssim


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    gt = rng.random((3, 40, 36))
    return gt, gt + 0.1 * rng.standard_normal(gt.shape)


def test_ssim_matches_skimage_per_slice_with_volume_max(pair):
    gt, pred = pair
    ref = np.mean([structural_similarity(g, p, data_range=gt.max()) for g, p in zip(gt, pred)])
    assert ssim(gt, pred) == pytest.approx(ref, abs=1e-10)
    assert ssim(gt, gt) == pytest.approx(1.0)


def test_psnr_and_nmse(pair):
    gt, pred = pair
    assert psnr(gt, pred) == pytest.approx(peak_signal_noise_ratio(gt, pred,
                                                                   data_range=gt.max()))
    assert nmse(gt, 0.5 * gt) == pytest.approx(0.25)
    out = evaluate_volume(gt, pred)
    assert set(out) == {"NMSE", "PSNR", "SSIM"}
    with pytest.raises(ValueError):
        evaluate_volume(gt, pred[:2])
