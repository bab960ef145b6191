"""A user's Marigold folder through `polydiff mono estimate` (tiny random pipeline, offline)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from polydiff.cli import main

transformers = pytest.importorskip("transformers")


def _tiny_marigold(folder, kind: str) -> None:
    """Save a randomly initialised Marigold pipeline (a few thousand parameters)."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        MarigoldDepthPipeline,
        MarigoldNormalsPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=8, out_channels=4, block_out_channels=(8, 16),
        layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=8,
        norm_num_groups=4, attention_head_dim=2)
    vae = AutoencoderKL(block_out_channels=(4, 8), latent_channels=4, norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                        num_attention_heads=2, vocab_size=16,
                                        max_position_embeddings=8, projection_dim=8))
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2}
    (folder / "tok").mkdir(parents=True)
    (folder / "tok" / "vocab.json").write_text(json.dumps(vocab))
    (folder / "tok" / "merges.txt").write_text("#version: 0.2\n")
    tok = folder / "tok"
    tokenizer = CLIPTokenizer(str(tok / "vocab.json"), str(tok / "merges.txt"), model_max_length=8)
    sched = DDIMScheduler(prediction_type="v_prediction", timestep_spacing="trailing")
    cls = MarigoldDepthPipeline if kind == "depth" else MarigoldNormalsPipeline
    pipe = cls(unet=unet, vae=vae, scheduler=sched, text_encoder=text, tokenizer=tokenizer,
               prediction_type=kind, default_denoising_steps=1,
               default_processing_resolution=16)
    pipe.save_pretrained(folder / "pipe", safe_serialization=True)


@pytest.mark.parametrize("kind", ["depth", "normals"])
def test_marigold_folder_through_estimate(tmp_path, kind):
    _tiny_marigold(tmp_path, kind)
    img = np.random.default_rng(0).integers(0, 255, (20, 28, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    out = tmp_path / "out"
    rc = main(["mono", "estimate", str(tmp_path / "x.png"), "-o", str(out), "--model",
               str(tmp_path / "pipe"), "--device", "cpu", "--tasks", kind])
    assert rc == 0
    if kind == "depth":
        d = np.load(out / "x.png.depth.npy")
        assert d.shape == (20, 28) and np.isfinite(d).all()
        assert (out / "x.png.points.ply").is_file()
    else:
        n = np.load(out / "x.png.normals.npy")
        assert n.shape == (20, 28, 3)
        np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1, atol=1e-4)
    info = json.loads((out / "x.png.estimate.json").read_text())
    assert info["tasks"] == [kind] and not info["intrinsics_estimated"]
    # only this folder's task was written (and the two files every estimate writes)
    assert sorted(p.name.split(".", 2)[2] for p in out.iterdir()) == sorted(
        [*{"depth": ["depth.npy", "depth.png", "depth_vis.png", "points.ply"],
           "normals": ["normals.npy", "normals.png"]}[kind], "estimate.json", "intrinsics.json"])


def test_marigold_ensemble_writes_its_uncertainty(tmp_path):
    _tiny_marigold(tmp_path, "depth")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "x.png")
    out = tmp_path / "out"
    rc = main(["mono", "estimate", str(tmp_path / "x.png"), "-o", str(out), "--model",
               str(tmp_path / "pipe"), "--device", "cpu", "--tasks", "depth", "--mode",
               "ensemble", "--steps", "1", "--members", "2"])
    assert rc == 0
    assert np.load(out / "x.png.depth_uncertainty.npy").shape == (16, 16)


def test_marigold_folder_with_pickle_is_refused(tmp_path):
    _tiny_marigold(tmp_path, "depth")
    (tmp_path / "pipe" / "unet" / "evil.bin").write_bytes(b"not loaded")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "x.png")
    out = tmp_path / "out"
    rc = main(["mono", "estimate", str(tmp_path / "x.png"), "-o", str(out), "--model",
               str(tmp_path / "pipe"), "--device", "cpu", "--tasks", "depth"])
    assert rc != 0 and not out.exists()
