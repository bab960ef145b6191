"""Gaussian mixtures with closed-form denoisers and posteriors: exact reference models.

For data x₀ ~ Σ_k π_k N(μ_k, diag(s_k²)) and x_t = √ᾱ x₀ + √(1−ᾱ) ε the posterior mean
E[x₀ | x_t] is known in closed form, so a sampler driven by it can be checked against fresh
mixture samples; for y = A x₀ + n, n ~ N(0, σ²I), the posterior is again a Gaussian mixture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from polydiff.diffusion.predictions import from_x0
from polydiff.diffusion.schedulers import alpha_bar_of_timestep


@dataclass
class GaussianMixture:
    """weights (K,), means (K, D), variances (K, D) (diagonal covariances)."""

    weights: Tensor
    means: Tensor
    variances: Tensor

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples (n, D)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=self.means.dtype)
        return self.means[k] + self.variances[k].sqrt() * z

    def denoise(self, x_t: Tensor, alpha_bar: Tensor | float) -> Tensor:
        """E[x₀ | x_t] for x_t (B, D) at noise level ᾱ."""
        ab = torch.as_tensor(alpha_bar, dtype=x_t.dtype)
        var_t = ab * self.variances + (1 - ab)                       # (K, D)
        diff = x_t[:, None, :] - ab.sqrt() * self.means[None]         # (B, K, D)
        log_w = (self.weights.log()[None] - 0.5 * (diff**2 / var_t + var_t.log()).sum(-1))
        resp = torch.softmax(log_w, dim=1)                            # (B, K)
        cond = self.means[None] + ab.sqrt() * self.variances / var_t * diff  # (B, K, D)
        return (resp[..., None] * cond).sum(1)

    def model(self, scheduler):
        """An exact model callable (x_t, t) -> output of ``scheduler``'s prediction type."""
        kind = scheduler.config.prediction_type

        def predict(x_t: Tensor, t: Tensor) -> Tensor:
            ab = alpha_bar_of_timestep(scheduler, t).to(x_t)
            return from_x0(self.denoise(x_t, ab), x_t, ab, kind)

        return predict

    def posterior(self, A: Tensor, y: Tensor, sigma: float) -> GaussianMixtureFull:
        """The posterior mixture of x₀ given y = A x₀ + n, n ~ N(0, σ²I); A (M, D), y (M,)."""
        cov_inv_lik = A.T @ A / sigma**2
        weights, means, covs = [], [], []
        for pi, mu, var in zip(self.weights, self.means, self.variances, strict=True):
            prior_cov = torch.diag(var)
            post_cov = torch.linalg.inv(torch.diag(1 / var) + cov_inv_lik)
            means.append(post_cov @ (mu / var + A.T @ y / sigma**2))
            covs.append(post_cov)
            marg_cov = A @ prior_cov @ A.T + sigma**2 * torch.eye(A.shape[0], dtype=A.dtype)
            r = y - A @ mu
            log_n = -0.5 * (r @ torch.linalg.solve(marg_cov, r) + torch.logdet(marg_cov)
                            + len(y) * math.log(2 * math.pi))
            weights.append(pi.log() + log_n)
        w = torch.softmax(torch.stack(weights), 0)
        return GaussianMixtureFull(w, torch.stack(means), torch.stack(covs))


@dataclass
class GaussianMixtureFull:
    """weights (K,), means (K, D), covariances (K, D, D)."""

    weights: Tensor
    means: Tensor
    covariances: Tensor

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=self.means.dtype)
        chol = torch.linalg.cholesky(self.covariances)
        return self.means[k] + (chol[k] @ z[..., None])[..., 0]

    def mean(self) -> Tensor:
        return (self.weights[:, None] * self.means).sum(0)


def sliced_wasserstein(a: Tensor, b: Tensor, n_projections: int = 256,
                       generator: torch.Generator | None = None) -> float:
    """Sliced 2-Wasserstein distance between equal-size point sets a, b (N, D)."""
    dirs = torch.randn(a.shape[1], n_projections, generator=generator, dtype=a.dtype)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa, _ = torch.sort(a @ dirs, dim=0)
    pb, _ = torch.sort(b @ dirs, dim=0)
    return float(((pa - pb) ** 2).mean().sqrt())
