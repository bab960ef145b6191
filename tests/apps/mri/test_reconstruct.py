"""The bundled prior on a held-out phantom: posterior sampling beats zero-filling."""

import pytest
import torch

from polydiff.apps.mri.config import ReconConfig
from polydiff.apps.mri.model import load_model
from polydiff.apps.mri.reconstruct import reconstruct_slice
from polydiff.medical.kspace import ifft2c, zero_filled
from polydiff.medical.masks import budget
from polydiff.medical.metrics import psnr, ssim
from polydiff.medical.phantoms import phantom_volume
from polydiff.runtime import UserError


@pytest.fixture(scope="module")
def model():
    return load_model(None, torch.device("cpu"))


@pytest.mark.parametrize("policy", ["ads", "random"])
def test_bundled_prior_beats_zero_filled(model, policy):
    k = torch.from_numpy(phantom_volume(1, model.size, 4242))[0]  # a seed training never used
    truth = ifft2c(k).abs().numpy()[None]
    out = reconstruct_slice(model, k, ReconConfig(policy=policy, particles=4, steps=10),
                            torch.Generator().manual_seed(0))
    assert out.mask.sum() == budget(model.size, 4).total
    zf = zero_filled(k, torch.from_numpy(out.mask)).numpy()[None]
    rec = out.reconstruction[None]
    assert ssim(truth, rec) > ssim(truth, zf) + 0.1
    assert psnr(truth, rec) > psnr(truth, zf) + 3.0
    assert (out.std >= 0).all() and out.std.max() > 0  # the particles differ


def test_bundled_checkpoint_is_format_1_with_a_typed_config(model):
    import json

    meta = json.loads((model.folder / "polydiff.json").read_text())
    assert meta["format"] == 1 and meta["app"] == "mri" and meta["kind"] is None
    assert set(meta["config"]) == {"size", "normalisation", "data"}
    assert model.config.size == 64 and model.config.normalisation.statistic == "centre_column_rms"
    assert model.factor == pytest.approx(0.6311757564544678)
    assert model.fit == "fov" and "commands" in meta["warm_start"]


def test_bundled_priors_by_name(tmp_path):
    """``--model grid128`` loads the bundled 128x128 prior, ``grid64`` (and no name) the
    default 64x64 one; a folder of that name in the working directory wins over the name."""
    import os

    big, small = load_model("grid128"), load_model("grid64")
    assert (big.size, small.size, load_model(None).size) == (128, 64, 64)
    assert big.net.config.sample_size == 128
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        (tmp_path / "grid128").mkdir()
        with pytest.raises(UserError):  # the empty folder is what --model grid128 names now
            load_model("grid128")
    finally:
        os.chdir(cwd)
