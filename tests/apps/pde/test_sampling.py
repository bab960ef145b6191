"""WDNO sampling: the conditions are held exactly, levels chain, seeds repeat."""

from __future__ import annotations

import torch

from polydiff.apps.pde.dataset import coarsen
from polydiff.apps.pde.representation import Fields
from polydiff.apps.pde.sampling import simulate_fields
from polydiff.diffusion.networks import Denoiser
from polydiff.diffusion.sampling import sample


def test_replacement_holds_initial_state_and_forcing_exactly(small_fields: Fields,
                                                             tiny_model) -> None:
    base = coarsen(small_fields)
    model = tiny_model(fields=base)  # untrained: only the replacement can hold the conditions
    out = simulate_fields(model, base.u0[:3], base.f[:3], steps=4,
                          generator=torch.Generator().manual_seed(0))
    assert torch.max(torch.abs(out.u0 - base.u0[:3])) < 1e-5
    assert torch.max(torch.abs(out.f - base.f[:3])) < 1e-5
    assert out.u.shape == (3, 32, 32) and torch.isfinite(out.u).all()


def test_without_the_hook_the_untrained_model_misses_them(small_fields: Fields,
                                                         tiny_model) -> None:
    """Negative control: the same loop without ReplaceKnown does not reproduce u0."""
    base = coarsen(small_fields)
    model = tiny_model(fields=base)
    shape = (3, *model.config.layout.sample_shape(32, 32))
    x = sample(Denoiser(model.net), model.scheduler, shape, steps=4,
               generator=torch.Generator().manual_seed(0)).sample
    out = model.config.layout.decode(x)
    assert torch.max(torch.abs(out.u0 - base.u0[:3])) > 0.1


def test_superres_levels_chain_to_the_fine_grid(small_fields: Fields, tiny_model) -> None:
    base_model = tiny_model(fields=coarsen(small_fields))
    sr = tiny_model("superres", fields=small_fields, seed=1)
    out = simulate_fields(base_model, small_fields.u0[:2], small_fields.f[:2], level=1,
                          superres=sr, steps=3, generator=torch.Generator().manual_seed(0))
    assert out.u.shape == (2, 64, 64)
    assert torch.max(torch.abs(out.u0 - small_fields.u0[:2])) < 1e-5
    assert torch.max(torch.abs(out.f - small_fields.f[:2])) < 1e-5


def test_same_seed_same_sample_other_seed_other_sample(small_fields: Fields, tiny_model) -> None:
    base = coarsen(small_fields)
    model = tiny_model(fields=base)

    def run(seed: int) -> torch.Tensor:
        return simulate_fields(model, base.u0[:2], None, steps=3,
                               generator=torch.Generator().manual_seed(seed)).u

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_an_exact_denoiser_gives_back_the_true_trajectory(small_fields: Fields) -> None:
    """Plumbing check: a model whose clean estimate is always the truth must return it
    (through normalisation, the wavelet transform, replacement and the DDIM steps)."""
    from polydiff.apps.pde.config import PDEConfig
    from polydiff.apps.pde.model import PDEModel
    from polydiff.apps.pde.train import make_scheduler_for

    base = coarsen(small_fields)
    config = PDEConfig()
    config.layout.fit_scale(base)
    scheduler = make_scheduler_for(config)
    x0 = config.layout.encode(base)[:3]

    class Oracle(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device

        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            ab = scheduler.alphas_cumprod[t.long()].view(-1, 1, 1, 1)
            return (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # the epsilon of the true x0

    model = PDEModel(Oracle(), scheduler, config, folder=None)
    out = simulate_fields(model, base.u0[:3], base.f[:3], steps=20,
                          generator=torch.Generator().manual_seed(0))
    assert torch.max(torch.abs(out.u - base.u[:3])) < 1e-4
