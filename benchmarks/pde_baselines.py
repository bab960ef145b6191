"""pde benchmark: learned Burgers surrogates on ONE held-out solver test set, and the solver.

Setting: WDNO's forced Burgers (nu = 0.01, T = 8, zero Dirichlet) on the pde app's base grid
(31 interior points x 33 times including t = 0, ``BurgersData().grid(0)``), and 2x finer
(63 x 65) for zero-shot super-resolution. The test set is drawn with seed 1234 (training
sets use seed 0), all trajectories forced, solved by ``physics.burgers`` with the pde app's
data refinement (``BurgersData().refine``).

Rows: FNO autoregressive one-step (1-D), FNO whole-trajectory (2-D over (t, x)), the latter
also zero-shot on the 2x grid (an FNO's grid coordinates are in [0, 1], its modes are
resolution-free). Metrics on the future states t_1..t_nt (u0 is given to every method):
MSE, PDEBench nRMSE, per-time nRMSE / Pearson correlation and PDE-Refiner's time until the
correlation drops below 0.8, plus wall times of the solver and of each model's inference.
Other models add rows by putting their predictions into ``predictions`` in :func:`main`.

Run: ``python -m benchmarks.run pde_baselines [--full]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import figure_path, write_json  # noqa: E402
from polydiff.apps.pde.dataset import BurgersData  # noqa: E402
from polydiff.apps.pde.fno import FNOTrainConfig, predict, train_fno  # noqa: E402
from polydiff.apps.pde.generate import GenerateRequest, generate  # noqa: E402
from polydiff.physics.pde_data import Trajectories  # noqa: E402
from polydiff.physics.pde_metrics import evaluate_predictions  # noqa: E402
from polydiff.plotting import save_figure  # noqa: E402

NAME = "pde_baselines"
TEST_SEED, TRAIN_SEED = 1234, 0


@dataclass(frozen=True)
class Budget:
    """Sizes of one benchmark run."""

    n_train: int
    n_test: int
    step_steps: int
    trajectory_steps: int


QUICK = Budget(n_train=256, n_test=32, step_steps=400, trajectory_steps=300)
FULL = Budget(n_train=1024, n_test=128, step_steps=3000, trajectory_steps=3000)


class Sets:
    """The training set, the held-out test set, its 2x finer twin and the solver's timings."""

    def __init__(self, budget: Budget):
        base = BurgersData()
        self.train = _solve(base, 0, budget.n_train, TRAIN_SEED)[0]
        self.test, self.solver_seconds = _solve(base, 0, budget.n_test, TEST_SEED)
        self.test_2x, self.solver_seconds_2x = _solve(base, 1, budget.n_test, TEST_SEED)


def _solve(data: BurgersData, level: int, n: int, seed: int) -> tuple[Trajectories, float]:
    grid = data.grid(level)
    req = GenerateRequest("burgers", n, nx=grid.nx, nt=grid.nt, t_final=grid.t_final,
                          param=data.nu, seed=seed, refine=data.refine)
    start = time.perf_counter()
    traj = generate(req)
    return traj, time.perf_counter() - start


def _timed_predict(model, test: Trajectories) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    pred = predict(model, test.u[:, 0], test.forcing, test.u.shape[1])
    return pred, time.perf_counter() - start


def train_fnos(sets: Sets, budget: Budget) -> tuple:
    """The one-step and whole-trajectory FNOs trained on the training set."""
    step = train_fno(sets.train, FNOTrainConfig(task="step", width=32, modes=(12,),
                                                steps=budget.step_steps, batch_size=64),
                     progress=True).model
    trajectory = train_fno(sets.train, FNOTrainConfig(
        task="trajectory", width=16, modes=(8, 8), steps=budget.trajectory_steps,
        batch_size=16), progress=True).model
    return step, trajectory


def fno_predictions(sets: Sets, budget: Budget, models: tuple | None = None,
                    ) -> dict[str, tuple[Trajectories, torch.Tensor, float]]:
    """Both FNOs (trained here unless ``models`` from :func:`train_fnos` are given);
    predictions as name -> (test set, pred, seconds)."""
    step, trajectory = models or train_fnos(sets, budget)
    return {
        "fno-step": (sets.test, *_timed_predict(step, sets.test)),
        "fno-trajectory": (sets.test, *_timed_predict(trajectory, sets.test)),
        "fno-trajectory zero-shot 2x": (sets.test_2x, *_timed_predict(trajectory, sets.test_2x)),
    }


def score(predictions: dict) -> dict:
    """Metrics of each row on the future states t_1..t_nt."""
    rows = {}
    for name, (test, pred, seconds) in predictions.items():
        metrics = evaluate_predictions(pred[:, 1:], test.u[:, 1:], times=test.t[1:])
        rows[name] = {"grid": list(test.u.shape[1:]), "seconds": seconds,
                      "seconds_per_trajectory": seconds / test.n, **metrics}
    return rows


def draw_time_curves(ax_nrmse, ax_corr, series: dict) -> None:
    """nRMSE and Pearson correlation over time; ``series[name] = (t, metrics row)``."""
    for name, (t, row) in series.items():
        ax_nrmse.plot(t, row["nrmse_per_time"], label=name)
        ax_corr.plot(t, row["correlation_per_time"], label=name)
    ax_nrmse.set(xlabel="t", ylabel="nRMSE over x", yscale="log")
    ax_nrmse.legend(fontsize=6)
    ax_corr.axhline(0.8, color="k", lw=0.8, ls="--")
    ax_corr.set(xlabel="t", ylabel="Pearson correlation")


def plot(predictions: dict, rows: dict) -> None:
    """Truth vs prediction x-t images of test item 0, and nRMSE / correlation over time."""
    names = list(predictions)
    fig, axes = plt.subplots(2, len(names) + 1, figsize=(3.2 * (len(names) + 1), 6.4))
    test, _, _ = predictions[names[0]]
    extent = (float(test.x[0]), float(test.x[-1]), float(test.t[-1]), float(test.t[0]))
    vmax = float(test.u[0].abs().max())
    axes[0, 0].imshow(test.u[0], aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                      extent=extent)
    axes[0, 0].set(title="truth (solver)", xlabel="x", ylabel="t")
    for k, name in enumerate(names, start=1):
        case, pred, _ = predictions[name]
        ext = (float(case.x[0]), float(case.x[-1]), float(case.t[-1]), float(case.t[0]))
        axes[0, k].imshow(pred[0], aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                          extent=ext)
        axes[0, k].set(title=f"{name}\nnRMSE {rows[name]['nrmse']:.3f}", xlabel="x")
    draw_time_curves(axes[1, 0], axes[1, 1],
                     {name: (predictions[name][0].t[1:], rows[name]) for name in names})
    for ax in axes[1, 2:]:
        ax.axis("off")
    save_figure(fig, figure_path(NAME), dpi=110)


def main(quick: bool = True) -> dict:
    """Generate the sets, train and score every row, write JSON + PNG, return the result."""
    torch.set_num_threads(1)
    budget = QUICK if quick else FULL
    sets = Sets(budget)
    predictions = {}
    predictions.update(fno_predictions(sets, budget))
    rows = score(predictions)
    result = {
        "setting": "forced Burgers, nu=0.01, T=8, zero Dirichlet (WDNO); metrics on t_1..t_nt",
        "budget": budget.__dict__,
        "solver": {"seconds": sets.solver_seconds, "n": sets.test.n,
                   "seconds_per_trajectory": sets.solver_seconds / sets.test.n,
                   "seconds_2x": sets.solver_seconds_2x,
                   "seconds_per_trajectory_2x": sets.solver_seconds_2x / sets.test.n},
        "rows": rows,
    }
    write_json(NAME, result)
    plot(predictions, rows)
    for name, row in rows.items():
        print(f"{name:32s} MSE {row['mse']:.3e}  nRMSE {row['nrmse']:.4f}  "
              f"t(corr<0.8) {row['time_until_decorrelation']:.2f}  {row['seconds']:.2f} s")
    print(f"solver: {sets.solver_seconds:.2f} s for {sets.test.n} trajectories "
          f"(2x grid: {sets.solver_seconds_2x:.2f} s)")
    return result
