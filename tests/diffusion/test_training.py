"""Training: overfitting, exact resumption, and torchrun equivalence with a doubled batch."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from polydiff.diffusion import (
    TrainConfig,
    build_network,
    denoising_loss,
    load_checkpoint,
    make_scheduler,
    train,
)


def _net(seed=0):
    torch.manual_seed(seed)  # parameter init only; training randomness is private
    return build_network({"type": "mlp", "dim": 2, "hidden": 32, "layers": 2, "time_dim": 16})


def _data():
    return torch.randn(64, 2, generator=torch.Generator().manual_seed(0))


def test_tiny_model_overfits_one_batch(tmp_path):
    x = torch.tensor([[1.0, -1.0]]).repeat(8, 1)
    sched = make_scheduler("ddpm", prediction_type="sample")
    cfg = TrainConfig(steps=300, batch_size=8, lr=3e-3, ema_decay=0, out_dir=str(tmp_path))
    res = train(_net(), sched, x, cfg, progress=False)
    assert res.losses[-1] < 0.05 * res.losses[0]


def test_resume_matches_uninterrupted_run(tmp_path):
    sched = make_scheduler("ddpm")
    base = dict(batch_size=16, lr=1e-3, ema_decay=0.9, checkpoint_every=5)
    full = train(_net(), sched, _data(),
                 TrainConfig(steps=10, out_dir=str(tmp_path / "a"), **base), progress=False)
    train(_net(), sched, _data(), TrainConfig(steps=5, out_dir=str(tmp_path / "b"), **base),
          progress=False)
    resumed = train(_net(seed=1), sched, _data(),
                    TrainConfig(steps=10, out_dir=str(tmp_path / "b"), **base), progress=False)
    for p, q in zip(full.net.parameters(), resumed.net.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert full.losses == resumed.losses


def test_resume_follows_the_configs_learning_rate(tmp_path, monkeypatch):
    """A resumed run keeps its step, weights and optimizer moments but takes the peak rate
    from the config, so a warm restart at another rate can be asked for (before, the
    saved optimizer's rate silently won)."""
    sched = make_scheduler("ddpm")
    base = dict(batch_size=16, ema_decay=0, checkpoint_every=5, out_dir=str(tmp_path))
    train(_net(), sched, _data(), TrainConfig(steps=5, lr=1e-3, **base), progress=False)
    optimizers = []
    real = torch.optim.AdamW
    monkeypatch.setattr(torch.optim, "AdamW",
                        lambda *a, **k: optimizers.append(real(*a, **k)) or optimizers[-1])
    rates = []

    def loss(net, batch, noise, t):
        rates.append(optimizers[0].param_groups[0]["lr"])
        return denoising_loss(net, sched, batch["x"], noise, t)

    train(_net(), sched, _data(), TrainConfig(steps=8, lr=2e-4, **base), loss_fn=loss,
          progress=False)
    assert rates == pytest.approx([2e-4] * 3)


def test_exported_checkpoint_loads_and_matches(tmp_path):
    sched = make_scheduler("dpmsolver++", prediction_type="v_prediction")
    res = train(_net(), sched, _data(), TrainConfig(steps=3, batch_size=8,
                                                    out_dir=str(tmp_path)), progress=False,
                config={"normalisation": {"mean": 0.5}})
    ck = load_checkpoint(tmp_path)
    assert ck.config["normalisation"] == {"mean": 0.5}
    assert ck.scheduler.config.prediction_type == "v_prediction"
    assert type(ck.scheduler).__name__ == "DPMSolverMultistepScheduler"
    for p, q in zip(res.net.parameters(), ck.net.parameters()):
        torch.testing.assert_close(p, q)


def test_loss_weights_and_known_mask():
    sched = make_scheduler("ddpm", prediction_type="sample")
    x0 = torch.zeros(4, 2, 3)
    noise = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0))
    t = torch.full((4,), 500)

    def model(x_t, t):
        out = torch.zeros_like(x_t)
        out[:, 1] = 10.0  # wrong only on channel 1
        return out

    assert denoising_loss(model, sched, x0, noise, t) == pytest.approx(50.0)
    assert denoising_loss(model, sched, x0, noise, t, weight=torch.tensor([1.0, 0.0])) == 0
    known = torch.zeros(1, 2, 1, dtype=torch.bool)
    known[:, 1] = True
    assert denoising_loss(model, sched, x0, noise, t, known=known) == 0


SCRIPT = textwrap.dedent("""
    import sys, torch
    from polydiff.diffusion import TrainConfig, build_network, make_scheduler, train
    torch.manual_seed(0)
    net = build_network({"type": "mlp", "dim": 2, "hidden": 32, "layers": 2, "time_dim": 16})
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(steps=4, batch_size=16, lr=1e-2, ema_decay=0, out_dir=sys.argv[1],
                      device="cpu")
    train(net, make_scheduler("ddpm"), x, cfg, progress=False)
""")


def test_two_process_torchrun_equals_one_process_with_doubled_batch(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "one")], check=True, env=env,
                   timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node=2", str(script), str(tmp_path / "two")], check=True,
                   env=env, timeout=180, capture_output=True)
    one = load_file(tmp_path / "one" / "train_state" / "model.safetensors")
    two = load_file(tmp_path / "two" / "train_state" / "model.safetensors")
    for key in one:
        torch.testing.assert_close(one[key], two[key], rtol=1e-5, atol=1e-6)
    assert not torch.equal(one["head.weight"], _net().head.weight.detach())


def test_cosine_schedule_and_separate_state_dir(tmp_path):
    from polydiff.diffusion.training import lr_lambda

    cfg = TrainConfig(steps=110, warmup_steps=10, lr_schedule="cosine")
    f = lr_lambda(cfg)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(110) < 1e-6
    state = tmp_path / "state"
    train(_net(), make_scheduler("ddpm"), _data(),
          TrainConfig(steps=2, batch_size=8, out_dir=str(tmp_path / "model"),
                      state_dir=str(state), lr_schedule="cosine"), progress=False)
    assert (state / "state.json").is_file()
    assert not (tmp_path / "model" / "train_state").exists()
    assert (tmp_path / "model" / "polydiff.json").is_file()


def test_micro_batches_make_the_same_update(tmp_path):
    """Gradient accumulation over micro-batches equals one pass over the whole batch."""
    sched = make_scheduler("ddpm")
    base = dict(steps=4, batch_size=16, lr=1e-3, ema_decay=0, grad_clip=0)
    whole = train(_net(), sched, _data(), TrainConfig(out_dir=str(tmp_path / "a"), **base),
                  progress=False)
    parts = train(_net(), sched, _data(),
                  TrainConfig(out_dir=str(tmp_path / "b"), micro_batch=5, **base),
                  progress=False)
    for p, q in zip(whole.net.parameters(), parts.net.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.tensor(whole.losses), torch.tensor(parts.losses))


def test_timestep_weights_choose_the_training_timesteps(tmp_path):
    sched = make_scheduler("ddpm", num_train_timesteps=4)
    seen = []

    def loss_fn(net, batch, noise, t):
        seen.append(t.clone())
        return denoising_loss(lambda x, s: net(x, s), sched, batch["x"], noise, t)

    weights = torch.tensor([0.0, 0.0, 1.0, 3.0])
    cfg = TrainConfig(steps=50, batch_size=16, lr=1e-3, ema_decay=0, out_dir=str(tmp_path))
    train(_net(), sched, _data(), cfg, loss_fn=loss_fn, timestep_weights=weights,
          progress=False)
    t = torch.cat(seen)
    assert set(t.tolist()) == {2, 3}
    assert abs((t == 3).float().mean().item() - 0.75) < 0.05  # 800 draws: sd 0.015
    with pytest.raises(ValueError, match="timestep_weights"):
        train(_net(), sched, _data(), cfg, timestep_weights=torch.tensor([1.0, 1.0]),
              progress=False)


def test_time_budget_shortens_the_schedule_to_fit(tmp_path, monkeypatch):
    """A budget of 20 s at 0.125 s per step (a fake clock advanced by each step) stops
    after 60 + 12.5 s / 0.125 s = 160 steps, records them, and equals a run asked for
    160 steps without a budget, cosine schedule included (warm-up covers the probe)."""
    import json

    from polydiff.diffusion import training

    clock = {"t": 0.0}
    monkeypatch.setattr(training.time, "perf_counter", lambda: clock["t"])
    sched = make_scheduler("ddpm")

    def loss_fn(model, batch, noise, t):
        clock["t"] += 0.125
        return denoising_loss(model, sched, batch["x"], noise, t)

    base = dict(batch_size=16, lr=1e-3, ema_decay=0.9, lr_schedule="cosine", warmup_steps=60)
    timed = train(_net(), sched, _data(), TrainConfig(steps=10_000, time_budget_s=20.0,
                                                      out_dir=str(tmp_path / "a"), **base),
                  loss_fn=loss_fn, progress=False)
    assert timed.step == 160 and len(timed.losses) == 160
    record = json.loads((tmp_path / "a" / "polydiff.json").read_text())
    assert record["train"]["steps"] == 160
    fixed = train(_net(), sched, _data(), TrainConfig(steps=160, out_dir=str(tmp_path / "b"),
                                                      **base),
                  loss_fn=loss_fn, progress=False)
    for p, q in zip(timed.net.parameters(), fixed.net.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_snr_capped_timestep_weights_follow_one_over_one_plus_snr():
    """min(1, cap (1 - ᾱ_t)) = min(1, cap / (1 + SNR_t)), computed here from the betas."""
    from polydiff.diffusion.training import snr_capped_timestep_weights

    sched = make_scheduler("ddim", beta_schedule="squaredcos_cap_v2")
    w = snr_capped_timestep_weights(sched, 5.0)
    ab = torch.cumprod(1 - sched.betas.double(), 0)
    snr = ab / (1 - ab)
    torch.testing.assert_close(w, torch.clamp(5.0 / (1 + snr), max=1.0), rtol=1e-3,
                               atol=1e-5)  # the scheduler keeps ᾱ in float32
    assert w[-1] == 1 and w[0] < 1e-3 and bool((w[1:] >= w[:-1]).all())  # noisy steps: 1
    assert snr[w < 1].min() > 4  # only steps with 1 + SNR above the cap are thinned
    with pytest.raises(ValueError, match="positive"):
        snr_capped_timestep_weights(sched, 0.0)
