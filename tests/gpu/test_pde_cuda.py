"""pde on CUDA: the demo, reverse loops that never wait for the host, seeds, the solver against
the CPU, and one training step of the tiny and the paper config (micro-batches, bf16)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from polydiff.apps.pde import control as control_module
from polydiff.apps.pde import sampling
from polydiff.apps.pde.cli import demo
from polydiff.apps.pde.config import PDEConfig
from polydiff.apps.pde.model import load_model
from polydiff.apps.pde.train import run_training
from polydiff.diffusion.config import load_config
from polydiff.diffusion.sampling import SamplerHook
from polydiff.physics.pde_data import read_trajectories
from tests.apps.pde.pde_testing import cli

ROOT = Path(__file__).resolve().parents[2]


class NoSync(SamplerHook):
    """A sampler hook: from the end of the first step to the end of the loop every CUDA
    synchronisation (``.item()``, ``bool()``, blocking copies) raises."""

    def before_model(self, state, x):
        return x

    def on_x0(self, state, x0):
        return x0

    def after_step(self, state, x_prev):
        torch.cuda.set_sync_debug_mode("error")
        return x_prev

    def finalize(self, x):
        torch.cuda.set_sync_debug_mode("default")
        return x


@pytest.fixture
def no_sync(monkeypatch):
    """Run every ``sample_level`` of the pde app with :class:`NoSync` among its hooks."""
    real = sampling.sample_level

    def with_hook(*args, hooks=(), **kwargs):
        return real(*args, hooks=[*hooks, NoSync()], **kwargs)

    monkeypatch.setattr(sampling, "sample_level", with_hook)
    monkeypatch.setattr(control_module, "sample_level", with_hook)
    yield
    torch.cuda.set_sync_debug_mode("default")


def test_demo_runs_on_cuda(tmp_path, cuda):
    result = demo(tmp_path, device=cuda, seed=0)
    assert "nRMSE" in result.summary and (tmp_path / "burgers.nc").is_file()
    assert result.metrics["simulate nRMSE"] < result.baseline["simulate nRMSE"]


def test_simulate_superres_and_control_never_wait_for_the_host(cuda, no_sync):
    model = load_model(None, cuda)
    superres = load_model(None, cuda, kind="superres")
    u0 = torch.zeros(4, 64, device=cuda)
    u0[:, 20:40] = 1.0
    fields = sampling.simulate_fields(model, u0, None, level=1, superres=superres, steps=5,
                                      generator=torch.Generator(cuda).manual_seed(0))
    assert torch.isfinite(fields.u).all()
    x = np.arange(1, 32) / 32
    u0_np = np.exp(-((x - 0.3) / 0.1) ** 2).astype(np.float32)
    result = control_module.control(model, u0_np, 0.5 * u0_np, members=4, steps=5)
    assert np.isfinite(result.f).all()


def test_same_seed_same_file_on_cuda(tmp_path):
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    for out in (a, b):
        assert cli("simulate", "--nx", 63, "--members", 4, "--steps", 10, "--seed", 5,
                   "--device", "cuda", "-o", out) == 0
    assert a.read_bytes() == b.read_bytes()


def test_the_solver_on_cuda_matches_the_cpu(tmp_path):
    args = ["generate", "--equation", "burgers", "--n", 8, "--nx", 63, "--nt", 17,
            "--t-final", 2, "--seed", 3]
    assert cli(*args, "--device", "cpu", "-o", tmp_path / "cpu.h5") == 0
    assert cli(*args, "--device", "cuda", "-o", tmp_path / "gpu.h5") == 0
    cpu, gpu = read_trajectories(tmp_path / "cpu.h5"), read_trajectories(tmp_path / "gpu.h5")
    torch.testing.assert_close(gpu.u, cpu.u, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["burgers_tiny", "burgers_wdno_paper"])
def test_one_training_step_on_cuda_in_micro_batches(tmp_path, name):
    config = load_config(ROOT / f"configs/pde/{name}.yaml", PDEConfig)
    config.data.n = 8  # the data block's grid as configured, few trajectories
    config.train.steps, config.train.batch_size, config.train.micro_batch = 1, 8, 4
    config.train.device, config.train.out_dir = "cuda", str(tmp_path / name)
    config.train.mixed_precision = "bf16"
    result = run_training(config, progress=False)
    assert result.step == 1 and all(np.isfinite(result.losses))
    meta = json.loads((tmp_path / name / "polydiff.json").read_text())
    assert (meta["format"], meta["kind"], meta["train"]["micro_batch"]) == (1, "wdno", 4)
    assert yaml.safe_load((ROOT / f"configs/pde/{name}.yaml").read_text())["kind"] == "wdno"
