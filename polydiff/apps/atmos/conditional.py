"""Conditional super-resolution: the coarse field and the stations are the network's inputs.

The score prior (zero-shot, :mod:`polydiff.apps.atmos.superres`) reaches the data through
DPS, an approximation of the likelihood's score through x̂₀. A network trained on
(fine field, coarse field, stations) triples samples p(x | data) directly (SR3-style,
amortised over the inputs), at the price of fixed factors and the variables it knows.

The conditions are 3C + 1 channels on the fine grid, in normalised units:

* the coarse anomaly spread over its blocks (``ConservativePool.pinv``, so that pooling it
  gives the data back), zeros without a coarse field;
* 1/K, K the coarse-graining factor (0 without a coarse field);
* per variable, the stations splatted with their bilinear weights: the weighted mean of
  the normalised values around each grid point, and the summed weights (0 where none).

Training draws one task for each copy of each field: a factor alone, a factor with
stations, or stations alone (equally likely), with a uniform station count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from polydiff.apps.atmos.config import ConditioningConfig
from polydiff.apps.atmos.normalise import Normaliser
from polydiff.physics.interpolation import ConservativePool
from polydiff.physics.observations import DEFAULT_SIGMA, bilinear, observation_matrix


def coarse_channels(op: ConservativePool, y: Tensor) -> Tensor:
    """(B, C + 1, H, W): the coarse anomalies y (B, C, h, w) spread over their blocks, and 1/K."""
    spread = op.pinv(y)
    scale = torch.full_like(spread[:, :1], 1.0 / op.factor)
    return torch.cat([spread, scale], dim=1)


def station_channels(weights: Tensor, values: Tensor, shape: tuple[int, ...]) -> Tensor:
    """(B, 2C, H, W) from sparse bilinear ``weights`` (M, B·C·H·W) of M observations with
    normalised ``values`` (M,): per variable the weighted mean value at each grid point
    (0 where no station reads it) and the summed weights."""
    b, c, h, w = shape
    weights_t = weights.t().to(torch.float64)
    total = torch.sparse.mm(weights_t, values.to(torch.float64)[:, None])[:, 0]
    mass = torch.sparse.mm(weights_t, torch.ones(len(values), 1, dtype=torch.float64))[:, 0]
    mean = torch.where(mass > 0, total / mass.clamp_min(1e-12), torch.zeros_like(total))
    return torch.cat([mean.reshape(b, c, h, w), mass.reshape(b, c, h, w)], dim=1).float()


def conditions(shape: tuple[int, ...], coarse: Tensor | None = None,
               stations: Tensor | None = None) -> Tensor:
    """The network's conditions (B, 3C + 1, H, W) for fields of ``shape`` (B, C, H, W), from
    ``coarse_channels`` and ``station_channels`` (zeros for the one not given)."""
    b, c, h, w = shape
    out = torch.zeros(b, 3 * c + 1, h, w)
    if coarse is not None:
        out[:, :c + 1] = coarse.to(out)
    if stations is not None:
        out[:, c + 1:] = stations.to(out)
    return out


def normalised_observations(norm: Normaliser, rows: pd.DataFrame, lat: np.ndarray,
                            lon: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
    """Bilinear weights (M, C·H·W, sparse float64) of the observation ``rows`` on the grid,
    their values as normalised anomalies (M,) and their noise std in the same units (M,)."""
    weights = observation_matrix(rows, norm.variables, lat, lon).to(torch.float64)
    channel = torch.as_tensor([norm.index(v) for v in rows["variable"]])
    std = torch.as_tensor(norm.std, dtype=torch.float64)[channel]
    mean_at = torch.sparse.mm(weights, torch.as_tensor(norm.mean, dtype=torch.float64)
                              .reshape(-1, 1))[:, 0]
    values = torch.tensor(rows["value"].to_numpy(), dtype=torch.float64)
    sigma = torch.tensor(rows["sigma"].to_numpy(), dtype=torch.float64) / std
    return weights, (values - mean_at) / std, sigma


def request_conditions(norm: Normaliser, *, coarse: tuple[ConservativePool, Tensor] | None,
                       observed: tuple[Tensor, Tensor, Tensor] | None) -> Tensor:
    """The conditions (1, 3C + 1, H, W) of one time step: the coarse operator and its
    normalised data (1, C, h, w), and/or that step's observations as
    :func:`normalised_observations` gives them."""
    shape = (1, *norm.shape)
    parts = {}
    if coarse is not None:
        op, y = coarse
        parts["coarse"] = coarse_channels(op, y.to(torch.float64))
    if observed is not None:
        weights, values, _ = observed
        parts["stations"] = station_channels(weights, values, shape)
    return conditions(shape, **parts)


def simulated_stations(x: Tensor, norm: Normaliser, lat: np.ndarray, lon: np.ndarray,
                       counts: np.ndarray, rng: np.random.Generator) -> Tensor:
    """``station_channels`` (B, 2C, H, W) of stations at uniform random points of the grid's
    hull reading every variable of the normalised fields x (B, C, H, W): ``counts[b]``
    stations for field b, with the default noise of each variable (``DEFAULT_SIGMA``)."""
    b, c, h, w = x.shape
    owner = torch.as_tensor(np.repeat(np.arange(b), counts))
    m = len(owner)
    pts = bilinear(rng.uniform(lat[0], lat[-1], m), rng.uniform(lon[0], lon[-1], m), lat, lon)
    index = torch.as_tensor(pts.index)
    weight = torch.as_tensor(pts.weight)
    flat = x.to(torch.float64).reshape(b, c, h * w)
    rows, cols, vals, values = [], [], [], []
    for ch, name in enumerate(norm.variables):
        sigma = DEFAULT_SIGMA.get(name, 0.0) / float(norm.std[ch])
        truth = (flat[owner[:, None], ch, index] * weight).sum(1)
        values.append(truth + sigma * torch.as_tensor(rng.standard_normal(m)))
        rows.append(torch.arange(m).repeat_interleave(4) + ch * m)
        cols.append((owner[:, None] * c * h * w + ch * h * w + index).ravel())
        vals.append(weight.ravel())
    weights = torch.sparse_coo_tensor(torch.stack([torch.cat(rows), torch.cat(cols)]),
                                      torch.cat(vals), (c * m, b * c * h * w),
                                      check_invariants=False).coalesce()
    return station_channels(weights, torch.cat(values), (b, c, h, w))


def training_pairs(x: Tensor, norm: Normaliser, lat: np.ndarray, lon: np.ndarray,
                   cfg: ConditioningConfig, seed: int) -> tuple[Tensor, Tensor]:
    """The fields repeated ``cfg.copies`` times (N·copies, C, H, W) and their conditions
    (N·copies, 3C + 1, H, W), one task drawn per copy (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    n, c = x.shape[:2]
    factors = np.asarray(cfg.factors)
    k = len(factors)
    out = []
    for _ in range(cfg.copies):
        # task < k: factor k alone; k: a random factor with stations; k + 1: stations alone
        task = rng.integers(0, k + 2, n)
        factor = np.where(task < k, factors[np.minimum(task, k - 1)], rng.choice(factors, n))
        factor[task == k + 1] = 0
        cond = torch.zeros(n, 3 * c + 1, *x.shape[2:])
        for f in cfg.factors:
            sel = torch.as_tensor(factor == f)
            if sel.any():
                op = ConservativePool(f, lat)
                cond[sel, :c + 1] = coarse_channels(op, op.forward(x[sel].to(torch.float64))
                                                    ).float()
        sel = np.flatnonzero(task >= k)
        if len(sel):
            counts = rng.integers(cfg.stations[0], cfg.stations[1] + 1, len(sel))
            cond[sel, c + 1:] = simulated_stations(x[sel], norm, lat, lon, counts, rng)
        out.append(cond)
    return x.repeat(cfg.copies, 1, 1, 1), torch.cat(out)
