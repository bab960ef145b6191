"""mono on CUDA (skipped without it): the sampling loops never wait for the host, CUDA
agrees with the CPU, and one paper-config training step runs in micro-batches."""

from pathlib import Path

import numpy as np
import pytest
import torch

from polydiff.apps.mono import predict
from polydiff.apps.mono.config import EstimateOptions
from polydiff.apps.mono.model import load_predictor
from polydiff.diffusion.sampling import SamplerHook, sample

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


class _NoHostSync(SamplerHook):
    """Turns any synchronising CUDA call into an error from the first model call of the
    loop to its end (set-up before the loop may read the schedule on the host)."""

    def before_model(self, state, x):
        torch.cuda.set_sync_debug_mode("error")
        return x

    def finalize(self, x):
        torch.cuda.set_sync_debug_mode("default")
        return x


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(60, 80, 3)).astype(np.float32)


@pytest.mark.parametrize("mode", ["ensemble", "refine"])
def test_sampling_loops_never_wait_for_the_host(monkeypatch, mode):
    monkeypatch.setattr(predict, "sample",
                        lambda *a, **k: sample(*a, hooks=[_NoHostSync()], **k))
    predictor = load_predictor(None, torch.device("cuda"))
    cond = predictor.condition(_image())
    options = EstimateOptions(mode=mode, steps=6, members=3, refine_steps=3)
    try:
        x0 = predictor.estimate(cond, "depth", options, torch.Generator().manual_seed(0))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert x0.is_cuda and x0.shape == (3, 3, 48, 48)


@pytest.mark.parametrize("mode", ["one-step", "ensemble", "refine"])
def test_cuda_agrees_with_the_cpu(mode):
    options = EstimateOptions(mode=mode, steps=6, members=2, refine_steps=3)
    out = {}
    for device in ("cpu", "cuda"):
        predictor = load_predictor(None, torch.device(device))
        out[device] = predictor(_image(1), options, torch.Generator().manual_seed(3))
    for what in ("depth", "normals"):
        np.testing.assert_allclose(getattr(out["cuda"], what), getattr(out["cpu"], what),
                                   atol=1e-2)


def test_one_paper_training_step_in_micro_batches(tmp_path):
    from polydiff.apps.mono.train import load_train_config, run_training

    root = Path(__file__).resolve().parents[3]
    cfg = load_train_config(root / "configs" / "mono" / "paper.yaml")
    assert cfg.train.micro_batch and cfg.train.batch_size % cfg.train.micro_batch == 0
    cfg.data.scenes = 4  # rendering 2000 scenes takes minutes; the step is what is tested
    cfg.train.steps, cfg.train.device, cfg.train.out_dir = 1, "cuda", str(tmp_path / "ckpt")
    result = run_training(cfg)
    assert result.step == 1 and np.isfinite(result.losses[-1])
    assert (tmp_path / "ckpt" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
