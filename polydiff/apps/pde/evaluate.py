"""``polydiff pde evaluate``: predicted trajectories against a solver test set.

The predictions are either a file (``--pred``, the test set's layout and grid: any model's
output) or made here: each test trajectory's initial state (and forcing, when the file
holds one; else f = 0) is handed to the WDNO model, or (``--method refiner``) rolled out
by a PDE-Refiner / MSE one-step model, scored at its steps (every ``stride``-th saved
time). The future states are scored against the test set's (MSE, PDEBench nRMSE,
correlation, time until decorrelation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from polydiff.apps.pde.dataset import from_model_grid
from polydiff.apps.pde.model import PDEModel, RefinerModel, superres_for
from polydiff.apps.pde.sampling import sampling_bytes, simulate_fields
from polydiff.apps.pde.simulate import check_range, level_grid
from polydiff.physics.pde_data import Trajectories
from polydiff.physics.pde_metrics import evaluate_predictions
from polydiff.runtime import UserError, check_finite, check_memory, make_generator


@dataclass
class Prediction:
    """Predicted and true trajectories (N, nt + 1, nx) with the times (nt + 1,)."""

    pred: np.ndarray
    truth: np.ndarray
    t: np.ndarray
    x: np.ndarray


def check_test_set(model: PDEModel, data: Trajectories) -> int:
    """Refuse test sets the model cannot serve; return the grid level."""
    if data.y is not None:
        raise UserError("the pde models serve 1-D Burgers; the test set is 2-D")
    if data.equation not in ("", "burgers"):
        raise UserError(f"the test set holds {data.equation!r}; the model serves burgers")
    nu = data.params.get("Nu", data.params.get("nu"))
    if nu is not None and not np.isclose(nu, model.config.data.nu):
        raise UserError(f"the test set has Nu = {nu}, the model was trained with "
                        f"nu = {model.config.data.nu}")
    level, grid = level_grid(model, data.u.shape[-1])
    if data.u.shape[1] != grid.nt or not (
            np.allclose(data.t.numpy(), grid.t().numpy(), atol=1e-6)
            and np.allclose(data.x.numpy(), grid.x().numpy(), atol=1e-6)):
        raise UserError(f"the test grid (nt = {data.u.shape[1]}, nx = {data.u.shape[-1]}) is not "
                        f"the model's: nt = {grid.nt} times on [0, {grid.t_final}] and nx = "
                        f"{grid.nx} interior nodes of [0, 1]")
    return level


def predict(model: PDEModel, data: Trajectories, *, steps: int | None = None, seed: int = 0,
            batch: int = 32, superres_folder: Path | None = None,
            members: int = 1) -> Prediction:
    """The model's trajectories for every test item, in batches of ``batch``; with
    ``members`` > 1 the mean of that many samples per item (the ensemble mean: an estimate
    of the posterior mean, which has the smallest expected squared error)."""
    level = check_test_set(model, data)
    check_range(model, data.u[:, 0].numpy(), "u0", f"an initial state of {data.n} in the test set")
    if data.forcing is not None:
        check_range(model, data.forcing.numpy(), "f", "a forcing of the test set")
    check_memory(sampling_bytes(model.config, min(batch, data.n), level),
                 f"sampling batches of {min(batch, data.n)} test trajectories")
    superres = superres_for(model, superres_folder, model.device) if level > 0 else None
    pad = torch.nn.functional.pad
    generator = make_generator(seed, model.device)
    preds = []
    for start in range(0, data.n, batch):
        u = data.u[start:start + batch]
        u0 = pad(u[:, 0], (1, 0)).to(model.device)
        f = data.forcing[start:start + batch] if data.forcing is not None else torch.zeros_like(u)
        f = pad(f[:, :-1], (1, 0)).to(model.device)
        runs = [from_model_grid(simulate_fields(model, u0, f, level=level, superres=superres,
                                                steps=steps, generator=generator,
                                                progress=True))[0]
                for _ in range(members)]
        preds.append(torch.stack(runs).mean(0).cpu().numpy())
    pred = np.concatenate(preds)
    check_finite(pred, "the model's predictions", "a model or checkpoint that diverged")
    return Prediction(pred, data.u.numpy(), data.t.numpy(), data.x.numpy())


REFINER_EQUATION_NAMES = {"ks": ("kuramoto-sivashinsky", "ks"), "burgers": ("burgers",)}


def check_refiner_test_set(model: RefinerModel, data: Trajectories) -> None:
    """Refuse test sets a refiner model cannot roll out: another equation or domain, other
    points, another saved interval, or too short for one model step."""
    c = model.config
    if data.y is not None:
        raise UserError("the refiner models serve 1-D equations; the test set is 2-D")
    if data.equation and data.equation not in REFINER_EQUATION_NAMES[c.equation]:
        raise UserError(f"the test set holds {data.equation!r}; the refiner {model.folder} "
                        f"serves {c.equation}")
    if c.ks is not None:
        nx, x_ok = c.ks.nx, np.allclose(np.diff(data.x.numpy()), c.ks.length / c.ks.nx)
        length = data.params.get("L")
        if length is not None and not np.isclose(length, c.ks.length):
            raise UserError(f"the test set has L = {length:g}, the model was trained with "
                            f"L = {c.ks.length:g}")
    else:
        nx = c.burgers.nx
        x_ok = data.u.shape[-1] == nx and np.allclose(
            data.x.numpy(), c.burgers.grid(0).x().numpy(), atol=1e-6)
        nu = data.params.get("Nu", data.params.get("nu"))
        if nu is not None and not np.isclose(nu, c.burgers.nu):
            raise UserError(f"the test set has Nu = {nu}, the model was trained with "
                            f"nu = {c.burgers.nu}")
    if data.u.shape[-1] != nx or not x_ok:
        raise UserError(f"the test set has {data.u.shape[-1]} points; the refiner runs on "
                        f"{nx} evenly spaced points (its training grid)")
    steps = np.diff(data.t.numpy())
    if not np.allclose(steps, c.saved_dt, rtol=1e-5, atol=1e-8):
        raise UserError(f"the test set is saved every {float(steps.mean()):.4g} time units, "
                        f"the refiner's data every {c.saved_dt:g} (it steps {c.step_dt:g})")
    if data.u.shape[1] <= c.stride:
        raise UserError(f"the test set holds {data.u.shape[1]} times; one model step needs "
                        f"{c.stride + 1}")


def predict_refiner(model: RefinerModel, data: Trajectories, *, seed: int = 0,
                    batch: int = 64) -> Prediction:
    """Rollouts of a refiner model from every test item's initial state (and forcing):
    predictions and truth at the model's steps t_0, t_stride, ... (N, steps + 1, nx)."""
    from polydiff.apps.pde.refiner import predict as rollouts

    check_refiner_test_set(model, data)
    s = model.config.stride
    pred, truth = rollouts(model, data, seed=seed, batch=batch, progress=True)
    check_finite(pred, "the model's predictions", "a model or checkpoint that diverged")
    t = data.t[: (pred.shape[1] - 1) * s + 1 : s]
    return Prediction(pred.numpy(), truth.numpy(), t.numpy(), data.x.numpy())


def from_file(pred: Trajectories, truth: Trajectories) -> Prediction:
    """A prediction read from a file, after checking it matches the test set."""
    if tuple(pred.u.shape) != tuple(truth.u.shape):
        raise UserError(f"the predictions have shape {tuple(pred.u.shape)}, the test set "
                        f"{tuple(truth.u.shape)} (N, nt, nx): they must match")
    for name, a, b in (("times", pred.t, truth.t), ("positions", pred.x, truth.x)):
        if not np.allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6):
            raise UserError(f"the predictions' {name} differ from the test set's")
    return Prediction(pred.u.numpy(), truth.u.numpy(), truth.t.numpy(), truth.x.numpy())


def score(p: Prediction) -> dict:
    """MSE, PDEBench nRMSE, time until decorrelation (and their curves) over t_1..t_nt."""
    pred, truth = torch.from_numpy(p.pred[:, 1:]), torch.from_numpy(p.truth[:, 1:])
    return {"n": int(p.pred.shape[0]), "nt": int(p.pred.shape[1] - 1),
            "nx": int(p.pred.shape[2]), "times": p.t[1:].tolist(),
            **evaluate_predictions(pred, truth, p.t[1:])}
