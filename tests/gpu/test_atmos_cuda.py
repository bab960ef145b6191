"""atmos on CUDA: the demo, fields simulated on the device, training with the data there."""

import json
from pathlib import Path

import torch
import xarray as xr
import yaml

from polydiff.apps.atmos.cli import demo
from polydiff.apps.atmos.config import AtmosConfig
from polydiff.apps.atmos.data import training_fields
from polydiff.apps.atmos.train import run_training
from polydiff.diffusion import distributed, load_config
from polydiff.physics.atmos_fields import FieldConfig, initial_states, physical_fields
from polydiff.runtime import make_generator

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_on_cuda_and_lands_near_the_truth(tmp_path, cuda):
    result = demo(tmp_path, device=cuda, seed=0)
    assert "RMSE" in result.summary
    pred, truth = xr.open_dataset(tmp_path / "superres.nc"), xr.open_dataset(tmp_path / "truth.nc")
    for v in ("t2m", "u10", "v10", "msl"):
        err = float(((pred[f"{v}_mean"] - truth[v]) ** 2).mean() ** 0.5)
        assert err < 0.5 * float(truth[v].std())


def test_physical_fields_on_cuda_match_the_cpu(cuda):
    cfg = FieldConfig(size=16, resolution=2.0, sim_factor=2)
    w, c = initial_states(3, cfg, make_generator(0))
    cpu = physical_fields(w, c, cfg)
    gpu = physical_fields(w.to(cuda), c.to(cuda), cfg)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-6)


def test_training_fields_are_made_and_kept_on_the_device(cuda):
    cfg = AtmosConfig(fields=FieldConfig(size=16, resolution=2.0, sim_factor=1,
                                         spinup_steps=40, sample_every=20))
    cfg.data.trajectories, cfg.data.snapshots, cfg.data.block = 3, 2, 2
    fields, generator = training_fields(cfg, distributed.setup("cuda"))
    assert fields.device.type == "cuda" and generator.device.type == "cuda"
    assert fields.shape == (6, 4, 16, 16) and torch.isfinite(fields).all()


def test_paper_config_prepares_its_data_and_trains_on_cuda(tmp_path):
    raw = yaml.safe_load((ROOT / "configs" / "atmos" / "paper_gpu.yaml").read_text())
    raw["data"].update(trajectories=2, snapshots=2)  # the real size takes minutes
    raw["fields"].update(spinup_steps=100)
    raw["train"].update(steps=1, micro_batch=16, out_dir=str(tmp_path / "paper"))
    cfg = load_config(raw, AtmosConfig)
    result = run_training(cfg, data_cache=tmp_path / "fields.safetensors", progress=False)
    assert result.step == 1 and all(torch.isfinite(torch.tensor(result.losses)))
    meta = json.loads((tmp_path / "paper" / "polydiff.json").read_text())
    assert meta["app"] == "atmos" and meta["config"]["fields"]["size"] == 128
