"""Analytic phantom k-space against the FFT of the finely sampled phantom."""

import numpy as np
import pytest

from polydiff.medical.phantoms import (
    Ellipse,
    Phantom,
    coil_maps,
    phantom_cost,
    phantom_image,
    phantom_kspace,
    phantom_slices,
    phantom_volume,
    random_phantom,
    real_slices,
)


def _fine_fft(p, n, oversample):
    img = phantom_image(p, n * oversample)
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(img), norm="ortho"))
    c = n * oversample // 2
    return k[c - n // 2:c + n // 2, c - n // 2:c + n // 2] / oversample


def test_analytic_kspace_matches_finely_sampled_phantom():
    for seed in range(2):
        p = random_phantom(np.random.default_rng(seed))
        k = phantom_kspace(p, 32)
        fine = _fine_fft(p, 32, 16)
        assert np.linalg.norm(fine - k) / np.linalg.norm(k) < 0.01


def test_disc_dc_value_is_its_area():
    p = Phantom((Ellipse(0.1, -0.05, 0.2, 0.1, 0.3, 2.0),))
    k = phantom_kspace(p, 16)
    assert abs(k[8, 8] - 16 * 2.0 * np.pi * 0.2 * 0.1) < 1e-12


def test_kspace_is_not_hermitian_symmetric():
    k = phantom_kspace(random_phantom(np.random.default_rng(0)), 32)
    inner = k[1:, 1:]  # symmetric pairs of an even grid: index m <-> 32 - m
    assert np.linalg.norm(inner - np.conj(inner[::-1, ::-1])) > 0.1 * np.linalg.norm(inner)


def test_volume_is_seeded():
    a, b = phantom_volume(2, 16, 3), phantom_volume(2, 16, 3)
    assert a.dtype == np.complex64 and a.shape == (2, 16, 16)
    assert np.array_equal(a, b) and not np.array_equal(a, phantom_volume(2, 16, 4))


def test_real_brain_slice_from_nibabel_wheel():
    pytest.importorskip("nibabel")
    slices = real_slices(32)
    img = slices["nibabel_example4d"]
    assert img.shape == (32, 32) and 0.3 < img.max() <= 1.0
    assert img[0].max() < 0.05 * img.max()  # zero-padded to a square: empty top row
    assert (img > 0.1).mean() > 0.2  # a head, not an empty frame


def test_slices_are_the_volume_one_at_a_time_with_their_truth():
    vol = phantom_volume(3, 16, 5)
    single = list(phantom_slices(3, 16, 1, 5))
    for k, (ks, truth) in zip(vol, single):
        assert np.array_equal(ks, k)
        img = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k), norm="ortho"))
        np.testing.assert_allclose(truth, np.abs(img), atol=1e-5)
    maps = coil_maps(4, 16)
    for k, (kc, rss) in zip(vol, phantom_slices(3, 16, 4, 5)):
        img = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k), norm="ortho"))
        coil_k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(maps * img, axes=(-2, -1)),
                                             norm="ortho"), axes=(-2, -1))
        assert kc.shape == (4, 16, 16)
        np.testing.assert_allclose(kc, coil_k, atol=1e-4)
        np.testing.assert_allclose(rss, np.sqrt((np.abs(maps * img) ** 2).sum(0)), atol=1e-5)


def test_cost_grows_with_the_options():
    base = phantom_cost(10, 32, 1)
    assert phantom_cost(20, 32, 1).seconds == pytest.approx(2 * base.seconds)
    assert phantom_cost(20, 32, 1).disk == 2 * base.disk
    assert phantom_cost(20, 32, 1).memory == base.memory  # one slice at a time
    assert phantom_cost(10, 32, 8).memory > 8 * base.memory / 2
    assert base.disk == 10 * 32 * 32 * (8 + 4)  # complex64 k-space and float32 truth
