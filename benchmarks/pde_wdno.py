"""pde benchmark: WDNO against its physical-domain ablation, FNO and the numerical solver.

One held-out solver test set (``benchmarks.pde_baselines``: WDNO's forced Burgers, seed
1234) on the base grid (31 x 33) and the same problems on 2x (63 x 65) and 4x (127 x 129)
grids. Rows, scored on the future states t_1..t_nt with MSE, PDEBench nRMSE and the time
until the Pearson correlation drops below 0.8:

- ``wdno (bundled)``: the bundled checkpoint, DDIM 50 steps, eta 1, one member;
- ``wdno + superres 2x`` / ``4x``: the bundled super-resolution model on top (4x is
  zero-shot: the SR model was trained on the 32 <- 16 and 64 <- 32 levels only);
- equal-budget ablation: WDNO and the physical-domain model trained from the same data with
  the same optimiser for ``ablation_steps`` steps (``configs/pde/burgers_tiny.yaml`` vs
  ``burgers_physical_tiny.yaml``), checkpoints under ``runs/pde/bench_*`` (trained here when
  absent, resumed when a ``train_state`` of that step is there);
- the FNO rows of ``benchmarks.pde_baselines`` (same test set);
- control: guided vs unguided forcing from u0 to the solver's u(T) of test problems, J
  checked with the solver; the true forcing's J for reference;
- wall time of ``simulate`` (all test items in one batch) vs the solver at equal resolution.

Run: ``python -m benchmarks.run pde_wdno [--full]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import figure_path, write_json  # noqa: E402
from benchmarks.pde_baselines import FULL as FNO_FULL  # noqa: E402
from benchmarks.pde_baselines import QUICK as FNO_QUICK  # noqa: E402
from benchmarks.pde_baselines import (  # noqa: E402
    TEST_SEED,
    Sets,
    _solve,
    draw_time_curves,
    fno_predictions,
)
from polydiff.apps.pde.config import PDEConfig  # noqa: E402
from polydiff.apps.pde.control import ControlSettings, control, objective  # noqa: E402
from polydiff.apps.pde.dataset import BurgersData  # noqa: E402
from polydiff.apps.pde.evaluate import Prediction, predict, score  # noqa: E402
from polydiff.apps.pde.model import PDEModel, load_model  # noqa: E402
from polydiff.apps.pde.train import run_training  # noqa: E402
from polydiff.diffusion.config import load_config  # noqa: E402
from polydiff.plotting import save_figure  # noqa: E402

NAME = "pde_wdno"
ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"wavelet": ROOT / "configs/pde/burgers_tiny.yaml",
           "physical": ROOT / "configs/pde/burgers_physical_tiny.yaml"}
DATA_CACHE = ROOT / "runs/pde/burgers_l1.safetensors"


@dataclass(frozen=True)
class Budget:
    n_test: int
    ablation_steps: int
    control_problems: int
    control_members: int
    steps: int


QUICK = Budget(n_test=32, ablation_steps=500, control_problems=4, control_members=4, steps=50)
FULL = Budget(n_test=128, ablation_steps=4000, control_problems=16, control_members=8, steps=50)


def timed_prediction(model: PDEModel, test, steps: int) -> tuple[Prediction, float]:
    start = time.perf_counter()
    pred = predict(model, test, steps=steps, seed=0, batch=test.n)
    return pred, time.perf_counter() - start


def ablation_model(domain: str, steps: int) -> PDEModel:
    """The equal-budget model of ``domain`` (trained here if its checkpoint is missing)."""
    out = ROOT / f"runs/pde/bench_{domain}_{steps}"
    if not (out / "polydiff.json").is_file():
        config = load_config(CONFIGS[domain], PDEConfig)
        config.train.steps, config.train.out_dir = steps, str(out)
        run_training(config, data_file=DATA_CACHE)
    return load_model(out, "cpu")


def control_rows(model: PDEModel, budget: Budget) -> dict:
    """Mean solver-checked J, misfit and energy of guided / unguided / true forcings."""
    data = BurgersData()
    test, _ = _solve(data, 0, budget.control_problems, TEST_SEED + 1)
    grid = data.grid(0)
    dt, dx, alpha = grid.t_final / data.nt, grid.dx, ControlSettings().alpha
    rows: dict[str, dict[str, list]] = {k: {"misfit": [], "energy": [], "objective": []}
                                        for k in ("guided", "unguided", "true forcing")}
    for i in range(test.n):
        u0, target = test.u[i, 0].numpy(), test.u[i, -1].numpy()
        for key, guided in (("guided", True), ("unguided", False)):
            res = control(model, u0, target, members=budget.control_members, steps=budget.steps,
                          seed=i, settings=ControlSettings(guided=guided))
            best = res.attrs["best_member"]
            for name in ("misfit", "energy", "objective"):
                rows[key][name].append(float(res.extra[name][1][best]))
        m, e = objective(test.u[i:i + 1].numpy(), test.forcing[i:i + 1].numpy(), target, dt, dx,
                         alpha)
        for name, v in (("misfit", m[0]), ("energy", e[0]), ("objective", m[0] + e[0])):
            rows["true forcing"][name].append(float(v))
    return {k: {name: float(np.mean(v)) for name, v in r.items()} for k, r in rows.items()}


def plot(preds: dict[str, Prediction], rows: dict, ctrl: dict) -> None:
    base = [k for k in preds if preds[k].pred.shape[-1] == 31]
    fig, axes = plt.subplots(2, len(base) + 1, figsize=(3.3 * (len(base) + 1), 6.6))
    ref = preds[base[0]]
    vmax = float(np.abs(ref.truth[0]).max())
    extent = (float(ref.x[0]), float(ref.x[-1]), float(ref.t[-1]), float(ref.t[0]))
    axes[0, 0].imshow(ref.truth[0], aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                      extent=extent)
    axes[0, 0].set(title="solver (test item 0)", xlabel="x", ylabel="t")
    for ax, name in zip(axes[0, 1:], base):
        ax.imshow(preds[name].pred[0], aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                  extent=extent)
        ax.set(title=f"{name}\nnRMSE {rows[name]['nrmse']:.3f}", xlabel="x")
    draw_time_curves(axes[1, 0], axes[1, 1],
                     {name: (p.t[1:], rows[name]) for name, p in preds.items()})
    if len(axes[1]) > 2:
        names = list(ctrl)
        axes[1, 2].bar(names, [ctrl[k]["objective"] for k in names])
        axes[1, 2].set(ylabel="control objective J (solver)", yscale="log")
        axes[1, 2].tick_params(axis="x", labelsize=7)
    for ax in axes[1, 3:]:
        ax.axis("off")
    save_figure(fig, figure_path(NAME), dpi=110)


def main(quick: bool = True) -> dict:
    """Score every row, write ``results/pde_wdno.json`` and ``.png``, return the result."""
    torch.set_num_threads(1)
    budget = QUICK if quick else FULL
    data = BurgersData()
    tests, solver_seconds = {}, {}
    for level in (0, 1, 2):
        tests[level], solver_seconds[level] = _solve(data, level, budget.n_test, TEST_SEED)
    model = load_model(None, "cpu")
    preds, seconds = {}, {}
    for level, name in ((0, "wdno (bundled)"), (1, "wdno + superres 2x"),
                        (2, "wdno + superres 4x (zero-shot)")):
        preds[name], seconds[name] = timed_prediction(model, tests[level], budget.steps)
    for domain in ("wavelet", "physical"):
        name = f"{domain} domain, {budget.ablation_steps} steps"
        m = ablation_model(domain, budget.ablation_steps)
        preds[name], seconds[name] = timed_prediction(m, tests[0], budget.steps)
    rows = {name: {**score(p), "seconds": seconds[name],
                   "seconds_per_trajectory": seconds[name] / p.pred.shape[0]}
            for name, p in preds.items()}
    for row in rows.values():
        row.pop("times")
    fno_budget = FNO_QUICK if quick else FNO_FULL
    sets = Sets(fno_budget)  # same seed and size: the same base test problems
    for name, (case, pred, secs) in fno_predictions(sets, fno_budget).items():
        p = Prediction(pred.numpy(), case.u.numpy(), case.t.numpy(), case.x.numpy())
        rows[name] = {**score(p), "seconds": secs, "seconds_per_trajectory": secs / case.n}
        rows[name].pop("times")
        preds[name] = p
    ctrl = control_rows(model, budget)
    result = {
        "setting": "forced Burgers, nu=0.01, T=8, zero Dirichlet (WDNO); metrics on t_1..t_nt; "
                   f"{budget.n_test} test trajectories (seed {TEST_SEED}); DDIM {budget.steps} "
                   "steps, eta 1, one member",
        "budget": budget.__dict__,
        "solver_seconds": {f"{2**k}x": s for k, s in solver_seconds.items()},
        "rows": rows,
        "control": ctrl,
    }
    write_json(NAME, result)
    plot(preds, rows, ctrl)
    for name, row in rows.items():
        print(f"{name:36s} MSE {row['mse']:.3e}  nRMSE {row['nrmse']:.4f}  "
              f"t(corr<0.8) {row['time_until_decorrelation']:.2f}  {row['seconds']:.2f} s")
    for k, s in solver_seconds.items():
        print(f"solver {2**k}x grid: {s:.2f} s for {budget.n_test} trajectories")
    for k, v in ctrl.items():
        print(f"control {k:14s} J {v['objective']:.4g}  misfit {v['misfit']:.4g}  "
              f"energy {v['energy']:.4g}")
    return result
