"""Spread calibration of an atmos checkpoint on held-out validation fields.

The guided ensemble is not an exact posterior sample: its spread can be too wide or too
narrow for its error. For each coarse-graining factor, validation fields (simulated with
another seed than the training data, never the benchmark's) are coarse-grained and
super-resolved with the calibration settings; per variable, the factor

    s = skill / (√((M + 1)/M) · spread)

makes the validation spread/skill 1. It is stored in the checkpoint's ``polydiff.json``
(``config.spread_calibration``, with the settings in ``config.calibration_settings``); the
weights are untouched. ``superres`` applies it to coarse input alone at those settings.

Run on a checkpoint folder: ``python -m polydiff.apps.atmos.calibrate --model DIR``
(``run_training`` calls it when the YAML's ``calibration.factors`` is not empty).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch

from polydiff.apps.atmos.config import CalibrationConfig
from polydiff.apps.atmos.generate import coarsen_dataset
from polydiff.apps.atmos.model import AtmosModel, load_model
from polydiff.apps.atmos.superres import SuperresOptions, superres
from polydiff.apps.contract import report
from polydiff.diffusion.checkpoint import CONFIG_NAME
from polydiff.physics.atmos_fields import generate_fields
from polydiff.physics.atmos_metrics import spread_skill
from polydiff.runtime import UserError, atomic_output, make_generator


def fit_spread_calibration(model: AtmosModel, cal: CalibrationConfig, *,
                           progress: bool = False) -> dict[str, list[float]]:
    """Factor (as a string) -> per-variable spread factors, from validation fields."""
    variables = list(model.normaliser.variables)
    truth_ds = generate_fields(cal.times, model.config.fields, make_generator(cal.seed),
                               trajectories=cal.times, progress=progress)
    lat = truth_ds["latitude"].values
    table = {}
    for factor in cal.factors:
        coarse = coarsen_dataset(truth_ds[variables], factor)
        opts = SuperresOptions(factor=factor, members=cal.members, steps=cal.steps,
                               guidance=cal.guidance, eta=cal.eta, constrain=cal.constrain,
                               calibrate=False)
        ds = superres(model, opts, coarse=coarse, obs=None, grid=None,
                      generator=make_generator(cal.seed + factor), device=torch.device("cpu"),
                      progress=progress)
        factors = []
        for v in variables:
            members = ds[v].values.astype(np.float64)  # (M, T, H, W)
            truth = truth_ds[v].values.astype(np.float64)
            ss = spread_skill(members, truth, lat)
            spread = math.sqrt(float(np.mean(ss.spread**2)))
            skill = math.sqrt(float(np.mean(ss.skill**2)))
            ratio = math.sqrt((cal.members + 1) / cal.members) * spread / max(skill, 1e-30)
            factors.append(float(np.clip(1.0 / max(ratio, 1e-6), 0.1, 10.0)))
        table[str(factor)] = factors
        report(f"atmos calibrate x{factor}: spread factors "
               + ", ".join(f"{v} {f:.3f}" for v, f in zip(variables, factors)))
    return table


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
    if not cal.factors:
        raise UserError("no calibration factors given")
    model = load_model(folder, "cpu")
    table = fit_spread_calibration(model, cal, progress=progress)
    write_calibration(model.folder, table, cal)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder")
    parser.add_argument("--factors", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--times", type=int, default=CalibrationConfig.times)
    parser.add_argument("--seed", type=int, default=CalibrationConfig.seed)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cal = CalibrationConfig(factors=args.factors, times=args.times, seed=args.seed)
    calibrate_checkpoint(args.model, cal, progress=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
