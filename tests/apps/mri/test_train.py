"""Configs, normalisation and the bundled checkpoint's budget."""

from pathlib import Path

import pytest
import torch

from polydiff.apps.mri.data import DataConfig, fit_factor, to_model, training_kspace
from polydiff.apps.mri.pipeline import prepare_kspace
from polydiff.apps.mri.train import MriTrainConfig, run_training
from polydiff.diffusion import build_network, count_parameters, load_config
from polydiff.medical.kspace import center_crop, fft2c, ifft2c
from polydiff.runtime import UserError
from polydiff.weights import bundled_path

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "mri"


@pytest.mark.parametrize("name", ["tiny_cpu.yaml", "paper_gpu.yaml"])
def test_configs_load_and_build(name):
    cfg = load_config(CONFIGS / name, MriTrainConfig)
    net = build_network(cfg.network)
    assert cfg.network["sample_size"] == cfg.data.size
    if name == "tiny_cpu.yaml":
        assert count_parameters(net) * 4 < 3e6  # fp32 safetensors under 3 MB


def test_unknown_config_key_is_refused():
    with pytest.raises(UserError, match="unknown key"):
        run_training({"data": {"size": 16, "sizee": 3}})


def test_normalisation_is_scale_invariant():
    k = training_kspace(DataConfig(size=16, n=3, seed=1))
    x1, s1 = to_model(k, 0.7)
    x2, s2 = to_model(5.0 * k, 0.7)
    assert torch.allclose(x1, x2, atol=1e-5) and torch.allclose(s2, 5 * s1)
    f = fit_factor(k)
    mags = to_model(k, f)[0].square().sum(1).sqrt().amax(dim=(1, 2))
    assert mags.median() == pytest.approx(1.0, rel=1e-5)


def test_prepare_kspace_crops_and_keeps_the_field_of_view():
    gen = torch.Generator().manual_seed(0)
    img = torch.complex(torch.randn(1, 20, 12, generator=gen), torch.randn(1, 20, 12,
                                                                            generator=gen))
    k, note = prepare_kspace(fft2c(img), 12)
    assert torch.allclose(ifft2c(k), center_crop(img, (12, 12)), atol=1e-5)
    assert "20x12 to 12x12" in note
    # a constant image keeps its value when the resolution is lowered
    const = torch.ones(1, 24, 24, dtype=torch.complex64)
    low, note = prepare_kspace(fft2c(const), 8)
    assert torch.allclose(ifft2c(low), torch.ones(1, 8, 8, dtype=torch.complex64), atol=1e-5)
    with pytest.raises(UserError, match="smaller"):
        prepare_kspace(fft2c(const), 32)


def test_bundled_checkpoint_is_small_and_safetensors_only():
    folder = bundled_path("mri")
    assert (folder / "polydiff.json").is_file()
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 3.2e6
    assert {p.suffix for p in files} <= {".json", ".safetensors"}
