"""Train the atmos score prior on synthetic fields with the backbone's trainer."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from polydiff.apps.atmos.config import AtmosConfig
from polydiff.apps.atmos.normalise import Normaliser
from polydiff.diffusion import TrainResult, build_network, make_scheduler, train
from polydiff.physics.atmos_fields import generate_fields
from polydiff.runtime import make_generator


def fields_array(ds, variables: list[str]) -> np.ndarray:
    """(time, C, latitude, longitude) float64 array of ``variables`` of a dataset."""
    return np.stack([ds[v].values for v in variables], axis=1).astype(np.float64)


def training_set(cfg: AtmosConfig, *, progress: bool = True) -> tuple[torch.Tensor, Normaliser]:
    """Normalised training fields (N, C, H, W) float32 and the normaliser fitted on them."""
    gen = make_generator(cfg.data.seed)
    ds = generate_fields(cfg.data.trajectories * cfg.data.snapshots, cfg.fields, gen,
                         trajectories=cfg.data.trajectories, progress=progress)
    data = fields_array(ds, cfg.variables)
    norm = Normaliser.fit(tuple(cfg.variables), data)
    x = norm.encode(torch.as_tensor(data)).float()
    copies = [x]
    for _ in range(cfg.data.shifted_copies):  # anomalies are periodic and homogeneous
        shifts = torch.randint(0, cfg.fields.size, (len(x), 2), generator=gen)
        copies.append(torch.stack([torch.roll(xi, (int(a), int(b)), dims=(-2, -1))
                                   for xi, (a, b) in zip(x, shifts)]))
    return torch.cat(copies), norm


def checkpoint_config(cfg: AtmosConfig, norm: Normaliser) -> dict:
    """The app's block of ``polydiff.json``: normalisation and the grid it was trained on."""
    return {"atmos": {"normaliser": norm.to_dict(), "fields": dataclasses.asdict(cfg.fields)}}


def run_training(cfg: AtmosConfig, *, progress: bool = True) -> TrainResult:
    """Generate the data, build the network and scheduler, train; writes ``train.out_dir``."""
    x, norm = training_set(cfg, progress=progress)
    net = build_network(cfg.network)
    scheduler = make_scheduler(cfg.scheduler, prediction_type=cfg.prediction_type)
    return train(net, scheduler, x, cfg.train, config=checkpoint_config(cfg, norm),
                 progress=progress)
