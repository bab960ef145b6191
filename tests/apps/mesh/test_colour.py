"""The learned colour head and the text colour teacher; warm starts of both trainers."""

import zlib

import numpy as np
import torch

from polydiff.apps.mesh.captions import COLOURS, caption, heldout_prompts, random_spec
from polydiff.apps.mesh.colour import (
    ColourHead,
    fit_colour_head,
    load_colour_head,
    save_colour_head,
)
from polydiff.apps.mesh.distill import Renders, TextColourTeacher

NAMES = tuple(COLOURS)
PALETTE = tuple(COLOURS[n][0] for n in NAMES)


class BagOfWords:
    """A stand-in sentence encoder: the normalised sum of fixed random word vectors."""

    dim = 32

    def __call__(self, prompts):
        prompts = [prompts] if isinstance(prompts, str) else prompts
        out = []
        for p in prompts:
            v = torch.zeros(self.dim)
            for w in p.lower().replace(",", " ").split():
                g = torch.Generator().manual_seed(zlib.crc32(w.encode()))
                v += torch.randn(self.dim, generator=g)
            out.append(torch.nn.functional.normalize(v, dim=0))
        return torch.stack(out)


def test_fitted_head_names_the_colour_of_fresh_training_captions():
    encoder = BagOfWords()
    head = fit_colour_head(encoder, captions=800, steps=200, seed=0)
    rng = np.random.default_rng(7)
    specs = [random_spec(rng) for _ in range(200)]
    names = head.name(encoder([caption(s, rng, "train") for s in specs]))
    assert np.mean([n == s.colour for n, s in zip(names, specs)]) > 0.9
    # the same seed gives the same head
    again = fit_colour_head(encoder, captions=800, steps=200, seed=0)
    assert torch.equal(head.linear.weight, again.linear.weight)


def test_rgb_is_the_palette_colour_of_a_confident_head(tmp_path):
    head = ColourHead(4, NAMES[:3], PALETTE[:3])
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.copy_(torch.tensor([0.0, 50.0, 0.0]))
    rgb = head.rgb(torch.zeros(2, 4))
    assert torch.allclose(rgb, torch.tensor(PALETTE[1]).expand(2, 3), atol=1e-6)
    assert head.name(torch.zeros(1, 4)) == [NAMES[1]]
    # a checkpoint round trip keeps the weights and the palette
    assert load_colour_head(tmp_path) is None
    save_colour_head(head, tmp_path)
    back = load_colour_head(tmp_path)
    text = torch.randn(5, 4)
    assert torch.equal(back.probabilities(text), head.probabilities(text))
    assert torch.equal(back.table, head.table)


def test_text_colour_teacher_paints_the_coverage_in_the_heads_colour():
    head = ColourHead(4, NAMES[:2], PALETTE[:2])
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.copy_(torch.tensor([50.0, 0.0]))
    teacher = TextColourTeacher(head, size=8, views=2)
    mask = (torch.rand(1, 2, 1, 8, 8) > 0.5).float()
    color = torch.rand(1, 2, 3, 8, 8, requires_grad=True)
    out = teacher.denoise(Renders(torch.zeros(1, 2, 3, 8, 8), mask, color),
                          teacher.rig(torch.Generator().manual_seed(0)), torch.zeros(1, 4),
                          ["no colour word at all"], torch.tensor([0.5]), torch.Generator())
    assert out.x is color
    expected = mask * torch.tensor(PALETTE[0]).reshape(1, 1, 3, 1, 1)
    assert torch.allclose(out.x0_hat, expected, atol=1e-6)


def test_bundled_colour_head_reads_held_out_colour_words_through_the_encoder():
    """Held-out synonyms ("crimson", "navy", ...) are never in the head's training captions:
    a colour right well above chance (1/11) comes from the sentence encoder."""
    from polydiff.apps.contract import bundled_folder
    from polydiff.apps.mesh.text_encoder import TextEncoder

    head = load_colour_head(bundled_folder("mesh", "normals"))
    assert head is not None
    pairs = heldout_prompts(np.random.default_rng(3), 110)
    names = head.name(TextEncoder()([p for p, _ in pairs]))
    assert np.mean([n == s.colour for n, (_, s) in zip(names, pairs)]) > 0.3


def test_normal_warm_start_keeps_the_function_when_text_joins_the_time_embedding():
    from polydiff.apps.mesh.multiview import (
        MultiViewDenoiser,
        enable_joint_views,
        network_block,
        text_in_time,
    )
    from polydiff.apps.mesh.normals import load_normal_model
    from polydiff.apps.mesh.train_normals import warm_start
    from polydiff.diffusion import build_network

    old = load_normal_model()
    cfg = old.net.config
    block = network_block(cfg.sample_size, cfg.cross_attention_dim,
                          tuple(cfg.block_out_channels),
                          sum(t.startswith("CrossAttn") for t in cfg.down_block_types),
                          cfg.layers_per_block, cfg.attention_head_dim, cfg.norm_num_groups,
                          text_in_time=True)
    net = enable_joint_views(build_network(block))
    assert text_in_time(net)
    warm_start(net, "bundled")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 4, cfg.sample_size, cfg.sample_size, generator=g)
    text = torch.nn.functional.normalize(torch.randn(2, cfg.cross_attention_dim, generator=g),
                                         dim=-1)
    cams = torch.randn(1, 4, 4, generator=g)
    t = torch.tensor([300, 700])
    with torch.no_grad():
        a = MultiViewDenoiser(net, text, cams)(x, t)
        b = MultiViewDenoiser(old.net, text, cams)(x, t)
    assert (a - b).abs().max() < 1e-4


def test_triplane_warm_start_copies_the_saved_generator(tmp_path):
    from polydiff.apps.contract import checkpoint_meta
    from polydiff.apps.mesh.train_triplane import warm_start
    from polydiff.apps.mesh.triplane_model import save_triplane
    from tests.apps.mesh.test_distill import tiny_model

    saved, fresh = tiny_model(seed=0), tiny_model(seed=1)
    save_triplane(tmp_path, saved, checkpoint_meta("mesh", {**saved.config.__dict__},
                                                   kind="triplane"))
    assert not torch.equal(fresh.unet.conv_in.weight, saved.unet.conv_in.weight)
    warm_start(fresh, str(tmp_path))
    for a, b in ((fresh.unet, saved.unet), (fresh.decoder, saved.decoder)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(p, q), name
