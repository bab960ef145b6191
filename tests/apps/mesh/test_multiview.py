"""The joint-view UNet: views mix only through the joint attention, cameras and text
matter, checkpoints round-trip, a tiny model fits one batch, and generation is well-formed."""

import dataclasses

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from polydiff.apps.contract import checkpoint_meta
from polydiff.apps.mesh.multiview import (
    MultiViewDenoiser,
    camera_features,
    enable_joint_views,
    network_block,
)
from polydiff.apps.mesh.normals import (
    APP,
    KIND,
    NormalModel,
    NormalsConfig,
    generate_normal_views,
    load_normal_model,
)
from polydiff.diffusion import build_network, make_scheduler, save_checkpoint
from polydiff.runtime import UserError

SIZE, DIM, V = 16, 8, 4


def tiny_net(seed=0):
    torch.manual_seed(seed)
    block = network_block(SIZE, DIM, channels=(8, 16), attention_levels=1, heads=2,
                          norm_groups=4)
    return enable_joint_views(build_network(block)).eval()


def canonical_cameras():
    return camera_features(torch.zeros(V), torch.arange(V) * 90.0)[None]     # (1, V, 4)


def inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, V, 4, SIZE, SIZE, generator=g), torch.randn(1, DIM, generator=g)


@torch.no_grad()
def test_joint_attention_mixes_views_and_plain_attention_does_not():
    net = tiny_net()
    x, text = inputs()
    model = MultiViewDenoiser(net, text, canonical_cameras())
    t = torch.tensor([500])
    y = model(x, t)
    x2 = x.clone()
    x2[:, 2] += torch.randn_like(x2[:, 2])
    y2 = model(x2, t)
    assert (y2[:, 0] - y[:, 0]).abs().max() > 1e-4      # view 0 sees view 2
    net.set_attn_processor(AttnProcessor2_0())           # per-view attention only
    p, p2 = model(x, t), model(x2, t)
    torch.testing.assert_close(p2[:, [0, 1, 3]], p[:, [0, 1, 3]], atol=1e-6, rtol=0)
    # one object of V views is not mixed with another object of the batch
    net = tiny_net()
    xb = torch.cat([x, x2])
    yb = MultiViewDenoiser(net, text, canonical_cameras())(xb, torch.tensor([500, 500]))
    torch.testing.assert_close(yb[:1], y, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_camera_and_text_change_the_output():
    net = tiny_net()
    x, text = inputs()
    t = torch.tensor([300])
    y = MultiViewDenoiser(net, text, canonical_cameras())(x, t)
    turned = camera_features(torch.full((V,), 20.0), torch.arange(V) * 90.0 + 45)[None]
    assert (MultiViewDenoiser(net, text, turned)(x, t) - y).abs().max() > 1e-4
    assert (MultiViewDenoiser(net, torch.zeros_like(text), canonical_cameras())(x, t)
            - y).abs().max() > 1e-4
    f = camera_features(torch.tensor([0.0, 90.0]), torch.tensor([90.0, 0.0]))
    torch.testing.assert_close(f, torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]]),
                               atol=1e-6, rtol=0)


def save_tiny(folder, net):
    scheduler = make_scheduler("ddim", prediction_type="v_prediction")
    config = dataclasses.asdict(NormalsConfig(size=SIZE, views=V, text_dim=DIM,
                                              text_encoder="stub", sample_steps=4))
    save_checkpoint(folder, net, scheduler, checkpoint_meta(APP, config, kind=KIND))


@torch.no_grad()
def test_checkpoint_round_trip_keeps_outputs_and_joint_views(tmp_path):
    net = tiny_net(3)
    save_tiny(tmp_path / "ckpt", net)
    model = load_normal_model(tmp_path / "ckpt")
    assert model.config.size == SIZE and model.config.text_dim == DIM
    x, text = inputs()
    t = torch.tensor([700])
    before = MultiViewDenoiser(net, text, canonical_cameras())(x, t)
    after = MultiViewDenoiser(model.net, text, canonical_cameras())(x, t)
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)
    other = tmp_path / "other"
    save_checkpoint(other, net, make_scheduler("ddim"), checkpoint_meta("pde", {}, kind="wdno"))
    with pytest.raises(UserError, match="pde app"):
        load_normal_model(other)


def test_tiny_model_overfits_one_batch():
    """100 Adam steps on one fixed batch (fixed x_t, t, text, cameras) drive the v-prediction
    loss down by an order of magnitude: the network, camera path and joint attention all train."""
    from polydiff.diffusion import denoising_loss

    x0 = torch.zeros(2, V, 4, SIZE, SIZE)
    x0[:, :, 3] = -1
    x0[0, :, 0, 4:12, 4:12], x0[0, :, 3, 4:12, 4:12] = 1, 1       # a square, normal +x
    x0[1, :, 2, 2:14, 6:10], x0[1, :, 3, 2:14, 6:10] = 1, 1       # a bar, normal +z
    g = torch.Generator().manual_seed(0)
    noise, text = torch.randn(x0.shape, generator=g), torch.randn(2, DIM, generator=g)
    t = torch.tensor([150, 600])
    scheduler = make_scheduler("ddim", prediction_type="v_prediction")
    net = tiny_net().train()
    model = MultiViewDenoiser(net, text, canonical_cameras().expand(2, V, 4))
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    losses = []
    for _ in range(100):
        loss = denoising_loss(model, scheduler, x0, noise, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.1 * losses[0]          # an order of magnitude (0.82 -> 0.04)


def test_training_loss_draws_captions_and_drops_prompts_reproducibly():
    from polydiff.apps.mesh.train_normals import batch_generator, make_loss

    t = torch.tensor([3, 999, 41])
    assert torch.equal(torch.rand(4, generator=batch_generator(t)),
                       torch.rand(4, generator=batch_generator(t.clone())))
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x, t, encoder_hidden_states, class_labels, cross_attention_kwargs):
            seen.append(encoder_hidden_states[::V, 0].clone())
            return x * 0

    scheduler = make_scheduler("ddim", prediction_type="v_prediction")
    batch = {"x": torch.zeros(64, V, 4, 2, 2), "cameras": torch.zeros(64, V, 4),
             "text": torch.arange(1.0, 4.0)[None, :, None].expand(64, 3, DIM).clone()}
    make_loss(scheduler, 0.25)(Probe(), batch, torch.zeros(64, V, 4, 2, 2),
                               torch.arange(64) * 7)
    picked = seen[0][:, 0]
    assert set(picked.tolist()) == {0.0, 1.0, 2.0, 3.0}     # 0: dropped prompt
    assert 0.05 < (picked == 0).float().mean() < 0.5


class StubEncoder:
    """A deterministic 8-d prompt embedding (stands in for MiniLM in fast tests)."""

    name, dim = "stub", DIM

    def __call__(self, prompts):
        prompts = [prompts] if isinstance(prompts, str) else prompts
        g = torch.Generator().manual_seed(sum(map(ord, prompts[0])))
        return torch.nn.functional.normalize(torch.randn(len(prompts), DIM, generator=g), dim=1)


def test_generate_normal_views_is_well_formed_and_seeded(tmp_path):
    save_tiny(tmp_path / "ckpt", tiny_net(4))
    model = load_normal_model(tmp_path / "ckpt")
    run = lambda seed, **kw: generate_normal_views(  # noqa: E731
        "a red mug", model, views=V, steps=3, generator=torch.Generator().manual_seed(seed),
        text_encoder=StubEncoder(), **kw)
    out = run(0)
    assert out.normals.shape == (V, SIZE, SIZE, 3) and out.mask.shape == (V, SIZE, SIZE)
    assert out.normals.dtype == torch.float32 and out.mask.dtype == torch.bool
    n = out.normals.norm(dim=-1)
    torch.testing.assert_close(n[out.mask], torch.ones(int(out.mask.sum())))
    assert (n[~out.mask] == 0).all()
    # cameras: c2w's third column (the optical axis) points from the centre to the origin
    centres, axes = out.c2w[:, :3, 3], out.c2w[:, :3, 2]
    torch.testing.assert_close(axes, -torch.nn.functional.normalize(centres, dim=1))
    torch.testing.assert_close(out.K[:, 0, 2], torch.full((V,), SIZE / 2))
    assert torch.equal(run(0).normals, out.normals) and not torch.equal(run(1).normals,
                                                                       out.normals)
    with pytest.raises(UserError, match="empty prompt"):
        generate_normal_views(" ", model, text_encoder=StubEncoder())
    with pytest.raises(UserError, match="not finite"):
        run(0, guidance_scale=float("nan"))
    wrong = NormalModel(model.net, model.scheduler, dataclasses.replace(model.config,
                                                                        text_dim=384))
    with pytest.raises(UserError, match="8-d"):
        generate_normal_views("a mug", wrong, text_encoder=StubEncoder())


def test_bundled_checkpoint_loads_small_and_generates_views():
    from polydiff.apps.contract import bundled_folder

    folder = bundled_folder(APP, KIND)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size < 8.5e6
    model = load_normal_model()
    assert (model.config.size, model.config.views, model.config.text_dim) == (32, 4, 384)
    from polydiff.apps.mesh.text_encoder import TextEncoder

    out = generate_normal_views("a red mug", model, steps=4, text_encoder=TextEncoder(),
                                generator=torch.Generator().manual_seed(0))
    assert out.normals.shape == (4, 32, 32, 3) and 0.02 < out.mask.float().mean() < 0.9
    n = out.normals.norm(dim=-1)
    torch.testing.assert_close(n[out.mask], torch.ones(int(out.mask.sum())))
