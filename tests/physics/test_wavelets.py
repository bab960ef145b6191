"""The trajectory wavelet transform against PyWavelets, and its exact inverse."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import torch

from polydiff.physics.wavelets import coefficient_shape, dwt, idwt, subband_names

FAMILIES = ["haar", "bior2.4", "db4", "sym4"]


def _random(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("family", FAMILIES)
def test_one_level_2d_matches_pywt_dwt2(family: str) -> None:
    x = _random((2, 3, 16, 24))
    c = dwt(x, family, levels=1)
    assert c.shape == (2, 12, 8, 12)
    for b in range(2):
        for ch in range(3):
            ca, (ch_, cv, cd) = pywt.dwt2(x[b, ch].numpy(), family, mode="periodization")
            # dwt2's horizontal detail is the detail along axis 0 ("da"), vertical along axis 1
            want = np.stack([ca, cv, ch_, cd])
            np.testing.assert_allclose(c[b, 4 * ch : 4 * ch + 4].numpy(), want, atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_one_level_3d_matches_pywt_dwtn(family: str) -> None:
    x = _random((1, 2, 8, 16, 12), seed=1)
    c = dwt(x, family, levels=1)
    names = subband_names(3)
    assert c.shape == (1, 16, 4, 8, 6) and len(names) == 8
    for ch in range(2):
        ref = pywt.dwtn(x[0, ch].numpy(), family, mode="periodization")
        for k, name in enumerate(names):
            np.testing.assert_allclose(c[0, 8 * ch + k].numpy(), ref[name], atol=1e-12)


def test_two_levels_split_every_subband_again() -> None:
    x = _random((1, 1, 32, 16), seed=2)
    c = dwt(x, "db4", levels=2)
    assert c.shape == (1, *coefficient_shape((32, 16), 1, 2)) == (1, 16, 8, 4)
    first = pywt.dwtn(x[0, 0].numpy(), "db4", mode="periodization")
    for k, name in enumerate(subband_names(2, levels=2)):
        outer, inner = name.split(".")
        want = pywt.dwtn(first[outer], "db4", mode="periodization")[inner]
        np.testing.assert_allclose(c[0, k].numpy(), want, atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES + ["bior1.3"])
@pytest.mark.parametrize("levels", [1, 2])
@pytest.mark.parametrize("shape", [(2, 3, 16, 32), (1, 2, 8, 8, 16)])
def test_perfect_reconstruction(family: str, levels: int, shape: tuple[int, ...]) -> None:
    x = _random(shape, seed=3)
    back = idwt(dwt(x, family, levels), family, levels)
    assert back.shape == x.shape
    assert torch.max(torch.abs(back - x)) < 1e-10  # filters are stored to ~1e-13


@pytest.mark.parametrize("family", ["haar", "db4", "sym4"])
def test_orthogonal_families_preserve_energy(family: str) -> None:
    x = _random((1, 1, 16, 16), seed=4)
    c = dwt(x, family, levels=2)
    assert torch.isclose((c**2).sum(), (x**2).sum(), rtol=1e-10)


def test_gradients_flow_through_the_inverse() -> None:
    c = _random((1, 4, 4, 4), seed=5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: idwt(v, "bior2.4"), (c,))


def test_float32_on_the_input_device_and_dtype() -> None:
    x = torch.randn(1, 1, 8, 8)
    c = dwt(x, "bior2.4")
    assert c.dtype == torch.float32
    assert torch.max(torch.abs(idwt(c, "bior2.4") - x)) < 1e-5


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="divisible"):
        dwt(torch.zeros(1, 1, 12, 10), "haar", levels=2)
    with pytest.raises(ValueError, match="unknown discrete wavelet"):
        dwt(torch.zeros(1, 1, 8, 8), "mexh")
    with pytest.raises(ValueError, match="sub-bands"):
        idwt(torch.zeros(1, 3, 4, 4), "haar")
