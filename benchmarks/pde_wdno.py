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
  absent, resumed when a ``train_state`` of that step is there; the quick run leaves these
  rows out when the checkpoints are absent, ``--full`` trains them);
- the FNO rows of ``benchmarks.pde_baselines`` (same test set; trained on 256 or 1024 forced
  trajectories);
- ``fno-step, WDNO's data``: the one-step FNO trained on WDNO's own training set (all its
  trajectories, unforced ones included, from the data cache; ``fno_steps`` Adam steps), the
  baseline on equal data (left out when the cache is absent);
- control: guided vs unguided forcing from u0 to the solver's u(T) of test problems, J
  checked with the solver; the true forcing's J for reference;
- wall time of ``simulate`` (all test items in one batch) vs the solver at equal resolution.

``variants``: every WDNO checkpoint measured while looking for what limits it (the ones
under ``runs/pde/`` that exist, see :data:`VARIANTS`), each on the forced test set and on
its unforced twin (the same initial states solved without forcing, the issue's setting),
one member and the mean of ``members`` members, with PDEBench's nRMSE and the space-time
relative L2 (||pred - truth|| / ||truth|| over the whole trajectory), and the FNO rows on
the same two sets.

``diagnostics`` of the bundled model, each a question about what limits it:

- fit or generalisation: the same error on training trajectories (forced ones, from the
  data cache) as on held-out ones;
- representation: the error of the clean wavelet round trip of the test trajectories;
- conditioning: the error when every test item gets another item's u0 (against the solver
  run with that wrong u0: how much u0 matters to the true trajectory);
- sampling: DDIM steps and eta;
- the denoiser alone: the error of its one-call estimate x̂₀ of clean test samples noised
  to diffusion time t (at t = 999 that is the conditional mean from the conditions only).

Run: ``python -m benchmarks.run pde_wdno [--full]``.
"""

from __future__ import annotations

import dataclasses
import json
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
    _timed_predict,
    draw_time_curves,
    fno_predictions,
    train_fnos,
)
from polydiff.apps.pde.config import PDEConfig  # noqa: E402
from polydiff.apps.pde.control import ControlSettings, control, objective  # noqa: E402
from polydiff.apps.pde.dataset import (  # noqa: E402
    BurgersData,
    coarsen,
    from_model_grid,
    to_model_grid,
)
from polydiff.apps.pde.evaluate import Prediction, predict, score  # noqa: E402
from polydiff.apps.pde.fno import FNOTrainConfig, train_fno  # noqa: E402
from polydiff.apps.pde.model import PDEModel, load_model  # noqa: E402
from polydiff.apps.pde.representation import known_mask  # noqa: E402
from polydiff.apps.pde.sampling import simulate_fields  # noqa: E402
from polydiff.apps.pde.train import read_cache, run_training  # noqa: E402
from polydiff.diffusion.config import load_config  # noqa: E402
from polydiff.physics.burgers import solve_burgers  # noqa: E402
from polydiff.physics.pde_data import Trajectories  # noqa: E402
from polydiff.physics.pde_metrics import nrmse, nrmse_spacetime  # noqa: E402
from polydiff.plotting import save_figure  # noqa: E402

NAME = "pde_wdno"
ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"wavelet": ROOT / "configs/pde/burgers_tiny.yaml",
           "physical": ROOT / "configs/pde/burgers_physical_tiny.yaml"}
DATA_CACHE = ROOT / "runs/pde/burgers_l1.safetensors"
VARIANTS = {  # name -> (folder under runs/pde/ or None for the bundled model, how it was made)
    "2000 steps (bundled before)": ("wdno_2k_bundled",
                                    "burgers_tiny.yaml, 2000 steps, constant lr 1e-3"),
    "6000 steps": ("wdno_6k", "burgers_tiny.yaml --train-steps 6000"),
    "6000 steps, epsilon-prediction": ("wdno_6k_eps", "burgers_tiny_eps.yaml (the 6000-step "
                                                      "recipe, epsilon instead of v)"),
    "6000 steps, bior2.4, time padded 8": ("wdno_6k_bior_pad", "burgers_tiny_bior_pad.yaml (the "
                                                               "6000-step recipe, bior2.4 "
                                                               "with layout.time_pad 8)"),
    "6000 + 500 annealed": ("ab_p0", "from the 6000-step state, 500 steps with the lr on a "
                                     "cosine to 0, EMA 0.99"),
    "6000 + 500 annealed, band weight 1": ("ab_p1", "the same, band_weight_power 1"),
    "6000 + 500 annealed, band weight 2": ("ab_p2", "the same, band_weight_power 2 (the "
                                                    "physical MSE)"),
    "6000 + 500 annealed, unforced x4": ("ab_r4", "the same, unforced_repeat 4"),
    "6000 + 5000 annealed, band weight 1, unforced x4": (
        "wdno_anneal", "burgers_tiny_anneal.yaml"),
    "+ 4000 warm restart at 3e-4": ("wdno_restart", "burgers_tiny_restart.yaml, from the "
                                                     "11000-step state"),
    "+ 4000 more at 2e-4": ("wdno_restart2", "burgers_tiny_restart2.yaml, from the "
                                             "15000-step state"),
    "+ 6000 more at 1.5e-4": ("wdno_restart3b", "burgers_tiny_restart3.yaml, from the "
                                                "19000-step state"),
    "+ 8000 more at 1.2e-4": ("wdno_restart4", "burgers_tiny_restart4.yaml, from the "
                                               "25000-step state"),
    "+ 8000 more at 1e-4": ("wdno_restart5", "burgers_tiny_restart5.yaml, from the "
                                             "33000-step state"),
    "+ 8000 more at 8e-5": ("wdno_restart6", "burgers_tiny_restart6.yaml, from the "
                                             "41000-step state"),
    "+ 16000 more at 8e-5": ("wdno_restart7", "burgers_tiny_restart7.yaml, from the "
                                              "49000-step state"),
    "+ 16000 more at 8e-5 (81 000 steps)": ("wdno_restart8", "burgers_tiny_restart8.yaml, "
                                                             "from the 65000-step state"),
    "+ 16000 more at 8e-5 (97 000 steps)": ("wdno_restart9", "burgers_tiny_restart9.yaml, "
                                                             "from the 81000-step state"),
    "+ 16000 more at 8e-5 (113 000 steps)": ("wdno_restart10", "burgers_tiny_restart10.yaml, "
                                                               "from the 97000-step state"),
    "+ 16000 more at 8e-5 (129 000 steps)": ("wdno_restart11", "burgers_tiny_restart11.yaml, "
                                                               "from the 113000-step state"),
    "+ 16000 more at 8e-5 (145 000 steps)": ("wdno_restart12", "burgers_tiny_restart12.yaml, "
                                                               "from the 129000-step state"),
    "+ 16000 more at 8e-5 (161 000 steps)": ("wdno_restart13", "burgers_tiny_restart13.yaml, "
                                                               "from the 145000-step state"),
    "6000 steps, width 48/96/96": ("wdno_6k_wide", "burgers_tiny_wide.yaml (the 6000-step "
                                                    "recipe, 4x the parameters)"),
    "6000 steps, 1000 trajectories": ("wdno_6k_n1000", "burgers_tiny_n1000.yaml (the 6000-step "
                                                       "recipe on a third of the data)"),
    "6000 steps, raw weights (no EMA)": ("wdno_6k_raw", "the 6000-step run's optimised "
                                                        "weights instead of their EMA (0.999)"),
    "6000 steps, timesteps drawn with an SNR cap of 5": (
        "wdno_6k_snrcap", "burgers_tiny_snrcap.yaml (the 6000-step recipe, timestep_snr_cap "
                          "5: fewer nearly clean training steps)"),
    "113 000 steps, raw weights (no EMA)": ("wdno_restart10_raw", "the 113 000-step run's "
                                                                  "optimised weights instead of "
                                                                  "their EMA"),
    "bundled": (None, "polydiff/weights/pde"),
}


@dataclass(frozen=True)
class Budget:
    n_test: int
    ablation_steps: int
    control_problems: int
    control_members: int
    steps: int
    members: int = 4
    fno_steps: int = 2000


# control on 16 problems: on 4 the mean J swung with the problems drawn (the 2000-step and
# the 25000-step models measured 0.0095 and 0.031 on 4; 0.073 and 0.059 on 16)
QUICK = Budget(n_test=32, ablation_steps=500, control_problems=16, control_members=4, steps=50)
FULL = Budget(n_test=128, ablation_steps=4000, control_problems=16, control_members=8, steps=50)


def unforced_twin(test: Trajectories, data: BurgersData) -> Trajectories:
    """The test set's initial states solved without forcing (forcing zeros, not None: the
    models are handed f = 0 as a known condition)."""
    u = solve_burgers(test.u[:, 0].double(), data.grid(0), nu=data.nu, forcing=None,
                      refine=data.refine).float()
    return Trajectories(u, test.x, test.t, forcing=torch.zeros_like(u), equation="burgers",
                        params=test.params)


def errors(pred: torch.Tensor, truth: torch.Tensor) -> dict:
    """PDEBench nRMSE and space-time relative L2 on t_1..t_nt of (N, nt + 1, nx) tensors."""
    pred, truth = torch.as_tensor(pred)[:, 1:], torch.as_tensor(truth)[:, 1:]
    return {"nrmse": nrmse(pred, truth), "relative_l2": nrmse_spacetime(pred, truth)}


def run_members(model: PDEModel, test: Trajectories, members: int, *, steps: int = 50,
                u0: torch.Tensor | None = None) -> torch.Tensor:
    """``members`` seeded runs on every test item (seeds 0..members-1): (M, N, nt + 1, nx).
    ``u0`` (N, nx) replaces the test set's initial states (the conditioning check)."""
    pad = torch.nn.functional.pad
    u0 = pad(test.u[:, 0] if u0 is None else u0, (1, 0))
    f = pad(test.forcing[:, :-1], (1, 0))
    out = []
    for seed in range(members):
        with torch.no_grad():
            fields = simulate_fields(model, u0, f, steps=steps,
                                     generator=torch.Generator().manual_seed(seed))
        out.append(from_model_grid(fields)[0])
    return torch.stack(out)


def variant_rows(sets: dict[str, Trajectories], budget: Budget) -> dict:
    """Every WDNO variant that exists, on each set: one member and the members' mean."""
    rows = {}
    for name, (folder, made) in VARIANTS.items():
        path = None if folder is None else ROOT / "runs/pde" / folder
        if path is not None and not (path / "polydiff.json").is_file():
            continue
        model = load_model(path, "cpu")
        row = {"checkpoint": folder or "bundled", "made": made}
        for set_name, test in sets.items():
            preds = run_members(model, test, budget.members, steps=budget.steps)
            row[set_name] = {"one member": errors(preds[0], test.u),
                             f"mean of {budget.members}": errors(preds.mean(0), test.u),
                             "member spread": errors(preds[0], preds.mean(0))["nrmse"]}
        rows[name] = row
    return rows


def training_items(n: int | None = None, *, forced_only: bool = True) -> Trajectories | None:
    """The first ``n`` (None: all) training trajectories of the bundled config on the base
    grid, forced ones only or all (from the data cache; None without it)."""
    if not DATA_CACHE.is_file():
        return None
    config = load_config(CONFIGS["wavelet"], PDEConfig)
    key = json.dumps(dataclasses.asdict(config.data), sort_keys=True)
    base = coarsen(read_cache(DATA_CACHE, key), config.data.finer)
    forced = base.f.flatten(1).abs().amax(1) > 0
    idx = (forced if forced_only else torch.ones_like(forced)).nonzero()[:n, 0]
    u = torch.cat([base.u0[idx, None], base.u[idx]], 1)[..., 1:]
    f = torch.cat([base.f[idx], base.f[idx, -1:]], 1)[..., 1:]
    grid = BurgersData().grid(0)
    return Trajectories(u, grid.x(), grid.t(), forcing=f, equation="burgers")


def denoiser_errors(model: PDEModel, test: Trajectories, times=(999, 700, 400, 100, 20)) -> dict:
    """nRMSE of the one-call estimate x̂₀ from clean test samples noised to time t (the
    forcing given), and its RMS per normalised u band."""
    layout, sched = model.config.layout, model.scheduler
    fields = to_model_grid(test.u, test.forcing)
    x0 = layout.encode(fields)
    mask = known_mask(layout, x0.shape, forcing_known=True)
    g = torch.Generator().manual_seed(0)
    out = {}
    for t in times:
        ab = sched.alphas_cumprod[t]
        x_t = torch.where(mask, x0, ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn(
            x0.shape, generator=g))
        with torch.no_grad():
            v = model.net(x_t, torch.full((len(x0),), t)).sample
        x0_hat = torch.where(mask, x0, ab.sqrt() * x_t - (1 - ab).sqrt() * v)
        dec = layout.decode(x0_hat)
        pred = torch.cat([fields.u0[:, None], dec.u], 1)[..., 1:]
        band = (x0_hat - x0)[:, layout.group("u")].pow(2).mean((0, 2, 3)).sqrt()
        out[str(t)] = {**errors(pred, test.u), "u_band_rms": band.tolist()}
    return out


def diagnostics(model: PDEModel, test: Trajectories, unforced: Trajectories,
                budget: Budget) -> dict:
    """The questions of the module docstring, answered for ``model``."""
    data = BurgersData()
    out: dict = {}
    train = training_items(test.n)
    if train is not None:
        out["fit: training items"] = errors(run_members(model, train, 1)[0], train.u)
    out["fit: held-out items"] = errors(run_members(model, test, 1)[0], test.u)
    layout = model.config.layout
    fields = to_model_grid(test.u, test.forcing)
    back = layout.decode(layout.encode(fields))
    out["representation: round trip max |error|"] = float((back.u - fields.u).abs().max())
    wrong = torch.roll(test.u[:, 0], 1, dims=0)
    for name, case in (("forced", test), ("unforced", unforced)):
        f = None if name == "unforced" else case.forcing.double()
        solver = solve_burgers(wrong.double(), data.grid(0), nu=data.nu, forcing=f,
                               refine=data.refine).float()
        out[f"conditioning ({name}): model with another item's u0"] = errors(
            run_members(model, case, 1, u0=wrong)[0], case.u)
        out[f"conditioning ({name}): solver with another item's u0"] = errors(solver, case.u)
    eta = model.config.sampling.eta
    for steps, e in ((10, 1.0), (50, 1.0), (200, 1.0), (50, 0.0), (200, 0.0)):
        model.config.sampling.eta = e
        out[f"sampling: {steps} steps, eta {e:g}"] = errors(
            run_members(model, test, 1, steps=steps)[0], test.u)
    model.config.sampling.eta = eta
    out["denoiser x0-hat from time t"] = denoiser_errors(model, test)
    return out


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


def plot_variants(result: dict) -> None:
    """``results/pde_wdno_variants.png``: relative L2 over the trajectory of every variant on
    the forced and the unforced test set, one member and the members' mean (goal: 0.10)."""
    variants = result["variants"]
    names = list(variants)
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(names) + 1.6))
    y = np.arange(len(names))
    bars = [("forced", "one member"), ("forced", "mean"), ("unforced", "one member"),
            ("unforced", "mean")]
    for k, (case, kind) in enumerate(bars):
        values = []
        for name in names:
            row = variants[name][case]
            key = kind if kind == "one member" else next(
                (c for c in row if c.startswith("mean of")), "one member")
            values.append(row[key]["relative_l2"])
        ax.barh(y + (k - 1.5) * 0.2, values, height=0.2, label=f"{case}, {kind}")
    ax.axvline(0.10, color="k", ls="--", lw=0.8, label="goal 0.10")
    ax.set(yticks=y, yticklabels=names, xscale="log",
           xlabel="relative L2 over the trajectory against the solver (held-out problems)")
    ax.invert_yaxis()
    ax.legend(fontsize=7)
    save_figure(fig, figure_path(NAME + "_variants"), dpi=110)


def fno_row(case: Trajectories, pred: torch.Tensor, seconds: float) -> tuple[dict, Prediction]:
    """An FNO's row (scores, seconds) and its Prediction on the test set ``case``."""
    p = Prediction(pred.numpy(), case.u.numpy(), case.t.numpy(), case.x.numpy())
    row = {**score(p), "seconds": seconds, "seconds_per_trajectory": seconds / case.n}
    row.pop("times")
    return row, p


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
        folder = ROOT / f"runs/pde/bench_{domain}_{budget.ablation_steps}"
        if quick and not (folder / "polydiff.json").is_file():
            print(f"{name}: left out (no {folder}; the --full run trains it)")
            continue
        m = ablation_model(domain, budget.ablation_steps)
        preds[name], seconds[name] = timed_prediction(m, tests[0], budget.steps)
    rows = {name: {**score(p), "seconds": seconds[name],
                   "seconds_per_trajectory": seconds[name] / p.pred.shape[0]}
            for name, p in preds.items()}
    for row in rows.values():
        row.pop("times")
    fno_budget = FNO_QUICK if quick else FNO_FULL
    sets = Sets(fno_budget)  # same seed and size: the same base test problems
    fnos = dict(zip(("fno-step", "fno-trajectory"), train_fnos(sets, fno_budget)))
    made = {name: f"pde_baselines' {name} row" for name in fnos}
    for name, (case, pred, secs) in fno_predictions(sets, fno_budget,
                                                    tuple(fnos.values())).items():
        rows[name], preds[name] = fno_row(case, pred, secs)
    wdno_data = training_items(forced_only=False)
    if wdno_data is not None:
        name = "fno-step, WDNO's data"
        fnos[name] = train_fno(wdno_data, FNOTrainConfig(
            task="step", width=32, modes=(12,), steps=budget.fno_steps, batch_size=64),
            progress=True).model
        made[name] = (f"one-step FNO, {budget.fno_steps} steps on WDNO's {wdno_data.n} "
                      "training trajectories")
        rows[name], preds[name] = fno_row(tests[0], *_timed_predict(fnos[name], tests[0]))
    unforced = unforced_twin(tests[0], data)
    variants = variant_rows({"forced": tests[0], "unforced": unforced}, budget)
    for name, fno in fnos.items():
        variants[name] = {"checkpoint": None, "made": made[name]}
        for set_name, case in (("forced", tests[0]), ("unforced", unforced)):
            pred, _ = _timed_predict(fno, case)
            variants[name][set_name] = {"one member": errors(pred, case.u)}
    diag = diagnostics(model, tests[0], unforced, budget)
    ctrl = control_rows(model, budget)
    result = {
        "setting": "forced Burgers, nu=0.01, T=8, zero Dirichlet (WDNO); metrics on t_1..t_nt; "
                   f"{budget.n_test} test trajectories (seed {TEST_SEED}); DDIM {budget.steps} "
                   "steps, eta 1, one member",
        "budget": budget.__dict__,
        "solver_seconds": {f"{2**k}x": s for k, s in solver_seconds.items()},
        "rows": rows,
        "variants": variants,
        "diagnostics": diag,
        "control": ctrl,
    }
    write_json(NAME, result)
    plot(preds, rows, ctrl)
    plot_variants(result)
    for name, row in rows.items():
        print(f"{name:36s} MSE {row['mse']:.3e}  nRMSE {row['nrmse']:.4f}  "
              f"t(corr<0.8) {row['time_until_decorrelation']:.2f}  {row['seconds']:.2f} s")
    for name, row in variants.items():
        mean = f"mean of {budget.members}"
        cells = "  ".join(f"{k} {row[k]['one member']['nrmse']:.3f}/"
                          f"{row[k]['one member']['relative_l2']:.3f} mean "
                          f"{row[k].get(mean, row[k]['one member'])['nrmse']:.3f}"
                          for k in ("forced", "unforced"))
        print(f"{name:50s} {cells}")
    for k, s in solver_seconds.items():
        print(f"solver {2**k}x grid: {s:.2f} s for {budget.n_test} trajectories")
    for k, v in ctrl.items():
        print(f"control {k:14s} J {v['objective']:.4g}  misfit {v['misfit']:.4g}  "
              f"energy {v['energy']:.4g}")
    return result
