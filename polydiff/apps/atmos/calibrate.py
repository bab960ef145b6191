"""Spread calibration of an atmos checkpoint on held-out validation fields.

The guided ensemble is not an exact posterior sample: its spread can be too wide or too
narrow for its error. For each coarse-graining factor, validation fields (simulated with
another seed than the training data, never the benchmark's) are coarse-grained and
super-resolved with the calibration settings (and, with ``stations``, sampled at that many
random stations and super-resolved from them alone: the table's key ``obs``); per variable,
the factor

    s = skill / (√((M + 1)/M) · spread)

makes the validation spread/skill 1. It is stored in the checkpoint's ``polydiff.json``
(``config.spread_calibration``, with the settings in ``config.calibration_settings``); the
weights are untouched. ``superres`` applies it to coarse input alone, or stations alone, at
those settings.

Run on a checkpoint folder: ``python -m polydiff.apps.atmos.calibrate --model DIR``
(``run_training`` calls it when the YAML's ``calibration.factors`` is not empty).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from polydiff.apps.atmos.config import STATIONS_KEY, CalibrationConfig
from polydiff.apps.atmos.generate import coarsen_dataset
from polydiff.apps.atmos.model import AtmosModel, load_model
from polydiff.apps.atmos.superres import (
    DEFAULT_GUIDANCE,
    SuperresOptions,
    resolved_guidance,
    superres,
)
from polydiff.apps.contract import report
from polydiff.diffusion.checkpoint import CONFIG_NAME
from polydiff.physics.atmos_fields import generate_fields
from polydiff.physics.atmos_metrics import spread_skill
from polydiff.physics.observations import simulate_observations
from polydiff.runtime import UserError, atomic_output, make_generator


def fit_spread_calibration(model: AtmosModel, cal: CalibrationConfig, *,
                           progress: bool = False) -> dict[str, list[float]]:
    """Factor (as a string), and ``obs`` for stations alone, -> per-variable spread factors,
    from validation fields."""
    variables = list(model.normaliser.variables)
    truth_ds = generate_fields(cal.times, model.config.fields, make_generator(cal.seed),
                               trajectories=cal.times, progress=progress)
    grid = (truth_ds.time.values, truth_ds.latitude.values, truth_ds.longitude.values)
    inputs = [(str(f), f, coarsen_dataset(truth_ds[variables], f), None) for f in cal.factors]
    if cal.stations:
        obs = simulate_observations(truth_ds[variables], cal.stations,
                                    np.random.default_rng(cal.seed))
        inputs.append((STATIONS_KEY, 1, None, obs))
    table = {}
    for key, factor, coarse, obs in inputs:
        opts = SuperresOptions(factor=factor, members=cal.members, steps=cal.steps,
                               guidance=cal.guidance, eta=cal.eta, constrain=cal.constrain,
                               calibrate=False)
        ds = superres(model, opts, coarse=coarse, obs=obs, grid=grid,
                      generator=make_generator(cal.seed + factor), device=torch.device("cpu"),
                      progress=progress)
        table[key] = [_spread_factor(ds[v].values, truth_ds[v].values, grid[1], cal.members)
                      for v in variables]
        report(f"atmos calibrate {'stations' if obs is not None else f'x{factor}'}: spread "
               "factors " + ", ".join(f"{v} {f:.3f}" for v, f in zip(variables, table[key])))
    return table


def _spread_factor(members: np.ndarray, truth: np.ndarray, lat: np.ndarray, m: int) -> float:
    """The factor that makes the spread/skill of (M, T, H, W) ``members`` 1 (0.1..10)."""
    ss = spread_skill(members.astype(np.float64), truth.astype(np.float64), lat)
    spread = math.sqrt(float(np.mean(ss.spread**2)))
    skill = math.sqrt(float(np.mean(ss.skill**2)))
    ratio = math.sqrt((m + 1) / m) * spread / max(skill, 1e-30)
    return float(np.clip(1.0 / max(ratio, 1e-6), 0.1, 10.0))


def write_calibration(folder: Path, table: dict[str, list[float]], cal: CalibrationConfig
                      ) -> None:
    """Store the table and its settings in ``folder/polydiff.json`` (weights untouched)."""
    path = Path(folder) / CONFIG_NAME
    meta = json.loads(path.read_text())
    meta["config"]["spread_calibration"] = table
    meta["config"]["calibration_settings"] = {**dataclasses.asdict(cal), "validation":
                                              "fields simulated with calibration.seed"}
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def calibrate_checkpoint(folder: Path, cal: CalibrationConfig, *, progress: bool = False
                         ) -> dict[str, list[float]]:
    """Fit the spread calibration of the checkpoint ``folder`` and write it into it."""
    if not cal.factors and not cal.stations:
        raise UserError("no calibration factors or stations given")
    model = load_model(folder, "cpu")
    table = fit_spread_calibration(model, cal, progress=progress)
    write_calibration(model.folder, table, cal)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder")
    parser.add_argument("--factors", type=int, nargs="*", default=[4, 8])
    parser.add_argument("--stations", type=int, default=0,
                        help="also calibrate stations alone, from this many random stations")
    parser.add_argument("--times", type=int, default=CalibrationConfig.times)
    parser.add_argument("--seed", type=int, default=CalibrationConfig.seed)
    parser.add_argument("--guidance", type=float, default=None,
                        help="DPS weight to calibrate for (default: the one the checkpoint "
                             "was calibrated for, else superres' default for coarse input: "
                             f"0 for a conditional network, {DEFAULT_GUIDANCE} otherwise)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        guidance = args.guidance
        if guidance is None:
            guidance = default_guidance(load_model(args.model, "cpu"))
        cal = CalibrationConfig(factors=args.factors, times=args.times, seed=args.seed,
                                stations=args.stations, guidance=guidance)
        calibrate_checkpoint(args.model, cal, progress=True)
    except UserError as err:  # one line, as polydiff's commands give it
        print(f"atmos calibrate: error: {err}", file=sys.stderr)
        return 2
    return 0


def default_guidance(model: AtmosModel) -> float:
    """The guidance weight a recalibration keeps: the stored one, else the one ``superres``
    runs coarse input with by default (0 for a conditional network, else 0.3)."""
    stored = (model.config.calibration_settings or {}).get("guidance")
    if stored is not None:
        return float(stored)
    return resolved_guidance(model, SuperresOptions(), coarse=True)


if __name__ == "__main__":
    raise SystemExit(main())
