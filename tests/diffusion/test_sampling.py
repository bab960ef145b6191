"""The sampling loop against exact answers: a Gaussian mixture has a closed-form denoiser."""

import pytest
import torch

from polydiff.diffusion import ReplaceKnown, SamplerHook, StepCallback, make_scheduler, sample
from polydiff.diffusion.mixture import GaussianMixture, sliced_wasserstein
from polydiff.diffusion.sampling import noise_to_step

MIXTURE = GaussianMixture(
    weights=torch.tensor([0.3, 0.5, 0.2]),
    means=torch.tensor([[-1.5, 0.5], [1.0, 1.0], [0.5, -1.5]]),
    variances=torch.tensor([[0.05, 0.1], [0.1, 0.05], [0.08, 0.08]]),
)
N = 10000


def _distance(samples: torch.Tensor) -> float:
    ref = MIXTURE.sample(N, torch.Generator().manual_seed(100))
    return sliced_wasserstein(samples, ref, generator=torch.Generator().manual_seed(5))


def _noise_floor() -> float:
    """The distance between independent sets of N true samples (mean over 4 draws)."""
    return sum(_distance(MIXTURE.sample(N, torch.Generator().manual_seed(101 + k)))
               for k in range(4)) / 4


@pytest.mark.parametrize("kind", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("name,steps", [("ddim", 100), ("dpmsolver++", 15), ("unipc", 15),
                                        ("euler", 40), ("ddpm", 100)])
def test_exact_model_samples_match_mixture(name, steps, kind):
    if name == "euler" and kind == "sample":
        pytest.skip("diffusers' Euler scheduler has no x0-prediction")
    scheduler = make_scheduler(name, prediction_type=kind)
    out = sample(MIXTURE.model(scheduler), scheduler, (N, 2), steps=steps,
                 generator=torch.Generator().manual_seed(2)).sample
    floor = _noise_floor()
    assert _distance(out) < 2 * floor, (name, kind, _distance(out), floor)


def test_wrong_model_is_detected():
    """The check can fail: an ε-model read as v-prediction gives the wrong distribution."""
    eps_sched = make_scheduler("ddim", prediction_type="epsilon")
    v_sched = make_scheduler("ddim", prediction_type="v_prediction")
    out = sample(MIXTURE.model(eps_sched), v_sched, (N, 2), steps=50,
                 generator=torch.Generator().manual_seed(2)).sample
    assert _distance(out) > 3 * _noise_floor()


def test_same_seed_same_sample_and_hooks_called_in_order():
    calls = []

    class Recorder(SamplerHook):
        def before_model(self, state, x):
            calls.append(("before", state.index))
            return x

        def after_step(self, state, x_prev):
            calls.append(("after", state.index))
            assert state.x0.shape == x_prev.shape
            return x_prev

    sched = make_scheduler("ddpm")
    a = sample(MIXTURE.model(sched), sched, (16, 2), steps=5,
               generator=torch.Generator().manual_seed(7), hooks=[Recorder()]).sample
    b = sample(MIXTURE.model(sched), sched, (16, 2), steps=5,
               generator=torch.Generator().manual_seed(7)).sample
    assert torch.equal(a, b)
    assert calls[:4] == [("before", 0), ("after", 0), ("before", 1), ("after", 1)]


RHO, C = 0.8, 1.0
COV = torch.tensor([[1.0, RHO], [RHO, 1.0]])


def _gaussian_models(sched):
    """Exact ε-models for N(0, COV): the joint one, and one that sees x₀[0] clean."""
    from polydiff.diffusion.schedulers import alpha_bar_of_timestep

    def joint(x_t, t):
        ab = alpha_bar_of_timestep(sched, t)
        c_t = ab * COV + (1 - ab) * torch.eye(2)
        return (1 - ab).sqrt() * torch.linalg.solve(c_t, x_t.T).T

    def conditional(x_t, t):  # x_t[:, 0] holds the clean x₀[0]
        ab = alpha_bar_of_timestep(sched, t)
        m, v = RHO * x_t[:, 0], 1 - RHO**2          # x₀[1] | x₀[0] ~ N(m, v)
        x1 = x_t[:, 1]
        x0_1 = m + ab.sqrt() * v / (ab * v + 1 - ab) * (x1 - ab.sqrt() * m)
        eps1 = (x1 - ab.sqrt() * x0_1) / (1 - ab).sqrt()
        return torch.stack([torch.zeros_like(eps1), eps1], dim=1)

    return joint, conditional


@pytest.mark.parametrize("name", ["ddim", "dpmsolver++", "euler"])
def test_replace_known_clean_gives_exact_conditional(name):
    """With a model that sees the clean condition, x[1] ~ p(x1 | x0 = c) = N(ρc, 1 − ρ²)."""
    sched = make_scheduler(name)
    _, conditional = _gaussian_models(sched)
    hook = ReplaceKnown(torch.tensor([True, False]), torch.tensor([C, 0.0]), noised=False)
    out = sample(conditional, sched, (4000, 2), steps=40,
                 generator=torch.Generator().manual_seed(3), hooks=[hook]).sample
    assert torch.all(out[:, 0] == C)
    assert abs(out[:, 1].mean() - RHO * C) < 0.04
    assert abs(out[:, 1].std() - (1 - RHO**2) ** 0.5) < 0.04


def test_replace_known_noised_holds_values_and_moves_towards_conditional():
    """RePaint-style replacement holds the values; its known bias is documented, not hidden."""
    sched = make_scheduler("ddpm")
    joint, _ = _gaussian_models(sched)
    hook = ReplaceKnown(torch.tensor([True, False]), torch.tensor([C, 0.0]))
    out = sample(joint, sched, (4000, 2), steps=100, generator=torch.Generator().manual_seed(3),
                 hooks=[hook]).sample
    assert torch.all(out[:, 0] == C)
    assert 0.35 < out[:, 1].mean() < RHO * C  # between the prior mean 0 and the truth 0.8


def test_step_callback_sees_every_step_and_x0_converges():
    sched = make_scheduler("ddim")
    seen = []
    sample(MIXTURE.model(sched), sched, (64, 2), steps=8,
           generator=torch.Generator().manual_seed(0),
           hooks=[StepCallback(lambda state, x: seen.append((state.index, state.x0.clone())))])
    assert [i for i, _ in seen] == list(range(8))
    change = [(b - a).abs().mean().item() for (_, a), (_, b) in zip(seen[:-1], seen[1:])]
    assert change[-1] < change[0]


@pytest.mark.parametrize("name", ["ddim", "dpmsolver++", "euler"])
def test_partial_reverse_from_noised_data_keeps_the_distribution(name):
    """SDEdit: data noised to step k and denoised from there is again data-distributed,
    and close to where it started when k is near the end."""
    sched = make_scheduler(name)
    x0 = MIXTURE.sample(N, torch.Generator().manual_seed(9))
    x_k = noise_to_step(sched, x0, 20, 10, generator=torch.Generator().manual_seed(1))
    out = sample(MIXTURE.model(sched), sched, x0.shape, steps=20, x_T=x_k, start=10,
                 generator=torch.Generator().manual_seed(2)).sample
    assert _distance(out) < 2 * _noise_floor()
    x_late = noise_to_step(sched, x0, 20, 18, generator=torch.Generator().manual_seed(1))
    late = sample(MIXTURE.model(sched), sched, x0.shape, steps=20, x_T=x_late, start=18).sample
    assert (late - x0).abs().mean() < (out - x0).abs().mean()
