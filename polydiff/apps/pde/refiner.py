"""PDE-Refiner (Lippe et al., NeurIPS 2023) on the backbone: an autoregressive one-step
neural solver refined by K denoising steps.

One model step u(t) -> u(t + Δt), as a diffusion model over the refinement index k:

1. condition c = [u(t) / s_u (, f(t) / s_f, f(t + Δt) / s_f)] on the network's grid;
2. k = K, ᾱ_K = 0: the network sees zeros and c and predicts the normalised change
   y = (u(t + Δt) − u(t)) / s_out (v-prediction reads v = −y there: the MSE one-step
   prediction);
3. k = K − 1 .. 0: the estimate is noised to variance 1 − ᾱ_k, exponentially smaller each
   step down to about ``min_noise_std``, and denoised again (v-prediction). This recovers the
   low-amplitude high-frequency parts of the state that an MSE-trained model neglects;
4. u(t + Δt) = u(t) + s_out y (with ``conserve_mean``, KS: shifted to the mean of u(t)).

The noise ladder is a diffusers ``DDPMScheduler`` with trained betas
β = [σ_min^(K/K), σ_min^((K−1)/K), …, σ_min^0 = 1] (index 0 first), exactly as the
reference code builds it, and the refinement is the backbone's :func:`sample` with that
scheduler and K + 1 steps from x_K = 0. Training is the backbone's :func:`train` with
:func:`refiner_loss`: k uniform in 0..K, x_k = √ᾱ_k y + √(1 − ᾱ_k) ε (zeros at k = K, as in
the paper's algorithm), target v = √ᾱ_k ε − √(1 − ᾱ_k) y. K = 0 is the MSE baseline: one
network call on zeros, trained on the MSE of y.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from polydiff.apps.pde.model import RefinerModel
from polydiff.apps.pde.refiner_data import condition, from_network
from polydiff.diffusion.networks import Denoiser
from polydiff.diffusion.predictions import training_target
from polydiff.diffusion.sampling import sample
from polydiff.diffusion.schedulers import make_scheduler
from polydiff.physics.pde_data import Trajectories


def refiner_betas(steps: int, min_noise_std: float) -> list[float]:
    """β_j = σ_min^((K − j)/K) for j = 0..K (β_K = 1: nothing of the signal is left)."""
    if steps == 0:
        return [1.0]
    return [min_noise_std ** (k / steps) for k in reversed(range(steps + 1))]


def make_refiner_scheduler(steps: int, min_noise_std: float):
    """The DDPM scheduler of the refinement ladder (v-prediction, K + 1 timesteps)."""
    return make_scheduler("ddpm", prediction_type="v_prediction", num_train_timesteps=steps + 1,
                          trained_betas=refiner_betas(steps, min_noise_std))


def noise_levels(scheduler) -> Tensor:
    """Noise std √(1 − ᾱ_k) of each refinement index k = 0..K (1 at k = K); (K + 1,)."""
    return (1 - scheduler.alphas_cumprod.double()).clamp_min(0).sqrt()


def time_multiplier(steps: int) -> float:
    """k enters the network's sinusoidal embedding as k · 1000 / K (reference code)."""
    return 1000.0 / max(steps, 1)


class RefinerDenoiser:
    """The model callable (y_k (B, 1, n), k) -> v of the backbone: condition concatenated on
    the channels, k scaled by :func:`time_multiplier`."""

    def __init__(self, net: nn.Module, cond: Tensor, steps: int) -> None:
        self.inner, self.scale = Denoiser(net, cond), time_multiplier(steps)

    def __call__(self, y_k: Tensor, k: Tensor) -> Tensor:
        return self.inner(y_k, torch.as_tensor(k, device=y_k.device).float() * self.scale)


def refiner_loss(model, scheduler, y: Tensor, noise: Tensor, k: Tensor) -> Tensor:
    """MSE of the v-prediction at refinement index k (B,) for targets y (B, 1, n).

    ``model`` is a callable (y_k, k) -> v; at ᾱ_k = 0 (k = K) the input is zeros.
    """
    ab = scheduler.alphas_cumprod.to(y.device)[k].to(y.dtype).reshape(-1, 1, 1)
    y_k = torch.where(ab > 0, ab.sqrt() * y + (1 - ab).sqrt() * noise, torch.zeros_like(y))
    target = training_target(y, noise, ab, "v_prediction")
    return ((model(y_k, k) - target) ** 2).mean()


@torch.no_grad()
def step(model: RefinerModel, u: Tensor, f_now: Tensor | None = None,
         f_next: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """One model step: states u (B, nx) -> (B, nx) one ``config.step_dt`` later.

    ``f_now``, ``f_next`` (B, nx): Burgers' forcing at both ends (None: zero forcing).
    """
    c = model.config
    cond = condition(c, u, f_now, f_next).to(model.device)
    denoiser = RefinerDenoiser(model.net, cond, c.refinement_steps)
    zeros = torch.zeros(cond.shape[0], 1, cond.shape[-1], device=model.device)
    y = sample(denoiser, model.scheduler, zeros.shape, steps=c.refinement_steps + 1,
               generator=generator, x_T=zeros, device=model.device).sample
    change = from_network(c, y[:, 0]).to(u) * c.scales.out
    new = u + change if c.predict_difference else change
    if c.conserve_mean:
        new = new - new.mean(-1, keepdim=True) + u.mean(-1, keepdim=True)
    return new


@torch.no_grad()
def rollout(model: RefinerModel, u0: Tensor, steps: int, forcing: Tensor | None = None, *,
            generator: torch.Generator | None = None, progress: bool = False) -> Tensor:
    """Autoregressive trajectories from u0 (B, nx): (B, steps + 1, nx), entry 0 = u0.

    ``forcing`` (B, steps · stride + 1, nx) on the saved grid (Burgers), or None.
    """
    s = model.config.stride
    if forcing is not None and forcing.shape[1] < steps * s + 1:
        raise ValueError(f"the forcing covers {forcing.shape[1]} saved times, the rollout "
                         f"needs {steps * s + 1}")
    states = [u0.float()]
    for k in tqdm(range(steps), desc="refiner" if model.config.refinement_steps else "mse",
                  disable=not progress, leave=False):
        f_now = None if forcing is None else forcing[:, k * s].float()
        f_next = None if forcing is None else forcing[:, (k + 1) * s].float()
        states.append(step(model, states[-1], f_now, f_next, generator))
    return torch.stack(states, 1)


def predict(model: RefinerModel, data: Trajectories, *, seed: int = 0, batch: int = 64,
            progress: bool = False) -> tuple[Tensor, Tensor]:
    """Rollouts from every test item's initial state (and forcing): (predictions, truth),
    each (N, nt // stride + 1, nx) at the model's steps t_0, t_stride, ..."""
    s = model.config.stride
    steps = (data.u.shape[1] - 1) // s
    generator = torch.Generator(model.device).manual_seed(seed)
    preds = []
    for start in range(0, data.n, batch):
        part = slice(start, start + batch)
        forcing = None if data.forcing is None else data.forcing[part]
        preds.append(rollout(model, data.u[part, 0], steps, forcing, generator=generator,
                             progress=progress).cpu())
    return torch.cat(preds), data.u[:, : steps * s + 1 : s]
