from dataclasses import dataclass, field

import pytest
import torch

from polydiff.diffusion import build_network, load_checkpoint, make_scheduler, save_checkpoint
from polydiff.diffusion.config import load_config
from polydiff.diffusion.networks import Denoiser, count_parameters
from polydiff.runtime import UserError


def test_checkpoint_round_trip_unet2d_periodic(tmp_path):
    block = {"type": "unet2d", "sample_size": 16, "in_channels": 3, "out_channels": 1,
             "block_out_channels": [8, 16], "down_block_types": ["DownBlock2D", "DownBlock2D"],
             "up_block_types": ["UpBlock2D", "UpBlock2D"], "norm_num_groups": 4,
             "layers_per_block": 1, "periodic": True}
    net = build_network(block).eval()
    save_checkpoint(tmp_path, net, make_scheduler("ddim"), {"grid": [16, 16]})
    ck = load_checkpoint(tmp_path)
    x, cond = torch.randn(2, 1, 16, 16), torch.randn(2, 2, 16, 16)
    torch.testing.assert_close(Denoiser(net, cond)(x, torch.tensor(3)),
                               Denoiser(ck.net, cond)(x, torch.tensor(3)))
    # periodic: shifting the input circularly shifts the output (no down-sampling aliasing
    # at a shift of a whole coarse cell)
    y = Denoiser(ck.net, cond)(x, torch.tensor(3))
    ys = Denoiser(ck.net, cond.roll(2, -1))(x.roll(2, -1), torch.tensor(3))
    torch.testing.assert_close(ys, y.roll(2, -1), rtol=1e-4, atol=1e-4)
    assert ck.config["grid"] == [16, 16]


def test_unet3d_and_sizes():
    small = build_network({"type": "unet3d", "in_channels": 2, "out_channels": 2,
                           "block_out_channels": [8, 16]})
    out = Denoiser(small)(torch.randn(2, 2, 4, 8, 8), torch.tensor(7.5))
    assert out.shape == (2, 2, 4, 8, 8)
    big = build_network({"type": "unet3d", "block_out_channels": [64, 128, 256]})
    assert count_parameters(big) > 50 * count_parameters(small)


def test_unet1d_and_cross_attention_unet(tmp_path):
    net1 = build_network({"type": "unet1d", "sample_size": 64, "in_channels": 2,
                          "out_channels": 2, "block_out_channels": [32, 32, 64],
                          "extra_in_channels": 64})
    assert Denoiser(net1)(torch.randn(2, 2, 64), torch.tensor(5)).shape == (2, 2, 64)
    net2 = build_network({"type": "unet2d_condition", "sample_size": 16, "in_channels": 4,
                          "out_channels": 4, "block_out_channels": [16, 32],
                          "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                          "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
                          "cross_attention_dim": 24, "norm_num_groups": 8,
                          "layers_per_block": 1, "attention_head_dim": 4}).eval()
    x = torch.randn(2, 4, 16, 16)
    text_a, text_b = torch.randn(2, 5, 24), torch.randn(2, 5, 24)
    out_a = Denoiser(net2, encoder_hidden_states=text_a)(x, torch.tensor(5))
    out_b = Denoiser(net2, encoder_hidden_states=text_b)(x, torch.tensor(5))
    assert out_a.shape == x.shape and not torch.allclose(out_a, out_b)
    save_checkpoint(tmp_path, net2, make_scheduler("ddim"), {})
    again = load_checkpoint(tmp_path).net
    torch.testing.assert_close(Denoiser(again, encoder_hidden_states=text_a)(x, torch.tensor(5)),
                               out_a)


def test_pickle_in_checkpoint_is_refused(tmp_path):
    net = build_network({"type": "mlp", "dim": 2})
    save_checkpoint(tmp_path, net, make_scheduler("ddpm"), {})
    (tmp_path / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not for unpickling")
    with pytest.raises(UserError, match="pickle"):
        load_checkpoint(tmp_path)


def test_missing_checkpoint_folder(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "nope")


def test_unknown_network_type():
    with pytest.raises(ValueError, match="unknown network type"):
        build_network({"type": "transformer9000"})


@dataclass
class Inner:
    width: int = 8


@dataclass
class Outer:
    lr: float = 1e-3
    inner: Inner = field(default_factory=Inner)


def test_config_loads_nested_and_refuses_unknown(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1\ninner:\n  width: 32\n")
    cfg = load_config(path, Outer)
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.inner.width == 32
    path.write_text("lr: 1\ninner:\n  widht: 32\n")
    with pytest.raises(UserError, match="widht"):
        load_config(path, Outer)
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "missing.yaml", Outer)
