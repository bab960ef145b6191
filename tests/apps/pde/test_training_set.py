"""The WDNO training set: condition modes, unforced repeats, loss weights."""

from __future__ import annotations

import pytest
import torch

from polydiff.apps.pde.config import PDEConfig
from polydiff.apps.pde.dataset import BurgersData, coarsen
from polydiff.apps.pde.representation import Fields, Layout
from polydiff.apps.pde.train import build_dataset


def _config(repeat: int) -> PDEConfig:
    return PDEConfig(layout=Layout(family="haar"), data=BurgersData(n=8, finer=1),
                     unforced_repeat=repeat)


def test_unforced_items_repeat_without_changing_the_scales(small_fields: Fields) -> None:
    f = small_fields.f.clone()
    f[:2] = 0.0  # items 0 and 1 unforced (and those the data drew unforced)
    fields = small_fields._replace(f=f)
    idx = (f.flatten(1).abs().amax(1) == 0).nonzero()[:, 0]
    k = len(idx)
    assert 2 <= k < len(f)
    once, thrice = _config(1), _config(3)
    a = build_dataset(once, fields, torch.Generator().manual_seed(0))
    b = build_dataset(thrice, fields, torch.Generator().manual_seed(0))
    assert once.layout.scale == thrice.layout.scale
    n = len(small_fields.u)
    assert len(a["x"]) == 2 * n and len(b["x"]) == 2 * (n + 2 * k)
    x = thrice.layout.encode(coarsen(fields))
    half = b["x"][: n + 2 * k]  # the forcing-given half; the second half repeats it
    assert torch.equal(half[:n], x) and torch.equal(half[n:], torch.cat([x[idx], x[idx]]))
    assert torch.equal(b["x"][n + 2 * k:], half)
    assert b["known"][: n + 2 * k, thrice.layout.group("f")].all()
    assert not b["known"][n + 2 * k:, thrice.layout.group("f")].any()


def test_bad_training_options_are_refused() -> None:
    for bad in ({"unforced_repeat": 0}, {"band_weight_power": -1.0}, {"timestep_snr_cap": 0}):
        with pytest.raises(ValueError):
            PDEConfig(**bad)
    with pytest.raises(ValueError, match="time_pad"):
        PDEConfig(kind="superres", layout=Layout(time_pad=4))


def test_an_snr_cap_reaches_the_training_loop(small_fields: Fields, monkeypatch,
                                             tmp_path) -> None:
    """``timestep_snr_cap`` gives the training loop the capped draw; no cap, uniform."""
    from polydiff.apps.pde import train as pde_train
    from polydiff.diffusion.training import snr_capped_timestep_weights

    got = []
    monkeypatch.setattr(pde_train, "load_or_solve", lambda *a, **k: small_fields)
    monkeypatch.setattr(pde_train, "train", lambda *a, **k: got.append(k["timestep_weights"]))
    for cap in (None, 3.0):
        cfg = _config(1)
        cfg.timestep_snr_cap = cap
        cfg.network = {"block_out_channels": [8, 8], "layers_per_block": 1,
                       "down_block_types": ["DownBlock2D"] * 2,
                       "up_block_types": ["UpBlock2D"] * 2, "norm_num_groups": 4}
        pde_train.run_training(cfg, progress=False)
    assert got[0] is None
    want = snr_capped_timestep_weights(pde_train.make_scheduler_for(cfg), 3.0)
    torch.testing.assert_close(got[1], want)
