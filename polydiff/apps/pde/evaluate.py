"""``polydiff pde evaluate``: a WDNO model against a solver test set (PDEBench-layout file).

Each test trajectory's initial state (and forcing, when the file holds one; else f = 0) is
handed to the model; the predicted future states t_1..t_nt are scored against the file's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from polydiff.apps.pde.dataset import from_model_grid
from polydiff.apps.pde.model import PDEModel, superres_for
from polydiff.apps.pde.pipeline import simulate_fields
from polydiff.apps.pde.simulate import level_grid
from polydiff.physics.pde_data import Trajectories
from polydiff.physics.pde_metrics import evaluate_predictions
from polydiff.runtime import UserError, make_generator


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
            batch: int = 32, superres_folder: Path | None = None) -> Prediction:
    """The model's trajectories for every test item, in batches of ``batch``."""
    level = check_test_set(model, data)
    superres = superres_for(model, superres_folder, model.device) if level > 0 else None
    pad = torch.nn.functional.pad
    generator = make_generator(seed, model.device)
    preds = []
    for start in range(0, data.n, batch):
        u = data.u[start:start + batch]
        u0 = pad(u[:, 0], (1, 0)).to(model.device)
        f = data.forcing[start:start + batch] if data.forcing is not None else torch.zeros_like(u)
        f = pad(f[:, :-1], (1, 0)).to(model.device)
        fields = simulate_fields(model, u0, f, level=level, superres=superres, steps=steps,
                                 generator=generator, progress=True)
        preds.append(from_model_grid(fields)[0].cpu().numpy())
    return Prediction(np.concatenate(preds), data.u.numpy(), data.t.numpy(), data.x.numpy())


def score(p: Prediction) -> dict:
    """MSE, PDEBench nRMSE, time until decorrelation (and their curves) over t_1..t_nt."""
    pred, truth = torch.from_numpy(p.pred[:, 1:]), torch.from_numpy(p.truth[:, 1:])
    return {"n": int(p.pred.shape[0]), "nt": int(p.pred.shape[1] - 1),
            "nx": int(p.pred.shape[2]), "times": p.t[1:].tolist(),
            **evaluate_predictions(pred, truth, p.t[1:])}
