"""Train the atmos score prior, or a conditional network, on synthetic fields with the
backbone's trainer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from polydiff.apps.atmos.conditional import training_pairs
from polydiff.apps.atmos.config import AtmosConfig, AtmosModelConfig
from polydiff.apps.atmos.data import training_fields
from polydiff.apps.atmos.model import APP
from polydiff.apps.atmos.normalise import Normaliser
from polydiff.apps.contract import checkpoint_meta, report, seeded
from polydiff.diffusion import (
    TrainResult,
    build_network,
    count_parameters,
    distributed,
    make_scheduler,
    train,
)
from polydiff.physics.atmos_fields import check_device_memory, grid_coords
from polydiff.runtime import UserError


def fields_array(ds, variables: list[str]) -> np.ndarray:
    """(time, C, latitude, longitude) float64 array of ``variables`` of a dataset."""
    return np.stack([ds[v].values for v in variables], axis=1).astype(np.float64)


def training_set(fields: torch.Tensor, norm: Normaliser, shifted_copies: int,
                 generator: torch.Generator) -> torch.Tensor:
    """Normalised fields (N·(1 + copies), C, H, W) float32 on ``fields``' device.

    ``fields``: physical (N, C, H, W). Each copy rolls every field by a random periodic
    shift (the anomalies are periodic and statistically homogeneous).
    """
    check_device_memory(fields.numel() * 4 * (2 + shifted_copies), fields.device,
                        f"a training set of {len(fields) * (1 + shifted_copies)} fields")
    x = torch.cat([norm.encode(part.to(torch.float64)).float() for part in fields.split(1024)])
    copies = [x]
    size = x.shape[-1]
    for _ in range(shifted_copies):
        shifts = torch.randint(0, size, (len(x), 2), generator=generator,
                               device=generator.device).tolist()  # one transfer, not per item
        copies.append(torch.stack([torch.roll(xi, (a, b), dims=(-2, -1))
                                   for xi, (a, b) in zip(x, shifts)]))
    return torch.cat(copies)


def run_training(cfg: AtmosConfig, *, data_cache: Path | None = None,
                 progress: bool = True) -> TrainResult:
    """Simulate (or read) the data on the training device, fit the normaliser, train; then
    fit the spread calibration on validation fields when ``cfg.calibration.factors``.

    Writes the checkpoint folder ``cfg.train.out_dir`` (rank 0 under torchrun).
    """
    try:
        group = distributed.setup(cfg.train.device)
    except (RuntimeError, ValueError) as err:
        raise UserError(f"cannot use device {cfg.train.device!r}: {err}") from err
    progress = progress and group.is_main
    fields, generator = training_fields(cfg, group, cache=data_cache, progress=progress)
    channels = [cfg.fields.variables.index(v) for v in cfg.variables]
    fields = fields[:, channels]
    norm = Normaliser.fit(tuple(cfg.variables), fields)
    x = training_set(fields, norm, cfg.data.shifted_copies, generator)
    del fields
    dataset: torch.Tensor | dict[str, torch.Tensor] = x
    if cfg.conditioning is not None:  # (fine, conditions) pairs: one task per copy
        c, h, w = x.shape[1:]
        check_device_memory(len(x) * cfg.conditioning.copies * (4 * c + 1) * h * w * 12,
                            torch.device("cpu"), "the conditional training pairs")
        lat, lon = grid_coords(cfg.fields)
        pairs = training_pairs(x.cpu(), norm, lat, lon, cfg.conditioning, cfg.data.seed)
        dataset = {"x": pairs[0].to(x.device), "cond": pairs[1].to(x.device)}
    net = seeded(cfg.train.seed, lambda: build_network(cfg.network))
    scheduler = make_scheduler(cfg.scheduler, prediction_type=cfg.prediction_type)
    kind = "conditional network" if cfg.conditioning is not None else "score prior"
    n = len(dataset["x"]) if isinstance(dataset, dict) else len(x)
    report(f"atmos train ({kind}): {n} fields of {tuple(x.shape[1:])} on {group.device}, "
           f"{count_parameters(net) / 1e6:.2f} M parameters")
    model_cfg = AtmosModelConfig(cfg.fields, norm.to_config(), conditioning=cfg.conditioning)
    result = train(net, scheduler, dataset, cfg.train,
                   config=checkpoint_meta(APP, dataclasses.asdict(model_cfg)), progress=progress)
    if cfg.calibration.factors and group.is_main:  # held-out validation fields, another seed
        from polydiff.apps.atmos.calibrate import calibrate_checkpoint

        calibrate_checkpoint(Path(cfg.train.out_dir), cfg.calibration, progress=progress)
    return result
