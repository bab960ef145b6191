"""The PRD training entry: a tiny run exports a loadable checkpoint; LoRA on a frozen base."""

import json

import pytest
import torch

from polydiff.apps.mesh.train_triplane import (
    DecoderConfig,
    GeneratorNetConfig,
    TriplaneTrainConfig,
    run_training,
)
from polydiff.apps.mesh.triplane_model import (
    TriplaneConfig,
    generate_triplane_mesh,
    load_triplane_model,
)
from polydiff.diffusion import TrainConfig
from polydiff.runtime import UserError
from tests.apps.mesh.test_distill import PointMassTeacher


def tiny_config(out, **net) -> TriplaneTrainConfig:
    from polydiff.apps.mesh.distill import DistillConfig

    return TriplaneTrainConfig(
        model=TriplaneConfig(latent_channels=4, plane_size=8, resolution=20),
        network=GeneratorNetConfig(channels=(16, 32), **net),
        decoder=DecoderConfig(features=8, hidden=16),
        distill=DistillConfig(mesh_resolution=16, reg_points=64),
        train=TrainConfig(steps=2, batch_size=1, lr=1e-3, ema_decay=0.9, out_dir=str(out),
                          device="cpu", log_every=1))


def test_tiny_run_exports_a_loadable_checkpoint(tmp_path):
    folder = run_training(tiny_config(tmp_path / "run"), progress=False,
                          teachers=[PointMassTeacher()])
    meta = json.loads((folder / "polydiff.json").read_text())
    assert (meta["format"], meta["app"], meta["kind"]) == (1, "mesh", "triplane")
    assert meta["config"]["text_dim"] == 384 and meta["train"]["steps"] == 2
    assert (folder / "train_state" / "state.json").is_file()
    model = load_triplane_model(folder)
    verts, faces, colors = generate_triplane_mesh("a red ball", model,
                                                  generator=torch.Generator().manual_seed(0))
    assert len(faces) > 0 and torch.isfinite(verts).all()


def test_lora_trains_adapters_on_a_frozen_pretrained_unet(tmp_path):
    from diffusers import UNet2DConditionModel

    base = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4,
                                block_out_channels=(16, 32), layers_per_block=1,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=24, attention_head_dim=4,
                                norm_num_groups=8)
    base.save_pretrained(tmp_path / "sd_unet")
    frozen_conv = base.conv_in.weight.detach().clone()
    folder = run_training(tiny_config(tmp_path / "run", pretrained_unet=str(tmp_path / "sd_unet"),
                                      lora_rank=4, lora_alpha=4.0),
                          progress=False, teachers=[PointMassTeacher()])
    model = load_triplane_model(folder)
    cfg = model.unet.config
    assert cfg.encoder_hid_dim == 384 and cfg.num_class_embeds == 6  # text projection, planes
    assert torch.equal(model.unet.conv_in.weight, frozen_conv)        # not an attention layer
    assert not any("lora" in k for k in model.unet.state_dict())      # adapters merged
    q = model.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q.weight
    q0 = base.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q.weight
    assert not torch.equal(q, q0)                                     # LoRA update folded in


def test_the_warm_up_needs_the_normal_teacher(tmp_path):
    """The warm-up's targets are the normal teacher's meshes: another teacher is refused
    with one line before any training."""
    cfg = tiny_config(tmp_path / "run")
    cfg.anchor.steps = 1
    with pytest.raises(UserError, match="normal teacher"):
        run_training(cfg, progress=False, teachers=[PointMassTeacher()])
    assert not (tmp_path / "run" / "polydiff.json").exists()


def test_a_time_budget_is_refused_in_one_line(tmp_path, capsys):
    """The PRD loop takes a step count: ``mesh train --time-budget`` exits 2 with one line
    and writes nothing."""
    from pathlib import Path

    from polydiff.cli import main

    config = Path(__file__).resolve().parents[3] / "configs/mesh/triplane_tiny.yaml"
    out = tmp_path / "out"
    assert main(["mesh", "train", "--config", str(config), "--time-budget", "10",
                 "-o", str(out)]) == 2
    assert "the PRD loop takes a step count" in capsys.readouterr().err
    assert not out.exists()
