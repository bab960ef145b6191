"""k-space transforms against numpy's FFT, crops, and the SENSE operator's algebra."""

import numpy as np
import torch

from polydiff.medical.kspace import (
    MaskedFFT2,
    SenseOperator,
    center_crop,
    complex_to_channels,
    crop_kspace,
    estimate_sensitivities,
    fft2c,
    ifft2c,
)


def _rand_complex(gen, *shape):
    return torch.complex(torch.randn(*shape, generator=gen, dtype=torch.float64),
                         torch.randn(*shape, generator=gen, dtype=torch.float64))


def test_fft2c_matches_numpy_orthonormal_centred():
    gen = torch.Generator().manual_seed(0)
    for shape in [(2, 8, 8), (3, 7, 10)]:
        x = _rand_complex(gen, *shape)
        ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x.numpy(), axes=(-2, -1)),
                                          norm="ortho"), axes=(-2, -1))
        np.testing.assert_allclose(fft2c(x).numpy(), ref, atol=1e-12)
        np.testing.assert_allclose(ifft2c(fft2c(x)).numpy(), x.numpy(), atol=1e-12)
        # orthonormal: energy is conserved
        assert torch.allclose(fft2c(x).abs().square().sum(), x.abs().square().sum())


def test_dc_sits_at_the_centre_index():
    x = torch.ones(8, 6, dtype=torch.complex128)
    k = fft2c(x)
    assert abs(k[4, 3] - np.sqrt(48)) < 1e-12
    assert k.abs().sum() - k[4, 3].abs() < 1e-12


def test_center_crop_and_crop_kspace():
    x = torch.arange(36.0).reshape(6, 6)
    assert center_crop(x, (2, 4)).tolist() == [[13, 14, 15, 16], [19, 20, 21, 22]]
    gen = torch.Generator().manual_seed(1)
    img = _rand_complex(gen, 10, 12)
    k_small = crop_kspace(fft2c(img), (6, 8))
    np.testing.assert_allclose(ifft2c(k_small).numpy(), center_crop(img, (6, 8)).numpy(),
                               atol=1e-12)


def _sense(gen, coils=4, n=12):
    maps = _rand_complex(gen, coils, n, n)
    maps = maps / maps.abs().square().sum(0).sqrt()
    mask = torch.zeros(n, dtype=torch.bool)
    mask[::3] = True
    return SenseOperator(maps, mask, cg_iters=60, damping=1e-9)


def test_sense_adjoint_dot_product():
    gen = torch.Generator().manual_seed(2)
    op = _sense(gen)
    x = torch.randn(3, 2, 12, 12, generator=gen, dtype=torch.float64)
    yy = _rand_complex(gen, 3, 4, 12, 12) * op.mask[None, None, None, :]
    lhs = (op.forward(x).conj() * yy).real.sum()
    rhs = (x * op.adjoint(yy)).sum()
    assert torch.allclose(lhs, rhs)


def test_sense_single_coil_of_ones_is_masked_fft():
    gen = torch.Generator().manual_seed(3)
    mask = torch.rand(10, generator=gen) > 0.5
    x = torch.randn(2, 2, 10, 10, generator=gen, dtype=torch.float64)
    sense = SenseOperator(torch.ones(1, 10, 10, dtype=torch.complex128), mask)
    single = MaskedFFT2(mask)
    assert torch.allclose(sense.forward(x)[:, 0], single.forward(x))
    y = sense.forward(x)
    assert torch.allclose(sense.adjoint(y), single.adjoint(y[:, 0]))


def test_sense_projection_meets_the_data():
    gen = torch.Generator().manual_seed(4)
    op = _sense(gen)
    truth = torch.randn(2, 2, 12, 12, generator=gen, dtype=torch.float64)
    y = op.forward(truth)
    x = op.project(torch.zeros_like(truth), y)
    assert (op.forward(x) - y).abs().max() < 1e-6 * y.abs().max()


def test_estimated_sensitivities_are_normalised():
    gen = torch.Generator().manual_seed(5)
    img = complex_to_channels(_rand_complex(gen, 1, 16, 16))
    smooth = torch.exp(-torch.linspace(-1, 1, 16) ** 2)
    maps = torch.stack([smooth[:, None] * smooth[None, :] * (c + 1) for c in range(3)])
    op = SenseOperator(maps.to(torch.complex128), torch.ones(16, dtype=torch.bool))
    est = estimate_sensitivities(op.forward(img)[0], torch.arange(6, 10))
    assert torch.allclose(est.abs().square().sum(0), torch.ones(16, 16, dtype=torch.float64))


def _masked_ffts(gen):
    cols = torch.zeros(8, dtype=torch.bool)
    cols[[1, 3, 4, 6]] = True
    return {"columns": MaskedFFT2(cols), "2d": MaskedFFT2(torch.rand(8, 8, generator=gen) < 0.5)}


def test_masked_fft_adjoint_dot_product():
    gen = torch.Generator().manual_seed(6)
    for op in _masked_ffts(gen).values():
        x = torch.randn(3, 2, 8, 8, generator=gen, dtype=torch.float64)
        y = _rand_complex(gen, 3, 8, 8)
        lhs = (op.forward(x).conj() * y).real.sum()
        rhs = (x * op.adjoint(y)).sum()
        assert torch.allclose(lhs, rhs)


def test_masked_fft_projection_meets_the_data_and_keeps_the_rest():
    gen = torch.Generator().manual_seed(7)
    for op in _masked_ffts(gen).values():
        truth, start = (torch.randn(2, 2, 8, 8, generator=gen, dtype=torch.float64)
                        for _ in range(2))
        y = op.forward(truth)
        x = op.project(start, y)
        assert torch.allclose(op.forward(x), y)
        # outside the mask the k-space of the start is untouched
        kx, ks = fft2c(torch.complex(x[:, 0], x[:, 1])), fft2c(torch.complex(start[:, 0],
                                                                             start[:, 1]))
        outside = ~op._mask(kx).expand_as(kx)
        assert torch.allclose(kx[outside], ks[outside])
