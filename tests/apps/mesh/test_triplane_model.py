"""The text -> triplane generator: joint plane attention, 4-step sampling, save/load."""

import json
import warnings

import pytest
import torch
import trimesh
from diffusers.models.attention_processor import AttnProcessor2_0

from polydiff.apps.contract import checkpoint_meta
from polydiff.apps.mesh.triplane_model import (
    APP,
    KIND,
    PlaneDenoiser,
    TriplaneConfig,
    build_triplane_model,
    generate_triplane_mesh,
    load_triplane_model,
    sample_latents,
    save_triplane,
)
from polydiff.diffusion import StepCallback
from polydiff.runtime import UserError

TEXT_DIM = 8


def tiny(seed: int = 0):
    cfg = TriplaneConfig(latent_channels=4, plane_size=8, text_dim=TEXT_DIM, resolution=24)
    return build_triplane_model(cfg, channels=(16, 32), heads=4, norm_groups=8,
                                decoder={"features": 8, "hidden": 16}, seed=seed)


class FakeEncoder:
    """A deterministic text 'encoder' of the right size (prompt -> hashed unit vector)."""

    name, dim = "fake", TEXT_DIM

    def __call__(self, prompts):
        prompts = [prompts] if isinstance(prompts, str) else prompts
        out = []
        for p in prompts:
            g = torch.Generator().manual_seed(sum(map(ord, p)))
            out.append(torch.nn.functional.normalize(torch.randn(TEXT_DIM, generator=g), dim=0))
        return torch.stack(out)


def test_joint_attention_mixes_the_six_planes():
    model = tiny()
    x = torch.randn(2, 6, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    text = torch.randn(2, TEXT_DIM)
    t = torch.tensor(500)
    fn = PlaneDenoiser(model.unet, text)
    with torch.no_grad():
        base = fn(x, t)
        x2 = x.clone()
        x2[:, 5] += 1.0  # change only the last texture plane
        moved = fn(x2, t)
    assert (moved[:, 0] - base[:, 0]).abs().max() > 1e-4  # plane 0 sees plane 5
    # the other object in the batch is untouched by object 0's planes
    x3 = x.clone()
    x3[0, 5] += 1.0
    with torch.no_grad():
        other = fn(x3, t)
    assert torch.allclose(other[1], base[1], atol=1e-5)
    # control: with per-plane attention, plane 0 does not depend on plane 5 at all
    model.unet.set_attn_processor(AttnProcessor2_0())
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the plain processor ignores num_views, with a warning
        a, b = fn(x, t), fn(x2, t)
    assert torch.allclose(a[:, 0], b[:, 0], atol=1e-6)


def test_four_step_sampling_uses_the_paper_timesteps_and_shape():
    model = tiny()
    seen = []
    out = sample_latents(model, torch.randn(3, TEXT_DIM), generator=torch.Generator()
                         .manual_seed(1), hooks=[StepCallback(lambda s, x: seen.append(
                             int(s.timestep)))], keep_x0=True)
    assert out.sample.shape == (3, 6, 4, 8, 8)
    assert seen == [999, 749, 499, 249]
    assert len(out.x0_history) == 4 and torch.isfinite(out.sample).all()
    geo, tex = model.decoder(out.sample)
    assert geo.shape == tex.shape == (3, 3, 8, 16, 16)


def test_save_load_round_trip_gives_the_same_mesh(tmp_path):
    model = tiny(seed=3)
    with torch.no_grad():  # move the field off the plain sphere so the test sees the weights
        model.decoder.field.sdf_mlp[-1].weight.mul_(20)
    meta = checkpoint_meta(APP, {"latent_channels": 4, "plane_size": 8, "text_dim": TEXT_DIM,
                                 "resolution": 24, "text_encoder": "fake"}, kind=KIND)
    save_triplane(tmp_path / "ckpt", model, meta)
    assert json.loads((tmp_path / "ckpt" / "polydiff.json").read_text())["kind"] == "triplane"
    loaded = load_triplane_model(tmp_path / "ckpt")
    enc = FakeEncoder()
    a = generate_triplane_mesh("a red mug", model, generator=torch.Generator().manual_seed(5),
                               text_encoder=enc)
    b = generate_triplane_mesh("a red mug", loaded, generator=torch.Generator().manual_seed(5),
                               text_encoder=enc)
    for x, y in zip(a, b):
        assert torch.allclose(x.float(), y.float(), atol=1e-5)
    verts, faces, colors = a
    mesh = trimesh.Trimesh(verts.numpy(), faces.numpy(), process=False)
    assert mesh.is_watertight
    assert float(verts.abs().max()) <= 0.5 + 1e-6
    assert colors.shape == verts.shape
    # a checkpoint of the normal model is refused as a triplane model
    meta_other = dict(meta, kind="normals")
    save_triplane(tmp_path / "other", model, meta_other)
    with pytest.raises(UserError, match="normals model"):
        load_triplane_model(tmp_path / "other")


def test_bad_generate_inputs_are_user_errors():
    model = tiny()
    with pytest.raises(UserError, match="empty prompt"):
        generate_triplane_mesh("  ", model, text_encoder=FakeEncoder())
    with pytest.raises(UserError, match="resolution"):
        generate_triplane_mesh("a ball", model, resolution=4, text_encoder=FakeEncoder())


def test_an_empty_field_names_the_prompt_and_the_seed(monkeypatch):
    """When the sampled SDF has no inside, the error says for which prompt and seed, and
    what to try (not only the geometry's words)."""
    from polydiff.apps.mesh import triplane_model
    from polydiff.apps.mesh.generate import MeshGenerator
    from polydiff.geometry.triplane import EmptyFieldError

    def empty(*args, **kwargs):
        raise EmptyFieldError("the field has no inside (the SDF is positive everywhere)")

    monkeypatch.setattr(triplane_model, "generate_triplane_mesh", empty)
    gen = MeshGenerator("triplane", None, torch.device("cpu"))
    with pytest.raises(UserError, match=r"'a yellow table' with seed 7 in 4 noise draws: "
                       r".*another --seed"):
        gen("a yellow table", steps=None, resolution=None, views=4, seed=7)


def test_an_empty_draw_is_followed_by_the_same_seeds_next_draw(monkeypatch):
    """A draw with no surface is replaced by the next noise draw of the same generator: the
    mesh is the one that draw gives, the same seed gives it again, and a note says so."""
    from polydiff.apps.mesh import triplane_model
    from polydiff.apps.mesh.generate import MeshGenerator
    from polydiff.geometry.triplane import EmptyFieldError

    real = triplane_model.generate_triplane_mesh
    calls = []

    def first_two_empty(prompt, model, **kwargs):
        noise = torch.randn(3, generator=kwargs["generator"])  # consume the stream
        calls.append(noise)
        if len(calls) % 3 in (1, 2):
            raise EmptyFieldError("the field has no inside (the SDF is positive everywhere)")
        return real(prompt, model, **kwargs)

    monkeypatch.setattr(triplane_model, "generate_triplane_mesh", first_two_empty)
    gen = MeshGenerator("triplane", None, torch.device("cpu"))
    a = gen("a red mug", steps=None, resolution=32, views=4, seed=3)
    b = gen("a red mug", steps=None, resolution=32, views=4, seed=3)
    assert len(calls) == 6 and not torch.equal(calls[0], calls[2])  # new noise per draw
    assert torch.equal(calls[2], calls[5]) and torch.equal(a.verts, b.verts)
    assert any("first 2 noise draw(s) of seed 3" in n and "draw 3" in n for n in a.notes)
    monkeypatch.setattr(triplane_model, "generate_triplane_mesh", real)
    direct = gen("a red mug", steps=None, resolution=32, views=4, seed=3)
    assert not any("noise draw" in n for n in direct.notes)
    assert not torch.equal(direct.verts, a.verts)  # draw 3 is not draw 1
