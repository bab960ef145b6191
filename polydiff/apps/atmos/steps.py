"""Super-resolution of long records: a time range, and one output file per time step.

``superres --per-step -o DIR`` writes ``DIR/<stem>_<YYYY-MM-DDTHHMM>.nc`` for each time
step. The coarse file is read lazily (xarray + dask, :func:`polydiff.physics.era5.open_era5`)
one time step at a time, so memory does not grow with the length of the record; the steps
are split between torchrun processes and Slurm array tasks, and ``--resume`` skips steps
whose file exists. Each step has its own generator, seeded by (seed, the step's time), so
a step's file depends neither on the process that made it nor on the range asked for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from polydiff.apps.atmos.model import AtmosModel
from polydiff.apps.atmos.superres import (
    SuperresInputs,
    SuperresOptions,
    check_observation_times,
    superres,
)
from polydiff.apps.contract import PerInput
from polydiff.physics.era5 import write_netcdf
from polydiff.runtime import UserError


def _when(text: str | None, flag: str) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        return pd.Timestamp(text)
    except (ValueError, TypeError) as err:
        raise UserError(f"{flag} {text!r} is not a date or time (e.g. 2001-01-31T18)") from err


def select_times(inputs: SuperresInputs, start: str | None, end: str | None
                 ) -> SuperresInputs:
    """The inputs within [start, end] (both inclusive; None: open), still lazy."""
    lo, hi = _when(start, "--start"), _when(end, "--end")
    if lo is None and hi is None:
        return inputs
    if lo is not None and hi is not None and lo > hi:
        raise UserError(f"--start {start} is after --end {end}")
    coarse, obs, grid = inputs
    if coarse is not None:
        coarse = coarse.sel(time=slice(lo, hi))
        n = coarse.sizes["time"]
    else:
        times = pd.to_datetime(grid[0])
        keep = (times >= (lo or times.min())) & (times <= (hi or times.max()))
        grid = (grid[0][keep], grid[1], grid[2])
        n = int(keep.sum())
    if n == 0:
        raise UserError(f"no time step between {start or 'the start'} and {end or 'the end'}")
    if obs is not None:
        t = obs["time"]
        obs = obs[(t >= (lo or t.min())) & (t <= (hi or t.max()))]
        obs = obs if len(obs) else None
    return SuperresInputs(coarse, obs, grid)


def step_name(stem: str, time) -> str:
    """``<stem>_<YYYY-MM-DDTHHMM>.nc`` (minutes; no colon, for every file system)."""
    return f"{stem}_{pd.Timestamp(time).strftime('%Y-%m-%dT%H%M')}.nc"


def step_seed(seed: int, time) -> int:
    """The seed of the generator of the step at ``time``: a function of (seed, the time in
    whole minutes) only."""
    minutes = pd.Timestamp(time).value // 60_000_000_000
    return int(np.random.SeedSequence([int(seed), int(minutes) + 2**62]).generate_state(1)[0])


def superres_per_step(model: AtmosModel, opts: SuperresOptions, inputs: SuperresInputs,
                      folder: Path, stem: str, *, seed: int, device: torch.device,
                      sources: list[Path | None], overwrite: bool, resume: bool,
                      command: str) -> PerInput:
    """One ensemble file per time step of ``inputs`` into ``folder``; returns the batch
    (its summary says what was written and skipped)."""
    from polydiff.runtime import make_generator

    coarse, obs, grid = inputs
    times = coarse["time"].values if coarse is not None else grid[0]
    names = [step_name(stem, t) for t in times]
    if len(set(names)) != len(names):
        raise UserError("two time steps fall in the same minute; --per-step names files by "
                        "the minute")
    if obs is not None:
        check_observation_times(obs, times)  # every station before any sampling
    work = PerInput(range(len(times)), lambda k: [folder / names[k]], inputs=sources,
                    overwrite=overwrite, resume=resume)
    for k in work.todo:
        rows = None
        if obs is not None:
            rows = obs[obs["time"] == pd.Timestamp(times[k])]
            rows = rows if len(rows) else None
        with work.outputs(k) as (nc,):
            result = superres(
                model, opts, coarse=None if coarse is None else coarse.isel(time=[k]),
                obs=rows, grid=None if coarse is not None else (times[k:k + 1], *grid[1:]),
                generator=make_generator(step_seed(seed, times[k]), device), device=device,
                progress=False)
            write_netcdf(result, nc, command=command)
    return work
