"""Configs, normalisation, seeded training and the bundled checkpoint's budget."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from polydiff.apps.mri.config import DataConfig
from polydiff.apps.mri.data import fit_factor, prepare_kspace, to_model, training_kspace
from polydiff.apps.mri.train import MriTrainConfig, load_train_config, run_training
from polydiff.diffusion import build_network, count_parameters, load_config
from polydiff.medical.kspace import center_crop, fft2c, ifft2c
from polydiff.runtime import UserError
from polydiff.weights import bundled_path

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "mri"
TINY = {
    "network": {"type": "unet2d", "sample_size": 16, "in_channels": 2, "out_channels": 2,
                "block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4,
                "down_block_types": ["DownBlock2D"] * 2, "up_block_types": ["UpBlock2D"] * 2},
    "data": {"size": 16, "n": 8, "seed": 0},
    "train": {"steps": 1, "batch_size": 4, "device": "cpu", "ema_decay": 0.0, "lr": 0.0},
}


@pytest.mark.parametrize("name", ["tiny_cpu.yaml", "small64_cpu.yaml", "paper_gpu.yaml"])
def test_configs_load_and_build(name):
    cfg = load_config(CONFIGS / name, MriTrainConfig)
    net = build_network(cfg.network)
    assert cfg.network["sample_size"] == cfg.data.size
    if name in ("tiny_cpu.yaml", "small64_cpu.yaml"):
        assert count_parameters(net) * 4 < 3e6  # fp32 safetensors under 3 MB


def test_unknown_config_key_is_refused():
    with pytest.raises(UserError, match="unknown key"):
        load_train_config({"data": {"size": 16, "sizee": 3}})


def test_network_must_fit_the_data():
    with pytest.raises(UserError, match="2 channels"):
        load_train_config({"network": {**TINY["network"], "in_channels": 3}})
    with pytest.raises(UserError, match="sample_size 16 differs from data.size 32"):
        load_train_config({"network": TINY["network"], "data": {"size": 32}})


def _train(tmp_path, seed):
    cfg = load_train_config({**TINY, "train": {**TINY["train"], "seed": seed,
                                               "out_dir": str(tmp_path / f"s{seed}")}})
    state = torch.random.get_rng_state()
    folder = run_training(cfg, progress=False)
    assert torch.equal(state, torch.random.get_rng_state())  # global random state untouched
    return load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")


def test_initialisation_is_seeded(tmp_path):
    """lr 0: the exported weights are the initial ones, a function of train.seed only."""
    a, b, c = _train(tmp_path / "a", 1), _train(tmp_path / "b", 1), _train(tmp_path / "c", 2)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_normalisation_is_scale_invariant():
    k = training_kspace(DataConfig(size=16, n=3, seed=1))
    x1, s1 = to_model(k, 0.7)
    x2, s2 = to_model(5.0 * k, 0.7)
    assert torch.allclose(x1, x2, atol=1e-5) and torch.allclose(s2, 5 * s1)
    f = fit_factor(k)
    mags = to_model(k, f)[0].square().sum(1).sqrt().amax(dim=(1, 2))
    assert mags.median() == pytest.approx(1.0, rel=1e-5)


def test_training_data_too_large_is_refused_with_the_estimate():
    with pytest.raises(UserError, match=r"training data of 1000000000 phantoms .* needs about"):
        training_kspace(DataConfig(size=128, n=10**9))


def test_prepare_kspace_crops_and_keeps_the_field_of_view():
    gen = torch.Generator().manual_seed(0)
    img = torch.complex(torch.randn(1, 20, 12, generator=gen), torch.randn(1, 20, 12,
                                                                            generator=gen))
    k, fit = prepare_kspace(fft2c(img), 12)
    assert torch.allclose(ifft2c(k), center_crop(img, (12, 12)), atol=1e-5)
    assert "20x12 k-space -> the model's 12x12 grid by rule 'fov'" in fit.note
    assert "image centre-cropped to 12x12" in fit.note
    # a constant image keeps its value when the resolution is lowered
    const = torch.ones(1, 24, 24, dtype=torch.complex64)
    low, fit = prepare_kspace(fft2c(const), 8)
    assert torch.allclose(ifft2c(low), torch.ones(1, 8, 8, dtype=torch.complex64), atol=1e-5)
    assert fit.pixel_scale == 3 and fit.field_of_view == (1, 1)
    with pytest.raises(UserError, match="smaller"):
        prepare_kspace(fft2c(const), 32)


def _plane_wave(h: int, w: int, fy: int, fx: int) -> torch.Tensor:
    """exp(2πi (fy·y + fx·x)), y, x in field-of-view units on an h x w grid: (h, w)."""
    y = (torch.arange(h) - h // 2).double()[:, None] / h
    x = (torch.arange(w) - w // 2).double()[None, :] / w
    return torch.exp(2j * torch.pi * (fy * y + fx * x)).to(torch.complex64)


def test_fov_rule_keeps_the_whole_field_of_view_at_lower_resolution():
    """fastMRI's 640x368: a wave of 3 x 2 cycles over the central 368x368 square stays a unit
    wave of 3 x 2 cycles per field of view on the 16x16 grid."""
    m = 368
    img = torch.zeros(640, m, dtype=torch.complex64)
    img[(640 - m) // 2:(640 - m) // 2 + m] = _plane_wave(m, m, 3, 2)
    k, fit = prepare_kspace(fft2c(img), 16, "fov")
    assert torch.allclose(ifft2c(k), _plane_wave(16, 16, 3, 2), atol=1e-4)
    assert fit.field_of_view == (368 / 640, 1.0) and fit.pixel_scale == 23
    assert fit.note.endswith("the whole 368x368 field of view at 23x coarser pixels")
    attrs = fit.attrs()
    assert attrs["fit"] == "fov" and attrs["input_kspace_shape"].tolist() == [640, 368]


def test_crop_rule_keeps_the_central_pixels_at_full_resolution():
    gen = torch.Generator().manual_seed(1)
    img = torch.complex(torch.randn(40, 36, generator=gen), torch.randn(40, 36, generator=gen))
    k, fit = prepare_kspace(fft2c(img), 16, "crop")
    assert torch.allclose(ifft2c(k), center_crop(img, (16, 16)), atol=1e-5)
    assert fit.pixel_scale == 1 and fit.field_of_view == (16 / 40, 16 / 36)
    assert "central 16x16 pixels of the image at full resolution (40% x 44%" in fit.note
    with pytest.raises(UserError, match="unknown fit rule"):
        prepare_kspace(fft2c(img), 16, "resize")


def test_bundled_checkpoints_are_small_and_safetensors_only():
    """The default 64x64 prior stays small (< 3.2 MB), the named 128x128 one within the
    project's 10 MB per checkpoint; nothing but JSON and safetensors."""
    folder = bundled_path("mri")
    big = folder / "grid128"
    assert (folder / "polydiff.json").is_file() and (big / "polydiff.json").is_file()
    files = [p for p in folder.rglob("*") if p.is_file()]
    default = [p for p in files if big not in p.parents]
    assert sum(p.stat().st_size for p in default) < 3.2e6
    assert sum(p.stat().st_size for p in files if big in p.parents) < 10e6
    assert {p.suffix for p in files} <= {".json", ".safetensors"}


def test_warm_start_copies_weights_across_grid_sizes(tmp_path):
    """init_from: a 16x16 checkpoint's weights start a 24x24 run (lr 0: exported unchanged);
    another architecture is refused."""
    src = _train(tmp_path / "src", 3)
    folder = tmp_path / "src" / "s3"
    big = {**TINY, "network": {**TINY["network"], "sample_size": 24},
           "data": {"size": 24, "n": 4, "seed": 0}, "init_from": str(folder),
           "train": {**TINY["train"], "seed": 9, "out_dir": str(tmp_path / "big")}}
    out = run_training(load_train_config(big), progress=False)
    got = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(got[k], src[k]) for k in src)
    meta = json.loads((out / "polydiff.json").read_text())
    assert meta["warm_start"] == {"init_from": str(folder)} and meta["config"]["size"] == 24
    other = {**big, "network": {**TINY["network"], "sample_size": 24,
                                "block_out_channels": [8, 8]},
             "train": {**big["train"], "out_dir": str(tmp_path / "other")}}
    with pytest.raises(UserError, match="layers differ"):
        run_training(load_train_config(other), progress=False)
