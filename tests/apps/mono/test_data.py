"""The mono training data closer to photographs: augmentation, richer scenes, fine-tuning
from a checkpoint."""

import dataclasses

import numpy as np
import pytest
import torch

from polydiff.apps.mono.augment import degrade
from polydiff.apps.mono.config import DataConfig, NetConfig
from polydiff.apps.mono.train import initial_weights, load_train_config, render_dataset
from polydiff.runtime import UserError

PHOTO = "configs/mono/photo.yaml"


def test_degrade_is_seeded_in_range_and_off_at_zero():
    img = np.random.default_rng(0).uniform(size=(24, 32, 3)).astype(np.float32)
    rng = np.random.default_rng(1)
    state = rng.bit_generator.state
    assert np.array_equal(degrade(img, rng, 0.0), img)
    assert rng.bit_generator.state == state  # nothing drawn when off
    a = degrade(img, np.random.default_rng(5), 1.0)
    b = degrade(img, np.random.default_rng(5), 1.0)
    assert np.array_equal(a, b) and a.dtype == np.float32 and a.shape == img.shape
    assert 0 <= a.min() and a.max() <= 1 and np.abs(a - img).mean() > 1e-3
    # a photometric change: a grey picture stays near-grey (no geometry is moved)
    grey = np.full((24, 32, 3), 0.5, np.float32)
    out = np.stack([degrade(grey, np.random.default_rng(s), 1.0) for s in range(8)])
    assert np.abs(out - out.mean((1, 2), keepdims=True)).mean() < 0.05


def test_augmentation_changes_the_images_and_never_the_targets():
    cfg = load_train_config(PHOTO).data
    small = dataclasses.replace(cfg, scenes=4)
    plain = render_dataset(dataclasses.replace(small, augment=0.0), 16)
    aug = render_dataset(small, 16)
    assert torch.equal(plain["x"], aug["x"]) and torch.equal(plain["task"], aug["task"])
    assert not torch.equal(plain["image"], aug["image"])
    assert torch.isfinite(aug["image"]).all() and aug["image"].abs().max() <= 1
    assert torch.isfinite(aug["x"]).all() and aug["x"].abs().max() <= 1 + 1e-5


def test_the_default_data_config_keeps_the_first_checkpoints_scenes():
    from polydiff.apps.mono.train import scene_config
    from polydiff.geometry.scenes import SceneConfig

    assert scene_config(DataConfig(), 32) == SceneConfig(
        height=32, width=32, fov_deg=(25.0, 100.0), pixel_aspect=(0.75, 1.33))


def test_fine_tuning_starts_from_the_bundled_weights_of_the_same_network():
    from polydiff.apps.mono.model import load_model

    cfg = load_train_config(PHOTO)
    assert cfg.init_from == "bundled"
    weights = initial_weights("bundled", dataclasses.replace(cfg.net, resolution=64))
    bundled = load_model(None).unet.state_dict()
    assert weights.keys() == bundled.keys()
    assert all(torch.equal(weights[k], bundled[k]) for k in weights)
    with pytest.raises(UserError, match="differs"):
        initial_weights("bundled", NetConfig())
