"""PDE-Refiner on the backbone: the noise ladder, the loss, refinement with an exact
denoiser, training, rollouts, determinism, periodicity and the checkpoint contract."""

import json
import math

import pytest
import torch
from torch import nn

from polydiff.apps.contract import seeded
from polydiff.apps.pde.config import KSData, RefinerConfig, Scales
from polydiff.apps.pde.dataset import BurgersData
from polydiff.apps.pde.model import RefinerModel, load_refiner
from polydiff.apps.pde.refiner import (
    RefinerDenoiser,
    make_refiner_scheduler,
    noise_levels,
    predict,
    refiner_betas,
    refiner_loss,
    rollout,
    step,
    time_multiplier,
)
from polydiff.apps.pde.refiner_data import make_trajectories, pairs, training_set
from polydiff.apps.pde.train import run_refiner_training as train_refiner
from polydiff.diffusion.networks import build_network
from polydiff.diffusion.training import TrainConfig
from polydiff.runtime import UserError

TINY_KS = KSData(n=6, nx=32, length=22.0, nt=24, substeps=4, burn_in=20.0)


def tiny_config(out_dir, steps: int = 1, k: int = 3) -> RefinerConfig:
    return RefinerConfig(equation="ks", ks=TINY_KS, refinement_steps=k,
                         network={"block_out_channels": [16, 16, 32]},
                         train=TrainConfig(steps=steps, batch_size=16, lr=3e-3, warmup_steps=10,
                                           ema_decay=0.0, out_dir=str(out_dir), device="cpu",
                                           log_every=10, resume=False))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny KS refiner trained for 80 steps, its folder and its training pairs."""
    out = tmp_path_factory.mktemp("refiner")
    config = tiny_config(out, steps=80)
    traj = make_trajectories(config)
    train_refiner(config, data=traj, progress=False)
    return load_refiner(out), training_set(config, traj), out


def test_noise_ladder_is_exponential_down_to_sigma_min():
    k, sigma_min = 3, 4e-7
    betas = refiner_betas(k, sigma_min)
    assert betas[-1] == 1.0 and betas[0] == pytest.approx(sigma_min)
    for j in range(k):  # log β falls linearly in the refinement index
        assert math.log(betas[j]) == pytest.approx(math.log(sigma_min) * (k - j) / k)
    levels = noise_levels(make_refiner_scheduler(k, sigma_min))
    assert levels[-1] == 1.0  # k = K: nothing of the signal is left (the one-step prediction)
    # 1 − ᾱ_j = 1 − Π(1 − β_i) ≈ β_j: each level is √β_j to float32 accuracy
    for j in range(k):
        assert float(levels[j]) == pytest.approx(math.sqrt(betas[j]), rel=0.1)
    assert torch.all(levels[1:] > 5 * levels[:-1])
    mse = make_refiner_scheduler(0, sigma_min)  # K = 0: one step, ᾱ = 0
    assert mse.alphas_cumprod.tolist() == [0.0]


def test_loss_at_the_first_step_is_the_mse_of_the_prediction():
    """At k = K the input is zeros whatever the noise, and the v target is −y."""
    sched = make_refiner_scheduler(3, 4e-7)
    y = torch.randn(4, 1, 16)
    guess = torch.randn(4, 1, 16)
    seen = []

    def model(y_k, k):
        seen.append(y_k)
        return -guess

    k = torch.full((4,), 3)
    a = refiner_loss(model, sched, y, torch.randn(4, 1, 16), k)
    b = refiner_loss(model, sched, y, torch.randn(4, 1, 16), k)
    assert torch.all(seen[0] == 0) and float(a) == pytest.approx(float(b))
    assert float(a) == pytest.approx(float(((guess - y) ** 2).mean()), rel=1e-6)
    # at k = 0 the input is the nearly clean target: the loss is that of an ε-predictor
    small = refiner_loss(lambda y_k, kk: (y_k - y) / noise_levels(sched)[0].float(), sched, y,
                         torch.randn(4, 1, 16), torch.zeros(4, dtype=torch.long))
    assert float(small) < 1e-6


class OracleNet(nn.Module):
    """The exact v-predictor for the target y* = 0.5 · (first condition channel): reads k
    back from the scaled timestep and ᾱ_k from the scheduler."""

    def __init__(self, scheduler, steps: int):
        super().__init__()
        self.ab, self.mult = scheduler.alphas_cumprod, time_multiplier(steps)
        self.anchor = nn.Parameter(torch.zeros(()))  # a device for RefinerModel

    def forward(self, inp, t):
        y_k, target = inp[:, :1], 0.5 * inp[:, 1:2]
        ab = self.ab[(t / self.mult).round().long()].reshape(-1, 1, 1)
        return torch.where(ab > 0, (ab.sqrt() * y_k - target) / (1 - ab).clamp_min(1e-30).sqrt(),
                           -target)


@pytest.mark.parametrize("k", [0, 1, 3])
def test_refinement_with_an_exact_denoiser_returns_its_target(k):
    """Through the backbone's sampler, every refinement step keeps the exact answer: the
    step is u + s_out · y* with y* = 0.5 u / s_u, whatever the noise drawn."""
    config = tiny_config("unused", k=k)
    config.scales = Scales(u=1.3, f=1.0, out=0.2)
    sched = make_refiner_scheduler(k, config.min_noise_std)
    model = RefinerModel(OracleNet(sched, k), sched, config, None)
    u = torch.randn(3, 32)
    out = step(model, u, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, u + 0.2 * 0.5 * u / 1.3, rtol=1e-4, atol=1e-5)


def test_a_tiny_refiner_trains(trained):
    """The one-step (k = K) loss on the training pairs falls well below the untrained
    network's (about 1: the targets are normalised)."""
    model, data, _ = trained
    k = torch.full((len(data["x"]),), 3)
    noise = torch.zeros_like(data["x"])  # unused at k = K

    def loss(net):
        with torch.no_grad():
            return float(refiner_loss(RefinerDenoiser(net, data["cond"], 3), model.scheduler,
                                      data["x"], noise, k))

    fresh = seeded(0, lambda: build_network(model.config.network_block()))
    assert loss(model.net) < 0.5 * loss(fresh), (loss(model.net), loss(fresh))


def test_rollout_shapes_determinism_and_periodicity(trained):
    model = trained[0]
    test = make_trajectories(model.config, n=3, nt=12, seed=7)
    pred, truth = predict(model, test, seed=1)
    steps = 12 // model.config.stride
    assert pred.shape == truth.shape == (3, steps + 1, 32)
    assert torch.equal(pred[:, 0], test.u[:, 0]) and torch.isfinite(pred).all()
    again, _ = predict(model, test, seed=1)
    other, _ = predict(model, test, seed=2)
    assert torch.equal(pred, again) and not torch.equal(pred, other)
    # the periodic network: a circularly shifted state gives the shifted step (noise off)
    zero = torch.Generator().manual_seed(0)
    a = rollout(model, test.u[:, 0], 1, generator=zero)[:, 1]
    b = rollout(model, torch.roll(test.u[:, 0], 8, -1), 1,
                generator=torch.Generator().manual_seed(0))[:, 1]
    assert (torch.roll(a, 8, -1) - b).abs().max() < 0.05 * a.abs().max()


def test_mse_model_is_deterministic(tmp_path):
    train_refiner(tiny_config(tmp_path, steps=2, k=0), progress=False)
    model = load_refiner(tmp_path)
    u = make_trajectories(model.config, n=2, nt=4, seed=3).u[:, 0]
    a = rollout(model, u, 2, generator=torch.Generator().manual_seed(0))
    b = rollout(model, u, 2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_checkpoint_follows_the_contract(trained):
    model, _, folder = trained
    meta = json.loads((folder / "polydiff.json").read_text())
    assert (meta["format"], meta["app"], meta["kind"]) == (1, "pde", "refiner")
    assert meta["config"]["scales"]["out"] == pytest.approx(model.config.scales.out)
    assert model.config.refinement_steps == 3 and model.config.ks == TINY_KS
    from polydiff.apps.pde.model import load_model
    with pytest.raises(UserError):
        load_model(folder, "cpu")  # a refiner is not a WDNO model


def test_burgers_pairs_carry_the_forcing_and_the_wall():
    config = RefinerConfig(equation="burgers", stride=1,
                           burgers=BurgersData(n=3, nx=15, nt=8, refine=1))
    traj = make_trajectories(config)
    assert traj.forcing is not None and traj.u.shape == (3, 9, 15)
    data = training_set(config, traj)
    assert data["x"].shape == (24, 1, 16) and data["cond"].shape == (24, 3, 16)
    assert torch.all(data["x"][:, :, 0] == 0) and torch.all(data["cond"][:, :, 0] == 0)
    u_now, u_next, f_now, _ = pairs(config, traj)
    torch.testing.assert_close(data["cond"][:, 1, 1:], f_now)
    torch.testing.assert_close(data["x"][:, 0, 1:], u_next - u_now)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError):
        RefinerConfig(equation="navier-stokes")
    with pytest.raises(ValueError):
        RefinerConfig(refinement_steps=-1)
    with pytest.raises(ValueError):
        RefinerConfig(ks=KSData(nx=36), network={"block_out_channels": [8, 8, 8, 8]}
                      ).network_block()


def test_ks_data_on_a_finer_solver_grid_is_subsampled():
    coarse = RefinerConfig(ks=KSData(n=2, nx=32, refine=2, length=22.0, nt=3, burn_in=5.0))
    fine = RefinerConfig(ks=KSData(n=2, nx=64, length=22.0, nt=3, burn_in=5.0))
    a, b = make_trajectories(coarse), make_trajectories(fine)
    assert a.u.shape == (2, 4, 32)
    torch.testing.assert_close(a.u, b.u[..., ::2])
    torch.testing.assert_close(a.x, b.x[::2])
    with pytest.raises(ValueError):
        KSData(refine=0).grid()


def test_conserve_mean_keeps_the_mean_exactly():
    """With the oracle's target y* = 0.5 u / s_u the mean changes each step; conserve_mean
    brings it back to the previous state's mean (and refuses Burgers)."""
    config = tiny_config("unused", k=1)
    config.scales = Scales(u=1.3, f=1.0, out=0.2)
    config.conserve_mean = True
    sched = make_refiner_scheduler(1, config.min_noise_std)
    model = RefinerModel(OracleNet(sched, 1), sched, config, None)
    u = torch.randn(3, 32) + 0.7
    out = rollout(model, u, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.mean(-1), u.mean(-1, keepdim=True).expand(3, 4))
    free = rollout(RefinerModel(model.net, sched, tiny_config("unused", k=1), None), u, 1)
    assert (free[:, 1].mean(-1) - u.mean(-1)).abs().min() > 1e-3
    with pytest.raises(ValueError):
        RefinerConfig(equation="burgers", conserve_mean=True)


def test_bundled_ks_refiner_follows_the_solver():
    """The bundled checkpoint on held-out KS states: 8 model steps (6.4 time units) stay
    within a few percent of the ETDRK4 solver."""
    from polydiff.apps.pde.model import bundled_refiner

    if not (bundled_refiner("ks") / "polydiff.json").is_file():
        pytest.skip("no bundled KS refiner")
    model = load_refiner(None, "cpu", equation="ks")
    assert model.config.refinement_steps == 3 and model.config.conserve_mean
    test = make_trajectories(model.config, n=4, nt=32, seed=99)
    pred, truth = predict(model, test)
    rel = (pred - truth).norm(dim=-1) / truth.norm(dim=-1)
    assert pred.shape == (4, 9, 64) and rel[:, 1].max() < 0.015 and rel[:, -1].mean() < 0.05, rel


def test_first_step_share_weights_the_levels():
    assert RefinerConfig(refinement_steps=3).timestep_weights() is None  # the paper: uniform
    w = RefinerConfig(refinement_steps=3, first_step_share=0.5).timestep_weights()
    assert w == pytest.approx([1 / 6, 1 / 6, 1 / 6, 0.5])
    for bad in ({"refinement_steps": 0, "first_step_share": 0.5},
                {"refinement_steps": 3, "first_step_share": 1.0}):
        with pytest.raises(ValueError, match="first_step_share"):
            RefinerConfig(**bad)
