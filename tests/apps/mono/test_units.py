"""Pieces of the mono app against exact answers: targets, augmentation, ensembling, loss,
the inference modes with oracle networks, metric scale from the floor."""

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from polydiff.apps.mono.config import DataConfig, EstimateOptions, MonoConfig, NetConfig
from polydiff.apps.mono.metric_depth import (
    grid_stride,
    metric_depth_from_floor,
    strided_camera,
)
from polydiff.apps.mono.model import MonoModel
from polydiff.apps.mono.predict import MonoPredictor, ensemble_depth, ensemble_normals
from polydiff.apps.mono.targets import (
    FOCAL_LOG_SCALE,
    decode_depth,
    encode_camera,
    encode_depth,
)
from polydiff.apps.mono.train import mirror, mono_loss, render_dataset
from polydiff.diffusion.predictions import from_x0
from polydiff.diffusion.schedulers import make_scheduler
from polydiff.geometry.cameras import Intrinsics, camera_rays
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


@pytest.mark.parametrize("focal_channel", [False, True])
def test_flip_augmentation_matches_rendering_the_mirrored_camera(focal_channel):
    s = _scene(1)
    K = s.intrinsics.matrix(torch.float32)
    img = s.image.permute(2, 0, 1)[None]
    targets = torch.cat([encode_depth(s.depth[None]), s.normals.permute(2, 0, 1)[None],
                         encode_camera(K[None], img, focal_channel)])
    flip = torch.ones(3, dtype=torch.bool)
    image, x0 = mirror((img * 2 - 1).expand(3, -1, -1, -1), targets, torch.arange(3), flip)
    mirrored = Intrinsics(s.intrinsics.fx, s.intrinsics.fy, s.intrinsics.width - s.intrinsics.cx,
                          s.intrinsics.cy, s.intrinsics.width, s.intrinsics.height)
    cam = encode_camera(mirrored.matrix(torch.float32)[None], img.flip(-1), focal_channel)[0]
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
    one, none = ensemble_depth(base[None], 24, 24)
    np.testing.assert_allclose(one, ref.numpy(), atol=1e-6)
    assert none is None  # no uncertainty from one member
    n = torch.nn.functional.normalize(torch.randn(3, 8, 8), dim=0)
    mean, ang = ensemble_normals(torch.stack([n, n]), 8, 8)
    np.testing.assert_allclose(mean, n.permute(1, 2, 0).numpy(), atol=1e-5)
    assert ang.max() < 0.1 and mean.dtype == np.float32


@pytest.mark.parametrize("prediction", ["v_prediction", "epsilon", "sample"])
def test_loss_vanishes_for_the_exact_model_of_any_prediction_type(prediction):
    sched = make_scheduler("ddim", prediction_type=prediction)
    x0 = torch.randn(6, 3, 8, 8)
    one_step = torch.tensor([True, False, True, False, False, True])

    def oracle(x_t, t):  # knows x0: the exact output of its kind at every x_t
        a = sched.alphas_cumprod[t].float()[:, None, None, None]
        return from_x0(x0, x_t, a, prediction)

    gen = torch.Generator().manual_seed(0)
    noise, t = torch.randn(x0.shape, generator=gen), torch.randint(0, 999, (6,), generator=gen)
    assert float(mono_loss(oracle, sched, x0, noise, t, one_step)) < 1e-8
    wrong = mono_loss(lambda x, t: torch.zeros_like(x), sched, x0, noise, t, one_step)
    assert float(wrong) > 0.1


class _OracleUNet(torch.nn.Module):
    """Stands in for the UNet: outputs, in the scheduler's prediction type, the x0 that is
    a fixed function of the image and the task label (so every mode must return it)."""

    def __init__(self, scheduler, prediction: str) -> None:
        super().__init__()
        self.scheduler, self.prediction = scheduler, prediction

    @staticmethod
    def truth(image: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.tanh(image * (1 + labels[:, None, None, None]))

    def forward(self, inp, t, class_labels):
        x_t, image = inp[:, :3], inp[:, 3:]
        a = self.scheduler.alphas_cumprod.to(inp.device)[t].float()[:, None, None, None]
        return from_x0(self.truth(image, class_labels), x_t, a, self.prediction)


@pytest.mark.parametrize("prediction", ["v_prediction", "epsilon"])
@pytest.mark.parametrize("mode", ["one-step", "ensemble", "refine"])
def test_every_mode_returns_the_oracles_x0_for_its_prediction_type(prediction, mode):
    sched = make_scheduler("ddim", prediction_type=prediction, timestep_spacing="trailing",
                           set_alpha_to_one=True)
    cfg = MonoConfig(net=NetConfig(resolution=8))
    predictor = MonoPredictor(MonoModel(_OracleUNet(sched, prediction), sched, cfg), "cpu")
    image = np.random.default_rng(0).uniform(size=(8, 8, 3)).astype(np.float32)
    cond = predictor.condition(image)
    options = EstimateOptions(mode=mode, steps=6, members=3, refine_steps=2)
    x0 = predictor.estimate(cond, "normals", options, torch.Generator().manual_seed(0))
    truth = _OracleUNet.truth(cond, torch.tensor([1]))
    assert x0.shape == (options.n_members, 3, 8, 8)
    # DDIM's last step lands on t = 0, not on the clean sample: x = sqrt(a0) x0 +
    # sqrt(1 - a0) eps, a few thousandths off; reading the output as the wrong prediction
    # type would be off by O(1)
    tol = 1e-5 if mode == "one-step" else 5 * float((1 - sched.alphas_cumprod[0]).sqrt())
    torch.testing.assert_close(x0, truth.expand_as(x0), atol=tol, rtol=0)


class _CameraOracle(torch.nn.Module):
    """Outputs, for every input, the Camera Image of ``K`` (at the network's resolution)
    with a focal channel, in the scheduler's prediction type."""

    def __init__(self, scheduler, K: Intrinsics) -> None:
        super().__init__()
        self.scheduler = scheduler
        self.target = encode_camera(K.matrix(torch.float32)[None],
                                    torch.zeros(1, 3, K.height, K.width), focal_channel=True)

    def forward(self, inp, t, class_labels):
        x_t = inp[:, :3]
        a = self.scheduler.alphas_cumprod[t].float()[:, None, None, None]
        return from_x0(self.target.expand_as(x_t), x_t, a, "v_prediction")


def test_camera_task_with_a_focal_channel_gives_the_exact_intrinsics():
    # a 64 x 48 photo with square pixels, squeezed to the network's 16 x 16
    true = Intrinsics(50.0, 50.0, 30.0, 20.0, 64, 48)
    sched = make_scheduler("ddim", prediction_type="v_prediction", timestep_spacing="trailing",
                           set_alpha_to_one=True)
    cfg = MonoConfig(net=NetConfig(resolution=16), data=DataConfig(focal_channel=True))
    oracle = _CameraOracle(sched, true.resized(16, 16))
    predictor = MonoPredictor(MonoModel(oracle, sched, cfg), "cpu")
    image = np.zeros((48, 64, 3), np.float32)
    for square in (True, False):
        est = predictor(image, EstimateOptions(tasks=("camera",), square_pixels=square),
                        torch.Generator().manual_seed(0)).intrinsics
        for a, b in zip((est.fx, est.fy, est.cx, est.cy), (true.fx, true.fy, true.cx, true.cy)):
            assert a == pytest.approx(b, rel=1e-4)
    # the focal channel: log(fx / W) / FOCAL_LOG_SCALE at every pixel (squeezed fx' / 16 = fx / W)
    torch.testing.assert_close(oracle.target[0, 2].double(), torch.full(
        (16, 16), math.log(true.fx / true.width) / FOCAL_LOG_SCALE, dtype=torch.float64),
        atol=1e-6, rtol=0)


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
        assert fit is not None and fit.floor_pixels > 30
        np.testing.assert_allclose(fit.depth, d, rtol=1e-4, atol=1e-4)
    # looking up at a ceiling: no floor, no scale
    s = _scene(0, pitch_deg=(60.0, 70.0))
    d = s.depth.double().numpy()
    assert metric_depth_from_floor(d / d.max(), s.normals.numpy(), s.intrinsics, 1.5,
                                   np.random.default_rng(0)) is None


class _TruthPredictor:
    """Stands in for the network: the true normals and intrinsics, an affine copy of the
    true depth, and the floor hidden except for ``keep`` of its rows."""

    tasks = ("depth", "normals", "camera")

    def __init__(self, scene, keep: slice | None = None) -> None:
        self.scene, self.keep = scene, keep

    def __call__(self, image, options, generator):
        from polydiff.apps.mono.predict import MonoPrediction

        d = self.scene.depth.double().numpy()
        normals = self.scene.normals.numpy().copy()
        if self.keep is not None:  # the floor outside ``keep`` turned to face the camera
            floor = normals[..., 1] < -0.7
            floor[self.keep] = False
            normals[floor] = [0.0, 0.0, -1.0]
        return MonoPrediction(depth=((d - d.min()) / (d.max() - d.min())).astype(np.float32),
                              normals=normals, intrinsics=self.scene.intrinsics)


def test_metric_depth_states_its_floor_support_and_needs_enough_of_it():
    from polydiff.apps.mono.cli import _image_line
    from polydiff.apps.mono.estimate import MIN_FLOOR_FRACTION, estimate_image

    s = _scene(1, 96, 128, pitch_deg=(-35.0, -30.0))
    floor = s.normals.numpy()[..., 1] < -0.7
    gen = torch.Generator().manual_seed(0)
    res = estimate_image(_TruthPredictor(s), s.image.numpy(), EstimateOptions(), gen,
                         s.camera_height)
    support = res.info["floor_support"]
    assert res.metric and support == pytest.approx(floor.mean(), abs=0.01)
    assert support > MIN_FLOOR_FRACTION and res.info["metric_fit"]["used"]
    np.testing.assert_allclose(res.depth, s.depth.numpy(), rtol=1e-3, atol=1e-3)
    line = _image_line(Path("room.png"), 128, 96, res)
    assert f"metric depth (floor: {100 * support:.2g} % of the pixels)" in line
    # the floor seen on one row of pixels (1 %): exact, but too little to trust
    rows = np.flatnonzero(floor.any(1))
    keep = (slice(rows[-1], rows[-1] + 1), slice(None))
    little = estimate_image(_TruthPredictor(s, keep), s.image.numpy(), EstimateOptions(),
                            torch.Generator().manual_seed(0), s.camera_height)
    support = little.info["floor_support"]
    assert 0 < support < MIN_FLOOR_FRACTION and not little.metric
    assert not little.info["metric_fit"]["used"]
    assert little.depth.max() <= 1  # relative, as the network gave it
    note = [n for n in little.info["notes"] if "floor covers" in n]
    assert len(note) == 1 and "\n" not in note[0] and "depth stays relative" in note[0]
    assert "under 2 %: no metric scale" in _image_line(Path("p.png"), 128, 96, little)
    # the threshold is the caller's: at 0 the same strip gives metric depth
    lax = estimate_image(_TruthPredictor(s, keep), s.image.numpy(), EstimateOptions(),
                         torch.Generator().manual_seed(0), s.camera_height, 0.0)
    assert lax.metric
    np.testing.assert_allclose(lax.depth, s.depth.numpy(), rtol=1e-3, atol=1e-3)


def test_strided_camera_sees_the_same_rays():
    K = Intrinsics(812.5, 790.0, 1990.3, 1507.9, 4000, 3000)
    for k in (1, 3, 7):
        h, w = len(range(0, 3000, k)), len(range(0, 4000, k))
        sub = camera_rays(strided_camera(K, k, h, w).matrix(), h, w)
        full = camera_rays(K.matrix(), 3000, 4000)[::k, ::k]
        torch.testing.assert_close(sub, full, atol=1e-12, rtol=0)
    assert grid_stride(60, 80, 1 << 18) == 1
    for m in (10**5, 1 << 18, 10**6):  # the smallest stride that keeps to the bound
        k = grid_stride(3000, 4000, m)
        assert -(-3000 // k) * -(-4000 // k) <= m < -(-3000 // (k - 1)) * -(-4000 // (k - 1))


def _floor_view(height: int, width: int, camera_height: float):
    """A camera looking 30 degrees down at an endless floor: exact depth and normals."""
    K = Intrinsics.from_fov(70.0, width, height)
    pitch = np.radians(30.0)
    n = np.array([0.0, -np.cos(pitch), -np.sin(pitch)])  # floor normal, camera frame
    rays = camera_rays(K.matrix(), height, width).numpy()
    nr = rays @ n
    depth = np.where(nr < -1e-3, -camera_height / np.minimum(nr, -1e-3), 50.0)
    normals = np.broadcast_to(n.astype(np.float32), (height, width, 3))
    return depth.astype(np.float32), normals, K


def test_metric_depth_on_12_megapixels_is_exact_and_small():
    depth, normals, K = _floor_view(3000, 4000, 1.4)
    below = depth < 50
    relative = np.where(below, (depth - 1.0) / 30.0, 2.0).astype(np.float32)  # affine copy
    tracemalloc.start()
    fit = metric_depth_from_floor(relative, normals, K, 1.4, np.random.default_rng(0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert fit is not None
    np.testing.assert_allclose(fit.depth[below], depth[below], rtol=2e-5)
    # the result (48 MB) plus small sampled work arrays; the full-resolution fit built a
    # 200 x N float64 matrix (gigabytes)
    assert peak < 48e6 + 60e6, peak / 1e6


def test_default_net_fits_the_checkpoint_budget():
    from polydiff.apps.mono.model import build_unet

    n = sum(p.numel() for p in build_unet(NetConfig(block_out_channels=[16, 32, 48, 48]))
            .parameters())
    assert n * 4 < 3e6


def test_shipped_configs_load():
    from polydiff.apps.mono.train import load_train_config

    root = Path(__file__).resolve().parents[3] / "configs" / "mono"
    for name in ("tiny.yaml", "paper.yaml"):
        cfg = load_train_config(root / name)
        assert cfg.train.batch_size > 0 and cfg.net.resolution % 8 == 0
        assert cfg.app_config().data.depth_quantiles == [0.02, 0.98]


