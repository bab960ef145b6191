"""Training of the pde models from a config: solver data -> samples -> the backbone's ``train``.

``polydiff pde train --config configs/pde/burgers_tiny.yaml`` runs as is under
``torchrun --nproc_per_node=K`` (the backbone's ``train`` splits the global batch).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import Tensor

from polydiff.apps.contract import checkpoint_meta, report, seeded
from polydiff.apps.pde.config import PDEConfig, RefinerConfig
from polydiff.apps.pde.dataset import coarsen, solve_trajectories
from polydiff.apps.pde.model import APP
from polydiff.apps.pde.representation import Fields, Layout
from polydiff.diffusion.networks import Denoiser, build_network, count_parameters
from polydiff.diffusion.schedulers import make_scheduler
from polydiff.diffusion.training import (
    TrainResult,
    denoising_loss,
    snr_capped_timestep_weights,
    train,
)
from polydiff.physics.pde_data import Trajectories
from polydiff.runtime import UserError, atomic_output, is_main_process


def make_scheduler_for(config: PDEConfig):
    """The diffusers scheduler of a config."""
    s = config.scheduler
    return make_scheduler(s.name, prediction_type=s.prediction_type,
                          num_train_timesteps=s.num_train_timesteps,
                          beta_schedule=s.beta_schedule)


def upsample_condition(coarse: Tensor) -> Tensor:
    """Coarse coefficients (B, C, h, w) repeated to (B, C, 2h, 2w) (WDNO's SR condition)."""
    return coarse.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def superres_pair(layout: Layout, fine: Fields) -> tuple[Tensor, Tensor]:
    """(fine sample, condition) of fine fields: the condition is their 2x coarsening."""
    return layout.encode(fine), upsample_condition(layout.encode(coarsen(fine)))


def _crops(x: Tensor, cond: Tensor, size: tuple[int, int], count: int,
           generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``count`` random (h, w) windows per item, the same window in x and cond."""
    xs, cs = [], []
    h, w = size
    for _ in range(count):
        i = torch.randint(0, x.shape[-2] - h + 1, (x.shape[0],), generator=generator)
        j = torch.randint(0, x.shape[-1] - w + 1, (x.shape[0],), generator=generator)
        for b in range(x.shape[0]):
            window = (..., slice(i[b], i[b] + h), slice(j[b], j[b] + w))
            xs.append(x[b][window])
            cs.append(cond[b][window])
    return torch.stack(xs), torch.stack(cs)


def with_condition_modes(dataset: dict, layout: Layout) -> dict:
    """Every item twice: once with the forcing given (a clean condition) and once with the
    forcing to be generated; the initial state is always given. Adds ``known`` (N, C, 1, 1)."""
    n = len(dataset["x"])
    known = torch.zeros(2 * n, layout.channels, 1, 1, dtype=torch.bool)
    known[:, layout.group("u0")] = True
    known[:n, layout.group("f")] = True
    return {**{k: torch.cat([v, v]) for k, v in dataset.items()}, "known": known}


def build_dataset(config: PDEConfig, fields: Fields, generator: torch.Generator) -> dict:
    """Training tensors from fields on the finest level (``config.data.finer``).

    Fits ``config.layout.scale`` in place. WDNO: {"x": (N, C, h, w)} at the base level.
    Superres: {"x", "cond"} over ``config.sr_levels``, finer levels cut to the base size.
    Both with ``known`` from :func:`with_condition_modes`.
    """
    finer = config.data.finer
    if config.kind == "wdno":
        base = coarsen(fields, finer)
        config.layout.fit_scale(base)
        x = config.layout.encode(base)
        if config.unforced_repeat > 1:  # after the fit: the scales stay those of the data
            unforced = base.f.flatten(1).abs().amax(1) == 0
            x = torch.cat([x, *[x[unforced]] * (config.unforced_repeat - 1)])
        return with_condition_modes({"x": x}, config.layout)
    levels = sorted(config.sr_levels)
    if not levels or levels[0] < 0 or levels[-1] > finer:
        raise ValueError(f"sr_levels {levels} must lie in [0, data.finer = {finer}]")
    per_level = {lvl: coarsen(fields, finer - lvl) for lvl in levels}
    config.layout.fit_scale(per_level[levels[-1]])
    size = config.layout.sample_shape(config.data.nt, config.data.nx + 1)[1:]
    xs, conds = [], []
    for lvl in levels:
        x, cond = superres_pair(config.layout, per_level[lvl])
        if lvl > 0:
            x, cond = _crops(x, cond, size, config.crops, generator)
        xs.append(x)
        conds.append(cond)
    return with_condition_modes({"x": torch.cat(xs), "cond": torch.cat(conds)}, config.layout)


def config_record(config: PDEConfig) -> dict:
    """The app's part of ``polydiff.json`` (format 1; read back by :func:`model.load_model`)."""
    return checkpoint_meta(APP, dataclasses.asdict(config), kind=config.kind)


def run_training(config: PDEConfig, *, data_file: Path | None = None,
                 progress: bool = True) -> TrainResult:
    """Generate (or read) the data, fit the normalisation, train and export the model.

    Args:
        config: the model config; ``config.train.out_dir`` receives the checkpoint.
        data_file: optional ``.safetensors`` cache of the solver data (written if absent).
    """
    fields = load_or_solve(config, data_file, progress)
    dataset = build_dataset(config, fields, torch.Generator().manual_seed(config.data.seed + 1))
    net = seeded(config.train.seed, lambda: build_network(config.network_block()))
    scheduler = make_scheduler_for(config)
    weight = config.layout.band_weights(config.band_weight_power)

    def loss_fn(model, batch, noise, timesteps):
        # conditions enter clean and leave the loss: exact conditioning (ReplaceKnown
        # with noised=False at sampling time)
        denoiser = Denoiser(model, batch.get("cond"))
        return denoising_loss(denoiser, scheduler, batch["x"], noise, timesteps,
                              weight=weight, known=batch["known"], known_clean=True)

    if progress:
        report(f"pde train: {config.kind} ({config.layout.domain}) with "
               f"{count_parameters(net) / 1e6:.3f} M parameters on "
               f"{len(dataset['x'])} samples of shape {tuple(dataset['x'].shape[1:])}")
    cap = config.timestep_snr_cap
    return train(net, scheduler, dataset, config.train, loss_fn=loss_fn,
                 config=config_record(config), progress=progress,
                 timestep_weights=None if cap is None else
                 snr_capped_timestep_weights(scheduler, cap))


def load_or_solve(config: PDEConfig, data_file: Path | None, progress: bool) -> Fields:
    """Solver fields on level ``config.data.finer``: read from the cache file when it exists
    (it must have been made with the same data settings: a cache of other data is refused,
    never overwritten), else solved and, when ``data_file`` is given, written there (by the
    main process only, whole or not at all)."""
    from safetensors.torch import save_file

    key = json.dumps(dataclasses.asdict(config.data), sort_keys=True)
    if data_file is not None and Path(data_file).is_file():
        return read_cache(Path(data_file), key)
    generator = torch.Generator().manual_seed(config.data.seed)
    fields = solve_trajectories(config.data, config.data.finer, generator, progress=progress,
                                device=solver_device(config.train.device))
    if data_file is not None and is_main_process():
        with atomic_output(data_file) as tmp:
            save_file({k: v.contiguous() for k, v in fields._asdict().items()}, tmp,
                      metadata={"data": key})
    return fields


def solver_device(name: str) -> torch.device:
    """Where the training data are solved: the device the training will run on (this
    process's GPU, or the CPU); CUDA asked for without a GPU is a UserError."""
    from polydiff.diffusion.distributed import local_device
    from polydiff.runtime import pick_device

    pick_device(name)
    return local_device(name)


def read_cache(path: Path, key: str) -> Fields:
    """The fields of a data cache made with the data settings ``key`` (UserError otherwise)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as handle:
            made_with = (handle.metadata() or {}).get("data")
        tensors = load_file(path) if made_with == key else None
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"--data-cache {path} is not a safetensors data cache: "
                        f"{str(err).splitlines()[0]}") from err
    if tensors is None:
        raise UserError(f"--data-cache {path} holds data made with other settings than the "
                        "config's data block; name another file (it is never overwritten)")
    if set(tensors) != set(Fields._fields):
        raise UserError(f"--data-cache {path} does not hold the fields {Fields._fields}")
    return Fields(**tensors)


def run_refiner_training(config: RefinerConfig, *, data: Trajectories | None = None,
                         progress: bool = True) -> TrainResult:
    """PDE-Refiner (or its MSE twin): solve the training set (unless ``data`` is given), fit
    the scales into ``config``, train with :func:`refiner.refiner_loss` and export
    ``config.train.out_dir`` (kind "refiner")."""
    from polydiff.apps.pde.refiner import (
        RefinerDenoiser,
        make_refiner_scheduler,
        refiner_loss,
    )
    from polydiff.apps.pde.refiner_data import fit_scales, make_trajectories, training_set

    traj = data if data is not None else make_trajectories(config, progress=progress)
    config.scales = fit_scales(config, traj)
    dataset = training_set(config, traj)
    net = seeded(config.train.seed, lambda: build_network(config.network_block()))
    scheduler = make_refiner_scheduler(config.refinement_steps, config.min_noise_std)
    k_max = config.refinement_steps

    def loss_fn(model, batch, noise, k):
        return refiner_loss(RefinerDenoiser(model, batch["cond"], k_max), scheduler,
                            batch["x"], noise, k)

    if progress:
        what = f"PDE-Refiner (K = {k_max})" if k_max else "MSE one-step model (K = 0)"
        report(f"pde train: {what} on {config.equation} with {count_parameters(net) / 1e6:.3f} "
               f"M parameters on {len(dataset['x'])} pairs of {config.points} points")
    meta = checkpoint_meta(APP, dataclasses.asdict(config), kind="refiner")
    weights = config.timestep_weights()
    return train(net, scheduler, dataset, config.train, loss_fn=loss_fn, config=meta,
                 timestep_weights=None if weights is None else torch.tensor(weights),
                 progress=progress)
