"""Pieces of the mono app against exact answers: targets, augmentation, ensembling, loss,
metric scale from the floor."""

import numpy as np
import torch

from polydiff.apps.mono.metric import metric_depth_from_floor
from polydiff.apps.mono.model import NetConfig, build_scheduler
from polydiff.apps.mono.pipeline import ensemble_depth, ensemble_normals
from polydiff.apps.mono.targets import decode_depth, encode_camera, encode_depth
from polydiff.apps.mono.training import DataConfig, mirror, mono_loss, render_dataset
from polydiff.diffusion.predictions import v_from_x0
from polydiff.geometry.cameras import Intrinsics
from polydiff.geometry.metrics import depth_metrics
from polydiff.geometry.scenes import SceneConfig, render_scene


def _scene(seed=0, h=48, w=64, **kw):
    return render_scene(np.random.default_rng(seed), SceneConfig(height=h, width=w, **kw))


def test_depth_target_is_affine_invariant_and_decodes_affinely():
    d = torch.rand(2, 16, 16) * 4 + 1
    enc = encode_depth(d)
    torch.testing.assert_close(enc, encode_depth(3 * d + 7))
    rel = decode_depth(enc)
    assert rel.min() == 0 and rel.max() == 1
    m = depth_metrics(rel[0].double().numpy(), d[0].double().numpy())
    assert m.delta1 > 0.99  # only the clipped 2 % tails break the affine map


def test_flip_augmentation_matches_rendering_the_mirrored_camera():
    s = _scene(1)
    K = s.intrinsics.matrix(torch.float32)
    img = s.image.permute(2, 0, 1)[None]
    targets = torch.cat([encode_depth(s.depth[None]), s.normals.permute(2, 0, 1)[None],
                         encode_camera(K[None], img)])
    flip = torch.ones(3, dtype=torch.bool)
    image, x0 = mirror((img * 2 - 1).expand(3, -1, -1, -1), targets, torch.arange(3), flip)
    mirrored = Intrinsics(s.intrinsics.fx, s.intrinsics.fy, s.intrinsics.width - s.intrinsics.cx,
                          s.intrinsics.cy, s.intrinsics.width, s.intrinsics.height)
    cam = encode_camera(mirrored.matrix(torch.float32)[None], img.flip(-1))[0]
    torch.testing.assert_close(x0[2], cam, atol=1e-5, rtol=0)
    torch.testing.assert_close(image[0], img[0].flip(-1) * 2 - 1)
    n = s.normals.permute(2, 0, 1).flip(-1) * torch.tensor([-1.0, 1, 1])[:, None, None]
    torch.testing.assert_close(x0[1], n)


def test_ensembling_is_affine_invariant():
    base = torch.rand(24, 24)
    members = torch.stack([base, 2 * base + 0.5, 0.3 * base - 1])
    merged, spread = ensemble_depth(members, 24, 24)
    ref = (base - base.min()) / (base.max() - base.min())
    np.testing.assert_allclose(merged, ref.numpy(), atol=1e-5)
    assert spread.max() < 1e-5
    n = torch.nn.functional.normalize(torch.randn(3, 8, 8), dim=0)
    mean, ang = ensemble_normals(torch.stack([n, n]), 8, 8)
    np.testing.assert_allclose(mean, n.permute(1, 2, 0).numpy(), atol=1e-5)
    assert ang.max() < 0.1


def test_loss_vanishes_for_the_exact_model():
    sched = build_scheduler()
    x0 = torch.randn(6, 3, 8, 8)
    one_step = torch.tensor([True, False, True, False, False, True])

    def oracle(x_t, t):  # knows x0: exact v for noisy inputs, and x0 back at x_t = 0
        return v_from_x0(x0, x_t, sched.alphas_cumprod[t].float()[:, None, None, None])

    gen = torch.Generator().manual_seed(0)
    noise, t = torch.randn(x0.shape, generator=gen), torch.randint(0, 1000, (6,), generator=gen)
    assert float(mono_loss(oracle, sched, x0, noise, t, one_step)) < 1e-8
    wrong = mono_loss(lambda x, t: torch.zeros_like(x), sched, x0, noise, t, one_step)
    assert float(wrong) > 0.1


def test_dataset_pairs_every_scene_with_every_task():
    data = render_dataset(DataConfig(scenes=2), 16)
    assert data["x"].shape == (6, 3, 16, 16) and data["task"].tolist() == [0, 1, 2] * 2
    torch.testing.assert_close(data["image"][0], data["image"][2])
    torch.testing.assert_close(data["x"][1].norm(dim=0), torch.ones(16, 16))  # unit normals


def test_metric_depth_from_floor_is_exact_on_true_geometry():
    for seed in range(3):
        s = _scene(seed)
        d = s.depth.double().numpy()
        rel = (d - d.min()) / (d.max() - d.min())
        fit = metric_depth_from_floor(rel, s.normals.numpy(), s.intrinsics, s.camera_height,
                                      np.random.default_rng(0))
        assert fit is not None and fit.floor.sum() > 30
        np.testing.assert_allclose(fit.depth, d, rtol=1e-4, atol=1e-4)
    # looking up at a ceiling: no floor, no scale
    s = _scene(0, pitch_deg=(60.0, 70.0))
    d = s.depth.double().numpy()
    assert metric_depth_from_floor(d / d.max(), s.normals.numpy(), s.intrinsics, 1.5,
                                   np.random.default_rng(0)) is None


def test_default_net_fits_the_checkpoint_budget():
    from polydiff.apps.mono.model import build_unet

    n = sum(p.numel() for p in build_unet(NetConfig(block_out_channels=[16, 32, 48, 48]))
            .parameters())
    assert n * 4 < 3e6


def test_shipped_configs_load():
    from pathlib import Path

    from polydiff.apps.mono.training import load_train_config

    root = Path(__file__).resolve().parents[3] / "configs" / "mono"
    for name in ("tiny.yaml", "paper.yaml"):
        cfg = load_train_config(root / name)
        assert cfg.train.batch_size > 0 and cfg.net.resolution % 8 == 0
