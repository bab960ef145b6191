"""pde benchmark: PDE-Refiner against its MSE-trained twin (and WDNO and FNO on Burgers).

Kuramoto–Sivashinsky (the setting of ``configs/pde/refiner_ks_tiny.yaml``: L = 64, model
step 0.8, states of 64 points from a 128-point ETDRK4 solve) on held-out seeds, rolled out
for 640 saved intervals (128 time units, 160 model steps) from the state after the burn-in:

- ``PDE-Refiner``: K = 3 refinement steps (4 network calls per step);
- ``MSE U-Net``: the same network and optimiser with K = 0 (1 call per step);
- each as trained (``conserve_mean`` off, as in the paper) and with ``conserve_mean``
  (each state shifted to the mean of the one before: KS conserves it exactly);
- when both are there, the same two configs trained for 8000 steps instead of 4000, and
  each of those trained on for 4000 more (12000 steps); and a refiner trained 8000 steps
  with the first call drawn for half the training items (``first_step_share: 0.5``).

Forced Burgers (WDNO's setting, the test set of ``benchmarks.pde_baselines``: seed 1234,
31 x 33): the refiner and MSE twins of ``refiner_burgers_tiny.yaml``, the bundled WDNO
model (DDIM 50 steps, one member) and the two FNO baselines of ``pde_baselines``.

Per row: MSE and nRMSE over the trajectory, nRMSE and Pearson correlation per time, the
time until the mean correlation falls below 0.8 (PDE-Refiner's headline metric, the same
``evaluate_predictions`` as ``polydiff pde evaluate``), the energy spectrum of the last
state against the solver's, and seconds per trajectory (the solver's too). For KS the gain
in high-correlation time of PDE-Refiner over the MSE model (the paper: about 30 %).

``refinement``: why the refiner does (not) beat its MSE twin, per model on held-out KS
pairs: at each refinement index k the noise std that step works at, and the RMS error of
the network's estimate of the (normalised) one-step target from the true target noised to
that level; a refinement step can only add information where its error is below its noise
level. Also the one-step relative error of the first call alone (k = K, the MSE-like
prediction) and after all K refinement steps.

Models are read from ``runs/pde/<config name>/`` (trained with the configs, see their
headers); a missing one is trained here first. Run: ``python -m benchmarks.run pde_refiner``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.common import figure_path, write_json
from benchmarks.pde_baselines import FULL as FNO_FULL
from benchmarks.pde_baselines import QUICK as FNO_QUICK
from benchmarks.pde_baselines import TEST_SEED, Sets, draw_time_curves, fno_predictions
from benchmarks.pde_wdno import run_members, timed_prediction
from polydiff.apps.pde.config import RefinerConfig
from polydiff.apps.pde.model import RefinerModel, load_model, load_refiner
from polydiff.apps.pde.refiner import RefinerDenoiser, predict, step
from polydiff.apps.pde.refiner_data import condition, make_trajectories, pairs, targets, to_network
from polydiff.apps.pde.train import run_refiner_training
from polydiff.diffusion.config import load_config
from polydiff.physics.kuramoto_sivashinsky import energy_spectrum, solve_ks
from polydiff.physics.pde_metrics import evaluate_predictions
from polydiff.plotting import pyplot, save_figure

NAME = "pde_refiner"
ROOT = Path(__file__).resolve().parent.parent
KS_MODELS = {"PDE-Refiner": "refiner_ks_tiny", "MSE U-Net": "mse_ks_tiny"}
KS_LONGER = {  # label -> (refiner folder, MSE twin folder) under runs/pde/
    # `polydiff pde train --config configs/pde/<config>.yaml -o runs/pde/<config>_8k
    #  --train-steps 8000` for both configs
    "8000 steps": ("refiner_ks_tiny_8k", "mse_ks_tiny_8k"),
    # each resumed from its own 8000-step train_state with 4000 more steps at peak lr 5e-4,
    # cosine to 0 (the configs with `steps: 12000, warmup_steps: 8000, lr: 5.0e-4`)
    "12000 steps": ("refiner_ks_tiny_12k", "mse_ks_tiny_12k"),
    # the refiner with first_step_share 0.5 (k = K for half the items, the paper's 1/4 for
    # K = 3) for 8000 steps (configs/pde/refiner_ks_share50.yaml) against the 8000-step twin
    "8000 steps, first call on half the items": ("refiner_ks_share50_8k", "mse_ks_tiny_8k"),
}
BURGERS_MODELS = {"PDE-Refiner": "refiner_burgers_tiny", "MSE U-Net": "mse_burgers_tiny"}


@dataclass(frozen=True)
class Budget:
    n_test: int          # held-out KS trajectories (Burgers: pde_baselines' test set)
    ks_nt: int           # saved intervals of a KS test trajectory (0.2 each)
    wdno_steps: int      # DDIM steps of the WDNO row
    baselines: bool      # the WDNO and FNO rows on Burgers


QUICK = Budget(n_test=32, ks_nt=640, wdno_steps=50, baselines=True)
FULL = Budget(n_test=128, ks_nt=640, wdno_steps=50, baselines=True)


def refiner_model(name: str) -> RefinerModel:
    """``runs/pde/<name>`` (trained here from ``configs/pde/<name>.yaml`` if missing)."""
    folder = ROOT / "runs/pde" / name
    if not (folder / "polydiff.json").is_file():
        config = load_config(ROOT / f"configs/pde/{name}.yaml", RefinerConfig)
        config.train.out_dir = str(folder)
        run_refiner_training(config)
    return load_refiner(folder, "cpu")


def score_row(pred: torch.Tensor, truth: torch.Tensor, times: torch.Tensor,
              seconds: float) -> dict:
    """Metrics on the predicted states after t_0, the last state's spectrum, timings."""
    metrics = evaluate_predictions(pred[:, 1:], truth[:, 1:], times[1:])
    return {**metrics, "seconds": seconds, "seconds_per_trajectory": seconds / len(pred),
            "spectrum_last": energy_spectrum(pred[:, -1]).tolist()}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def ks_models() -> tuple[dict[str, RefinerModel], dict[str, str]]:
    """The KS rows' models: the tiny configs' (trained here if missing), and each longer pair
    of :data:`KS_LONGER` whose two folders under ``runs/pde/`` both exist (a folder already
    loaded is not loaded twice). Also each refiner row's MSE twin row."""
    models = {name: refiner_model(cfg) for name, cfg in KS_MODELS.items()}
    twins, names = {"PDE-Refiner": "MSE U-Net"}, {}
    for label, folders in KS_LONGER.items():
        paths = [ROOT / "runs/pde" / folder for folder in folders]
        if not all((path / "polydiff.json").is_file() for path in paths):
            continue
        row = []
        for base, path in zip(KS_MODELS, paths):
            if path not in names:
                names[path] = f"{base}, {label}"
                models[names[path]] = load_refiner(path, "cpu")
            row.append(names[path])
        twins[row[0]] = row[1]
    return models, twins


def gains(rows: dict, twins: dict[str, str]) -> dict:
    """High-correlation time of each PDE-Refiner row over its MSE twin's, minus 1 (each also
    with the mean conserved)."""
    out = {}
    for refiner, twin in twins.items():
        for suffix in ("", " + mean conserved"):
            if refiner + suffix in rows and twin + suffix in rows:
                mse = rows[twin + suffix]["time_until_decorrelation"]
                out[refiner + suffix] = (rows[refiner + suffix]["time_until_decorrelation"] / mse
                                         - 1 if mse > 0 else None)
    return out


@torch.no_grad()
def refinement_diagnostic(model: RefinerModel, test, count: int = 256) -> dict:
    """Noise std and denoising error per refinement index k, and one-step errors (see the
    module docstring), on ``count`` (state, next state) pairs of ``test``."""
    c = model.config
    u_now, u_next, f_now, f_next = (p[:count] for p in pairs(c, test))
    if c.ks is not None:
        f_now = f_next = None
    y = to_network(c, (targets(c, u_now, u_next) / c.scales.out)[:, None].float())
    cond = condition(c, u_now, f_now, f_next)
    denoiser = RefinerDenoiser(model.net, cond, c.refinement_steps)
    g = torch.Generator().manual_seed(0)
    levels = []
    first = None
    for k in range(c.refinement_steps + 1):
        ab = model.scheduler.alphas_cumprod[k].to(torch.float32)
        noise = torch.randn(y.shape, generator=g)
        y_k = ab.sqrt() * y + (1 - ab).sqrt() * noise if ab > 0 else torch.zeros_like(y)
        y_hat = ab.sqrt() * y_k - (1 - ab).sqrt() * denoiser(y_k, torch.full((len(y),), k))
        err = float((y_hat - y).pow(2).mean().sqrt())
        levels.append({"k": k, "noise_std": float((1 - ab).sqrt()), "estimate_rms_error": err})
        if k == c.refinement_steps:
            first = y_hat
    rel = lambda pred: float(((pred - y).flatten(1).norm(dim=1)  # noqa: E731
                              / y.flatten(1).norm(dim=1)).mean())
    refined = step(model, u_now.float(), f_now, f_next, torch.Generator().manual_seed(0))
    change = to_network(c, (targets(c, u_now, refined) / c.scales.out)[:, None].float())
    return {"target_rms": float(y.pow(2).mean().sqrt()), "levels": levels,
            "one_step_relative_error_first_call": rel(first),
            "one_step_relative_error_refined": rel(change)}


def ks_part(budget: Budget) -> tuple[dict, dict]:
    """KS rows (each model as trained, and with ``conserve_mean``) and the plotted series."""
    models, twins = ks_models()
    config = next(iter(models.values())).config
    test = make_trajectories(config, n=budget.n_test, nt=budget.ks_nt, seed=TEST_SEED)
    grid = config.ks.grid(budget.ks_nt)
    # the solver over the same horizon from the test states (spectrally interpolated back
    # onto its grid), without the burn-in
    u0 = torch.fft.irfft(torch.fft.rfft(test.u[:, 0].double()), n=grid.nx) * config.ks.refine
    _, solver_seconds = timed(lambda: solve_ks(u0, grid))
    rows, preds, truth, refinement = {}, {}, None, {}
    for base, model in models.items():
        for conserve in (False, True):
            model.config.conserve_mean = conserve
            name = base + (" + mean conserved" if conserve else "")
            (pred, truth), seconds = timed(lambda m=model: predict(m, test, seed=0))
            times = torch.arange(pred.shape[1], dtype=torch.float64) * model.config.step_dt
            rows[name] = score_row(pred, truth, times, seconds)
            rows[name]["network_calls_per_step"] = model.config.refinement_steps + 1
            preds[name] = pred
        model.config.conserve_mean = False
        refinement[base] = refinement_diagnostic(model, test)
    result = {
        "setting": f"KS, L = {config.ks.length}, {config.ks.nx} points (every "
                   f"{config.ks.refine}th of an ETDRK4 solve), model step {config.step_dt}, "
                   f"{budget.n_test} held-out trajectories (seed {TEST_SEED}) of "
                   f"{budget.ks_nt * config.ks.dt:g} time units",
        "solver_seconds_per_trajectory": solver_seconds / budget.n_test,
        "solver_spectrum_last": energy_spectrum(truth[:, -1]).tolist(),
        "rows": rows,
        "high_correlation_time_gain": gains(rows, twins),
        "mse_twin": twins,
        "refinement": refinement,
    }
    shown = {k: v for k, v in preds.items() if k in ("PDE-Refiner", "MSE U-Net")}
    return result, {"truth": truth, "preds": shown, "times": times, "extent_x": config.ks.length}


def burgers_part(budget: Budget) -> tuple[dict, dict]:
    """Burgers rows on pde_baselines' held-out set (forced, seed 1234; its size)."""
    fno_budget = FNO_QUICK if budget is QUICK else FNO_FULL
    sets = Sets(fno_budget)
    test = sets.test
    rows, times = {}, test.t
    for name, cfg in BURGERS_MODELS.items():
        model = refiner_model(cfg)
        (pred, truth), seconds = timed(lambda m=model: predict(m, test, seed=0))
        rows[name] = score_row(pred, truth, times, seconds)
    if budget.baselines:
        wdno_model = load_model(None, "cpu")
        wdno, seconds = timed_prediction(wdno_model, test, budget.wdno_steps)
        rows["WDNO (bundled)"] = score_row(torch.as_tensor(wdno.pred), test.u, times, seconds)
        members, seconds = timed(lambda: run_members(wdno_model, test, 4,
                                                     steps=budget.wdno_steps))
        rows["WDNO (bundled), mean of 4 members"] = score_row(members.mean(0), test.u, times,
                                                               seconds)
        for name, (case, pred, secs) in fno_predictions(sets, fno_budget).items():
            if case is test:  # the zero-shot 2x row is pde_baselines' business
                rows[name] = score_row(pred, test.u, times, secs)
    result = {"setting": "forced Burgers, nu = 0.01, T = 8, zero Dirichlet (WDNO), 31 x 33, "
                         f"{test.n} held-out trajectories (seed {TEST_SEED}, pde_baselines' "
                         "test set)",
              "solver_seconds_per_trajectory": sets.solver_seconds / test.n,
              "solver_spectrum_last": energy_spectrum(test.u[:, -1]).tolist(), "rows": rows}
    return result, {"times": times}


def plot(ks: dict, ks_plot: dict, burgers: dict, burgers_plot: dict) -> None:
    """KS x-t images of test item 0; per-time curves and last-state spectra of both parts."""
    plt = pyplot()
    fig, axes = plt.subplots(3, 3, figsize=(12, 11))
    truth, preds, times = ks_plot["truth"], ks_plot["preds"], ks_plot["times"]
    extent = (0.0, ks_plot["extent_x"], float(times[-1]), 0.0)
    for ax, (title, field) in zip(axes[0], [("KS solver", truth[0])]
                                  + [(k, v[0]) for k, v in preds.items()]):
        ax.imshow(field, aspect="auto", cmap="RdBu_r", vmin=-3, vmax=3, extent=extent)
        ax.set(title=f"{title} (test item 0)", xlabel="x", ylabel="t")
    for row, part, t in ((1, ks, times), (2, burgers, burgers_plot["times"])):
        draw_time_curves(axes[row, 0], axes[row, 1],
                         {k: (t[1:].numpy(), r) for k, r in part["rows"].items()})
        ax = axes[row, 2]
        ax.semilogy(part["solver_spectrum_last"], "k", lw=2, label="solver")
        for name, r in part["rows"].items():
            ax.semilogy(r["spectrum_last"], label=name, lw=1)
        ax.set(xlabel="mode", ylabel="energy of the last state", ylim=(1e-14, None))
        ax.legend(fontsize=6)
    axes[1, 0].set_title("Kuramoto-Sivashinsky")
    axes[2, 0].set_title("forced Burgers")
    save_figure(fig, figure_path(NAME), dpi=100)


def main(quick: bool = True) -> dict:
    """Score both parts, write ``results/pde_refiner.json`` and ``.png``, return the result."""
    torch.set_num_threads(1)
    budget = QUICK if quick else FULL
    ks, ks_plot = ks_part(budget)
    burgers, burgers_plot = burgers_part(budget)
    result = {"budget": budget.__dict__, "ks": ks, "burgers": burgers}
    write_json(NAME, result)
    plot(ks, ks_plot, burgers, burgers_plot)
    for part in ("ks", "burgers"):
        for name, row in result[part]["rows"].items():
            print(f"{part:8s}{name:28s} nRMSE {row['nrmse']:.4f}  t(corr<0.8) "
                  f"{row['time_until_decorrelation']:.2f}  {row['seconds_per_trajectory']:.3f} "
                  "s/trajectory")
        print(f"{part:8s}solver {result[part]['solver_seconds_per_trajectory']:.3f} "
              "s/trajectory")
    for name, diag in ks["refinement"].items():
        steps = "  ".join(f"k={lv['k']}: noise {lv['noise_std']:.2g} error "
                          f"{lv['estimate_rms_error']:.2g}" for lv in diag["levels"])
        print(f"KS {name:28s} one step: first call {diag['one_step_relative_error_first_call']:.3g}"
              f", refined {diag['one_step_relative_error_refined']:.3g}; {steps}")
    for name, gain in ks["high_correlation_time_gain"].items():
        if gain is not None:
            print(f"KS high-correlation time: {name} {gain:+.1%} over its MSE twin (paper: "
                  "about +30 %)")
    return result
