"""The teacher-anchored warm-up: exact targets of known meshes, and a tiny run that makes the
student's shape follow its prompt rather than its noise."""

import pytest
import torch
import trimesh
from torch import Tensor

from polydiff.apps.mesh.anchor import (
    AnchorConfig,
    AnchorSet,
    anchor_batch,
    anchor_loss,
    anchor_points,
    anchor_specs,
    build_anchor_set,
    fit_latents,
    latent_loss,
    load_anchor_set,
    lookup,
    occupancy_grid,
    paraphrase_prompts,
    save_anchor_set,
    sdf_grid,
    silhouette_agreement,
    teacher_meshes,
    unit_scale,
)
from polydiff.apps.mesh.captions import SHAPE_WORDS
from polydiff.apps.mesh.separation import prompt_separation
from polydiff.apps.mesh.triplane_model import (
    TriplaneConfig,
    build_triplane_model,
    sample_latents,
)
from polydiff.geometry.shapes import SHAPE_KINDS
from polydiff.geometry.triplane import grid_points


def _mesh(m: trimesh.Trimesh):
    return torch.tensor(m.vertices, dtype=torch.float32), torch.tensor(m.faces)


def test_sdf_grid_of_a_sphere_is_its_distance_within_a_cell():
    v, f = _mesh(trimesh.creation.icosphere(3, 0.3))
    grid, bound = 24, 0.5
    sdf = sdf_grid(v, f, grid, bound)
    exact = grid_points(grid, bound).norm(dim=-1) - 0.3
    cell = 2 * bound / (grid - 1)
    assert (sdf - exact).abs().max() < cell
    # trilinear lookup between grid points: still within a cell of the exact distance
    pts = (torch.rand(1, 500, 3, generator=torch.Generator().manual_seed(0)) - 0.5) * 2 * bound
    assert (lookup(sdf[None], pts, bound) - (pts.norm(dim=-1) - 0.3)).abs().max() < cell


def test_occupancy_of_an_off_centre_box_matches_its_extent():
    box = trimesh.creation.box(extents=(0.4, 0.2, 0.3))
    box.apply_translation((0.1, -0.05, 0.0))
    occ = occupancy_grid(*_mesh(box), 33, 0.5)
    p = grid_points(33, 0.5)
    inside = ((p - torch.tensor([0.1, -0.05, 0.0])).abs()
              < torch.tensor([0.2, 0.1, 0.15]) - 1e-6).all(-1)
    on_face = ((p - torch.tensor([0.1, -0.05, 0.0])).abs()
               - torch.tensor([0.2, 0.1, 0.15])).abs().min(-1).values < 1e-6
    assert torch.equal(occ[~on_face], inside[~on_face])


def test_lookup_reads_x_y_z_in_the_grid_order():
    g = grid_points(9, 0.5)
    for axis in range(3):  # a grid holding one coordinate returns that coordinate
        pts = torch.tensor([[[0.1, -0.2, 0.3], [-0.4, 0.25, 0.05]]])
        assert torch.allclose(lookup(g[None, ..., axis], pts, 0.5), pts[..., axis], atol=1e-6)


def test_near_points_concentrate_at_the_target_surface():
    v, f = _mesh(trimesh.creation.icosphere(3, 0.3))
    sdf = sdf_grid(v, f, 24, 0.5)[None]
    pts = anchor_points(sdf, 1000, 0.5, 0.03, torch.Generator().manual_seed(0))
    d = (pts.norm(dim=-1) - 0.3).abs()[0]
    assert pts.shape == (1, 1000, 3) and pts.abs().max() <= 0.5
    assert (d[500:] < 0.1).float().mean() > 0.9            # the near half
    assert (d[:500] < 0.1).float().mean() < 0.4            # the uniform half (0.24)


def test_batches_repeat_each_prompt_and_prompts_cycle_the_kinds(tmp_path):
    anchor = AnchorSet([f"p{i}" for i in range(5)], torch.randn(5, 8),
                       torch.randn(5, 4, 4, 4), torch.rand(5, 3), 0.5)
    idx = anchor_batch(anchor, 3, 2, torch.Generator().manual_seed(0))
    assert idx.tolist()[::2] == idx.tolist()[1::2] and len(set(idx.tolist())) == 3
    save_anchor_set(tmp_path / "a.safetensors", anchor)
    back = load_anchor_set(tmp_path / "a.safetensors")
    assert back.prompts == anchor.prompts and torch.equal(back.sdf, anchor.sdf)
    prompts = [text for text, _ in anchor_specs(0, 2 * len(SHAPE_KINDS))]
    for i, prompt in enumerate(prompts):  # each caption names a training word of its kind
        words = SHAPE_WORDS[SHAPE_KINDS[i % len(SHAPE_KINDS)]].train
        assert any(w in prompt for w in words), (i, prompt)
    assert [text for text, _ in anchor_specs(0, 5)] == prompts[:5]


def test_paraphrases_say_what_their_spec_says(tmp_path):
    from polydiff.apps.mesh.captions import COLOURS, Spec
    from polydiff.apps.mesh.snapping import anchor_captions, spec_anchor_captions

    spec = Spec("mug", "orange", "squat")
    forms = spec_anchor_captions(spec)
    assert len(forms) == 6 and set(forms) <= set(anchor_captions())
    assert "a short orange coffee mug" in forms and "a short tangerine mug" in forms
    specs = [Spec("cone", "grey", None), Spec("torus", "red", "tall")]
    para = paraphrase_prompts(specs, 10, seed=0)
    assert [len(p) for p in para] == [10, 10]
    for spec, captions in zip(specs, para):
        assert set(captions[:6]) == set(spec_anchor_captions(spec))   # every snapping form
        for text in captions:  # the rest: training captions of the same kind and colour
            assert any(w in text for w in SHAPE_WORDS[spec.shape].train), text
            assert any(w in text for w in COLOURS[spec.colour][1].train), text
    assert para == paraphrase_prompts(specs, 10, seed=0)
    for spec, captions in zip(specs, paraphrase_prompts(specs, 3, seed=1)):
        assert len(set(captions)) == 3 and set(captions) <= set(spec_anchor_captions(spec))
    assert [s for _, s in anchor_specs(0, 4)][1].shape == SHAPE_KINDS[1]

    # conditioning draws each item's own embedding or one of its paraphrases'
    text = torch.arange(3.0)[:, None].expand(3, 4).clone()              # item k: all k
    alt = 10 * torch.arange(3.0)[:, None, None] + torch.arange(1.0, 3.0)[None, :, None]
    anchor = AnchorSet(["a", "b", "c"], text, torch.randn(3, 4, 4, 4), torch.rand(3, 3), 0.5,
                       alt.expand(3, 2, 4).clone())
    gen = torch.Generator().manual_seed(0)
    idx = torch.tensor([0, 2] * 200)
    got = anchor.condition(idx, gen)[:, 0]
    assert set(got[::2].tolist()) == {0.0, 1.0, 2.0} and set(got[1::2].tolist()) == {2, 21, 22}
    plain = anchor._replace(paraphrases=None)
    state = gen.get_state()
    assert torch.equal(plain.condition(idx, gen), text[idx])
    assert torch.equal(gen.get_state(), state)           # no paraphrases: no draw
    save_anchor_set(tmp_path / "a.safetensors", anchor)
    back = load_anchor_set(tmp_path / "a.safetensors")
    assert torch.equal(back.paraphrases, anchor.paraphrases)
    save_anchor_set(tmp_path / "b.safetensors", plain)
    assert load_anchor_set(tmp_path / "b.safetensors").paraphrases is None


def test_an_unknown_anchor_rig_is_refused_in_one_line(tmp_path, capsys):
    """``mesh train`` with an unknown ``anchor.rig`` exits 2 with one line, writing nothing."""
    from pathlib import Path

    import yaml

    from polydiff.cli import main

    root = Path(__file__).resolve().parents[3]
    cfg = yaml.safe_load((root / "configs/mesh/triplane_tiny_v6.yaml").read_text())
    cfg["anchor"]["rig"] = "overhead"
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    assert main(["mesh", "train", "--config", str(config), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "anchor.rig must be 'random' or 'canonical', got 'overhead'" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    assert AnchorConfig(rig="canonical").rig == "canonical"


def test_fresh_decoder_follows_its_latent():
    """At init the decoded SDF differs between unrelated latents by over 1e-3 (2e-4 with
    PyTorch's default conv init, which shrank unit latents to features of 0.06 RMS)."""
    cfg = TriplaneConfig(latent_channels=4, plane_size=8, text_dim=8)
    dec = build_triplane_model(cfg, channels=(16, 32), seed=0).decoder
    z = torch.randn(2, 6, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    geo, _ = dec(z)
    pts = grid_points(16, 0.5).reshape(1, -1, 3).expand(2, -1, -1)
    sdf = dec.field.sdf(geo, pts)
    assert (sdf[0] - sdf[1]).pow(2).mean().sqrt() > 1e-3
    sphere = pts[0].norm(dim=-1) - 0.3                     # still mostly the bias sphere
    assert (sdf[0] - sphere).pow(2).mean().sqrt() < 0.15


def _two_targets(bound: float = 0.5, grid: int = 16) -> AnchorSet:
    """A small red ball and a flat blue slab, each with its own (random) text embedding."""
    ball = sdf_grid(*_mesh(trimesh.creation.icosphere(2, 0.15)), grid, bound)
    slab = sdf_grid(*_mesh(trimesh.creation.box(extents=(0.7, 0.7, 0.12))), grid, bound)
    text = torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator()
                                                     .manual_seed(1)), dim=-1)
    return AnchorSet(["ball", "slab"], text, torch.stack([ball, slab]),
                     torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]), bound)


def _tiny_model():
    cfg = TriplaneConfig(latent_channels=4, plane_size=8, text_dim=8)
    return build_triplane_model(cfg, channels=(16, 32), decoder={"features": 8, "hidden": 16},
                                seed=0)


def _errors(model, anchor: AnchorSet, seed: int) -> tuple[Tensor, Tensor]:
    """(field, target) truncated-L1 errors of the 4-step samples, and their inside colours."""
    pts = grid_points(12, anchor.bound).reshape(1, -1, 3).expand(2, -1, -1)
    with torch.no_grad():
        z = sample_latents(model, anchor.text,
                           generator=torch.Generator().manual_seed(seed)).sample
        geo, tex = model.decoder(z)
        s = model.decoder.field.sdf(geo, pts).clamp(-0.1, 0.1)
        t = lookup(anchor.sdf, pts, anchor.bound).clamp(-0.1, 0.1)
        rgb = model.decoder.field.rgb(tex, pts)
    colours = torch.stack([rgb[b][t[b] < 0].mean(0) for b in (0, 1)])
    return (s[:, None] - t[None]).abs().mean(-1), colours


def test_unit_scale_keeps_every_decoded_field():
    dec = _tiny_model().decoder
    z = 0.1 * torch.randn(3, 6, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    pts = grid_points(8, 0.5).reshape(1, -1, 3).expand(3, -1, -1)
    with torch.no_grad():
        before = dec.field.sdf(dec(z)[0], pts)
        z1 = unit_scale(dec, z)
        after = dec.field.sdf(dec(z1)[0], pts)
    assert abs(float(z1.pow(2).mean().sqrt()) - 1) < 1e-5
    assert torch.allclose(before, after, atol=1e-5)


@pytest.mark.slow  # ~12 s on a quiet core, 22 s on the shared CPU
def test_two_stage_warm_up_makes_the_shape_follow_the_prompt():
    """Stage 1 fits one latent per target with the decoder, stage 2 trains the UNet to
    denoise them; the 4-step samples from two seeds then decode, for each prompt, nearer
    its own target than the other prompt's, in its own colour."""
    torch.manual_seed(0)
    model, anchor = _tiny_model(), _two_targets()
    cfg = AnchorConfig(points=512, fit_steps=80, fit_batch=2, fit_lr=0.03)
    before = prompt_separation(model, anchor.text, [0, 1], resolution=12)
    z = fit_latents(model.decoder, anchor, (6, 4, 8, 8), cfg,
                    torch.Generator().manual_seed(0), progress=False)
    opt = torch.optim.Adam(model.unet.parameters(), lr=2e-3)
    for step in range(80):
        idx = torch.tensor([0, 1, 0, 1])
        loss = latent_loss(model, z[idx], anchor.text[idx], torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.total.backward()
        opt.step()
    after = prompt_separation(model, anchor.text, [0, 1], resolution=12)
    # at init the field varies with the noise as much as with the prompt; after, far less
    assert before["separation"] < 2 and after["separation"] > 4, (before, after)
    for seed in (0, 1):
        err, colours = _errors(model, anchor, seed)
        assert err[0, 0] < err[0, 1] and err[1, 1] < err[1, 0], err
        assert colours[0, 0] > colours[0, 2] and colours[1, 2] > colours[1, 0], colours


def test_end_to_end_anchor_steps_lower_the_anchor_loss():
    """The single-stage form (regressing the 4-step sample's fields): gradients reach the
    UNet and the decoder, and a few steps lower the loss at a fixed seed."""
    model, anchor = _tiny_model(), _two_targets()
    cfg = AnchorConfig(points=256)
    idx = torch.tensor([0, 0, 1, 1])

    def measured():
        with torch.no_grad():
            return anchor_loss(model, anchor, idx, cfg, torch.Generator().manual_seed(9)).total

    opt = torch.optim.Adam([{"params": model.unet.parameters(), "lr": 1e-3},
                            {"params": model.decoder.parameters(), "lr": 3e-3}])
    start = measured()
    for step in range(5):
        loss = anchor_loss(model, anchor, idx, cfg, torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.total.backward()
        if step == 0:
            assert any(p.grad is not None and p.grad.abs().sum() > 0
                       for p in model.unet.parameters())
        opt.step()
    assert measured() < 0.8 * start


def test_separation_is_zero_across_identical_prompts_and_for_a_constant_decoder():
    model = _tiny_model()
    text = torch.randn(1, 8, generator=torch.Generator().manual_seed(0)).expand(2, -1)
    same = prompt_separation(model, text, [0, 1], resolution=8)
    assert same["sdf_across_prompts"] < 1e-6 and same["sdf_across_seeds"] > 1e-4
    for conv in (m for m in model.decoder.convs if isinstance(m, torch.nn.Conv2d)):
        torch.nn.init.zeros_(conv.weight)             # the field no longer sees the planes
    flat = prompt_separation(model, torch.randn(2, 8), [0, 1], resolution=8)
    assert flat["sdf_across_prompts"] < 1e-6 and flat["sdf_across_seeds"] < 1e-6
    assert flat["latent_across_seeds"] > 0.1           # while the latents still differ


def _disk_masks(cams, radius: float) -> Tensor:
    """(V, H, W) analytic silhouettes of a centred sphere: discs of image radius
    f r / sqrt(d^2 - r^2) about each image centre (cameras look at the origin)."""
    d = cams.centres.norm(dim=-1)
    f = cams.K[:, 0, 0]
    rim = f * radius / (d ** 2 - radius ** 2).sqrt()
    ys, xs = torch.meshgrid(torch.arange(cams.height) + 0.5, torch.arange(cams.width) + 0.5,
                            indexing="ij")
    r2 = (xs - cams.K[:, 0, 2, None, None]) ** 2 + (ys - cams.K[:, 1, 2, None, None]) ** 2
    return r2 <= rim[:, None, None] ** 2


def test_silhouette_agreement_of_a_sphere_with_its_analytic_discs():
    """A sphere mesh agrees with the discs it projects to (IoU ~1), and a quarter with the
    discs of half its radius (their areas' ratio)."""
    from polydiff.geometry.render import orbit_cameras

    cams = orbit_cameras([0.0, 30.0, -20.0], [0.0, 90.0, 200.0], distance=2.4, fov_deg=40.0,
                         size=64)
    v, f = _mesh(trimesh.creation.icosphere(4, 0.35))
    assert silhouette_agreement(v, f, _disk_masks(cams, 0.35), cams) > 0.95
    half = silhouette_agreement(v, f, _disk_masks(cams, 0.35 / 2), cams)
    assert 0.2 < half < 0.3


def test_shared_geometry_keeps_the_best_draw_per_group():
    """Prompts of one group get one teacher mesh, the draw with the best silhouette
    agreement (re-drawn here from the same generator state); colours stay per prompt."""
    from polydiff.apps.contract import bundled_folder
    from polydiff.apps.mesh.colour import load_colour_head
    from polydiff.apps.mesh.normals import load_normal_model
    from polydiff.apps.mesh.text_encoder import TextEncoder

    normal = load_normal_model(None)
    head = load_colour_head(bundled_folder("mesh", "normals"))
    encoder = TextEncoder()
    prompts = ["a red mug", "a green cone", "a blue mug"]
    cfg = AnchorConfig(rig="canonical", draws=2, fuse_iterations=10, grid=24)
    got = build_anchor_set(normal, head, encoder, prompts, 0.6, cfg,
                           torch.Generator().manual_seed(3), groups=["m", "c", "m"],
                           progress=False)
    assert torch.equal(got.sdf[0], got.sdf[2]) and not torch.equal(got.sdf[0], got.sdf[1])
    assert (got.rgb[0] - got.rgb[2]).abs().max() > 0.2        # red vs blue
    again = teacher_meshes(normal, encoder(prompts)[[0, 0, 1, 1]], cfg,
                           torch.Generator().manual_seed(3))
    for i, pair in ((0, again[:2]), (1, again[2:])):
        assert pair[0][0] != pair[1][0]                      # the draws differ
        _, v, f = max(pair, key=lambda p: p[0])
        assert torch.equal(got.sdf[i], sdf_grid(v, f, cfg.grid, 0.6))
