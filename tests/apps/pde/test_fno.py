"""FNO baselines: the spectral layer against a direct FFT, overfitting, seeds, safetensors."""

import pytest
import torch

from polydiff.apps.pde.fno import FNO, FNOTrainConfig, SpectralConv, predict, train_fno
from polydiff.apps.pde.generate import GenerateRequest, generate


@pytest.fixture(scope="module")
def tiny():
    return generate(GenerateRequest("burgers", 4, nx=15, nt=9, t_final=1.0, seed=0))


def reference_spectral(layer: SpectralConv, x: torch.Tensor) -> torch.Tensor:
    """The Fourier layer written with a full rfftn and explicit corner blocks."""
    dims = tuple(range(2, x.ndim))
    xf = torch.fft.rfftn(x, dim=dims, norm="ortho")
    out = torch.zeros(x.shape[0], layer.weight.shape[2], *xf.shape[2:], dtype=xf.dtype)
    w = torch.view_as_complex(layer.weight)
    if x.ndim == 3:
        m = layer.modes[0]
        out[..., :m] = torch.einsum("bix,iox->box", xf[..., :m], w[0])
    else:
        m0, m1 = layer.modes
        out[..., :m0, :m1] = torch.einsum("bixy,ioxy->boxy", xf[..., :m0, :m1], w[0])
        out[..., -m0:, :m1] = torch.einsum("bixy,ioxy->boxy", xf[..., -m0:, :m1], w[1])
    return torch.fft.irfftn(out, s=x.shape[2:], dim=dims, norm="ortho")


@pytest.mark.parametrize("modes,size", [((5,), (20,)), ((3, 4), (12, 10))])
def test_spectral_layer_matches_full_fft(modes, size):
    g = torch.Generator().manual_seed(0)
    layer = SpectralConv(3, modes)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g))
    x = torch.randn(2, 3, *size, generator=g)
    out = layer(x)
    assert out.abs().max() > 0.1
    torch.testing.assert_close(out, reference_spectral(layer, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("task", ["step", "trajectory"])
def test_overfits_a_tiny_batch_and_is_seeded(tiny, task):
    cfg = FNOTrainConfig(task=task, width=16, modes=(6,) if task == "step" else (4, 6),
                         n_layers=2, steps=200, batch_size=8, lr=5e-3, seed=1)
    result = train_fno(tiny, cfg)
    assert sum(result.losses[-10:]) / 10 < 0.05 * result.losses[0]
    pred = predict(result.model, tiny.u[:, 0], tiny.forcing, tiny.u.shape[1])
    assert pred.shape == tiny.u.shape and torch.equal(pred[:, 0], tiny.u[:, 0])
    rel = (pred - tiny.u).norm() / tiny.u.norm()
    assert rel < 0.25
    short = FNOTrainConfig(**{**cfg.__dict__, "steps": 5})
    assert train_fno(tiny, short).losses == train_fno(tiny, short).losses
    other = FNOTrainConfig(**{**cfg.__dict__, "steps": 5, "seed": 2})
    assert train_fno(tiny, other).losses != train_fno(tiny, short).losses


def test_save_and_load_safetensors(tmp_path):
    model = FNO(in_channels=2, width=8, modes=(3, 4), n_layers=2, task="trajectory",
                u_scale=0.5, f_scale=2.0, out_scale=0.7)
    model.reset_parameters(torch.Generator().manual_seed(0))
    model.save_pretrained(tmp_path / "fno")
    files = {p.name for p in (tmp_path / "fno").iterdir()}
    assert "diffusion_pytorch_model.safetensors" in files and "config.json" in files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    loaded = FNO.from_pretrained(tmp_path / "fno")
    assert loaded.config.out_scale == 0.7 and tuple(loaded.config.modes) == (3, 4)
    x = torch.randn(2, 2, 9, 11, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
