"""``polydiff pde ...``: generate, train, simulate, control, evaluate; and the demo.

Argument handling only: the work is done by the module named after each command
(:mod:`~polydiff.apps.pde.generate`, :mod:`~polydiff.apps.pde.train`, ...). This module
imports neither torch nor numpy at import time, so ``polydiff pde --help`` and argument
errors answer at once; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from polydiff.apps.contract import (
    DemoResult,
    Outputs,
    add_eval_args,
    add_members,
    add_number,
    add_output,
    add_runtime_args,
    add_steps,
    add_train_args,
    apply_train_args,
    default_json,
    progress_enabled,
    report,
    write_json,
)
from polydiff.runtime import UserError

if TYPE_CHECKING:
    import torch

EQUATIONS = ("burgers", "burgers-periodic", "advection", "ns2d", "ks")
"""The equations of ``generate`` (the keys of ``generate.EQUATIONS``, named here so that
``--help`` needs no torch)."""

SUFFIXES = (".h5", ".hdf5", ".nc")


def register(subparsers, name: str, help_text: str) -> None:
    """Add ``polydiff pde`` and its sub-commands."""
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    sub = p.add_subparsers(dest="pde_command", metavar="COMMAND", required=True)
    _add_generate(sub)
    _add_train(sub)
    _add_simulate(sub)
    _add_control(sub)
    _add_evaluate(sub)


# ================================================================================ parsers
def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="solver trajectories as PDEBench HDF5 or NetCDF",
                       description="Solve seeded random problems of one equation and write "
                                   "them as a PDEBench-layout HDF5 (.h5) or NetCDF (.nc) file.")
    p.add_argument("--equation", required=True, choices=EQUATIONS, help="the equation")
    add_number(p, "--n", kind=int, lo=1, hi=10**6, default=16, help="number of trajectories")
    add_number(p, "--nx", kind=int, lo=4, hi=10**6,
               help="grid points per side (default: the equation's)")
    add_number(p, "--nt", kind=int, lo=2, hi=10**6,
               help="saved times including t = 0 (default: the equation's)")
    add_number(p, "--t-final", lo=0, lo_open=True, hi=1e4,
               help="final time (default: the equation's)")
    add_number(p, "--nu", lo=0, lo_open=True, hi=10,
               help="viscosity, burgers* and ns2d (default: 0.01; ns2d 0.001)")
    add_number(p, "--beta", lo=-100, hi=100, help="advection speed, advection (default: 1)")
    add_number(p, "--refine", kind=int, lo=1, hi=1000,
               help="burgers*: the solver's internal grid refinement (default: from the "
                    "cell Peclet number); ks: solve on refine x nx points, keep every "
                    "refine-th (default 1)")
    add_output(p, "data file: .h5/.hdf5 (PDEBench layout) or .nc")
    add_runtime_args(p, model=False)
    p.set_defaults(func=run_generate)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a WDNO, super-resolution or PDE-Refiner model "
                                     "from a config",
                       description="Solve the config's training data (or read --data-cache), "
                                   "fit the normalisation and train; runs under torchrun too. "
                                   "A config with 'kind: refiner' trains PDE-Refiner (or, with "
                                   "refinement_steps: 0, its MSE one-step twin).")
    add_train_args(p, "pde", data_cache="WDNO configs: safetensors cache of the solver data: "
                                        "read when it exists (it must hold the config's "
                                        "data), else written")
    p.set_defaults(func=run_train)


def _add_problem_args(p: argparse.ArgumentParser, equations: tuple[str, ...] = ("burgers",),
                      ) -> None:
    """Arguments shared by simulate and control."""
    p.add_argument("--equation", default="burgers", choices=equations,
                   help="the equation (default: burgers; ks, Kuramoto-Sivashinsky, with "
                        "--method refiner)" if len(equations) > 1 else
                   "the equation the models serve (default: burgers)")
    p.add_argument("--init", type=Path, default=None,
                   help="initial state (nx,) as .npy/.nc/.h5 (default: drawn with --seed)")
    add_number(p, "--nx", kind=int, lo=1, hi=10**6,
               help="interior grid points: 31 (the bundled model's base grid), or 63, 127, 255 "
                    "through super-resolution (default: the base grid, or the --init length)")
    add_steps(p, None, help="reverse diffusion (sampling) steps (default: the model's, 50)")
    p.add_argument("--superres-model", type=Path, default=None, metavar="DIR",
                   help="super-resolution checkpoint (default: superres/ in the --model folder, "
                        "else the bundled one)")
    add_runtime_args(p)


def _add_simulate(sub) -> None:
    p = sub.add_parser("simulate", help="trajectories from an initial state by WDNO or "
                                        "PDE-Refiner",
                       description="Sample whole trajectories (u, and the forcing when not "
                                   "given) from an initial state with the WDNO model (Burgers), "
                                   "or roll PDE-Refiner out step by step (--method refiner: "
                                   "Kuramoto-Sivashinsky or Burgers; each step refined by "
                                   "denoising).")
    p.add_argument("--method", default="wdno", choices=("wdno", "refiner"),
                   help="wdno (default) or refiner (PDE-Refiner; --model takes a refiner "
                        "checkpoint, default the bundled one of --equation)")
    _add_problem_args(p, ("burgers", "ks"))
    add_number(p, "--t-final", lo=0, lo_open=True, hi=1e5,
               help="refiner, ks: simulated time, rounded up to whole model steps (default: "
                    "128, the PDE-Refiner test horizon); Burgers runs the model's grid")
    p.add_argument("--forcing", type=Path, default=None,
                   help="forcing (nt + 1, nx) as .npy/.nc/.h5 (default: none, f = 0)")
    add_members(p, 1)
    add_output(p, "output NetCDF (.nc); the x-t picture goes beside it as .png")
    p.set_defaults(func=run_simulate)


def _add_control(sub) -> None:
    p = sub.add_parser("control", help="least-energy forcing from u0 to a target final state",
                       description="Sample forcings that drive u0 to a target u(T) with least "
                                   "energy (guided WDNO), each checked with the solver.")
    _add_problem_args(p)
    p.add_argument("--target", type=Path, required=True,
                   help="target final state (nx,) as .npy/.nc/.h5")
    add_members(p, 4, "candidate forcings")
    add_number(p, "--alpha", lo=0, lo_open=True, hi=100, default=0.01,
               help="energy weight in J = misfit + alpha * energy")
    add_number(p, "--sigma", lo=1e-3, hi=100, default=0.2,
               help="guidance likelihood std; smaller pulls harder (default 0.2, tuned on "
                    "held-out problems)")
    add_output(p, "output NetCDF (.nc); the picture goes beside it as .png")
    p.set_defaults(func=run_control)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="MSE, nRMSE and time to decorrelation on a test set",
                       description="Score predicted trajectories against a test set on its "
                                   "future states t_1..t_nt: MSE, nRMSE as PDEBench defines it "
                                   "(over space per time, then averaged), Pearson correlation "
                                   "and the time until it drops below 0.8.")
    add_eval_args(p, truth="test set (.h5 PDEBench layout or .nc): u (N, nt, nx), forcing",
                  pred="predicted trajectories in the test set's layout and grid (default: "
                       "the WDNO model's, run on the test set's initial states and forcings)",
                  pred_required=False)
    p.add_argument("--method", default="wdno", choices=("wdno", "refiner"),
                   help="the model run on the test set without --pred: wdno (the whole "
                        "trajectory at once, default) or refiner (a PDE-Refiner or MSE "
                        "one-step model rolled out; scored at its steps)")
    p.add_argument("--equation", default=None, choices=("burgers", "ks"),
                   help="--method refiner without --model: whose bundled refiner (default: "
                        "the test set's equation)")
    add_steps(p, None, help="reverse diffusion steps of the WDNO run (default: the "
                            "model's, 50)")
    add_members(p, 1, "WDNO: score the mean of this many samples per test item (the "
                      "ensemble mean; default 1: one sample)")
    p.add_argument("--superres-model", type=Path, default=None, metavar="DIR",
                   help="super-resolution checkpoint for test sets finer than the model's "
                        "base grid (default: superres/ in the --model folder, else bundled)")
    add_runtime_args(p)
    p.set_defaults(func=run_evaluate)


# ================================================================================ commands
def _is_real(path: Path) -> bool:
    """False for the stand-in path of a process that does not write (torchrun rank > 0)."""
    return path != Path(os.devnull)


def run_generate(args: argparse.Namespace) -> int:
    """Check, solve, write whole or not at all, report."""
    from polydiff.apps.pde.generate import GenerateRequest, describe, generate
    from polydiff.physics.pde_data import write_trajectories
    from polydiff.runtime import pick_device

    if args.output.suffix.lower() not in SUFFIXES:
        raise UserError(f"the output must end in .h5, .hdf5 or .nc, got {args.output}")
    advection, ks = args.equation == "advection", args.equation == "ks"
    for flag, value in (("--nu", args.nu), ("--beta", args.beta)):
        applies = (not advection and not ks) if flag == "--nu" else advection
        if value is not None and not applies:
            raise UserError(f"{flag} does not apply to --equation {args.equation}")
    param = None if ks else args.beta if advection else args.nu
    req = GenerateRequest(args.equation, args.n, args.nx, args.nt, args.t_final, param,
                          args.seed, args.refine)
    with Outputs(overwrite=args.overwrite) as out:
        tmp = out.file(args.output, named=True)
        try:
            traj = generate(req, device=pick_device(args.device), progress=progress_enabled())
        except FloatingPointError as err:
            raise UserError(f"{err}: try a larger --nu or a smaller --t-final") from err
        if _is_real(tmp):
            write_trajectories(traj, tmp)
    report(f"generated {describe(traj)}")
    report(out.summary())
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Train from a config (the checkpoint folder is written whole by the backbone)."""
    from polydiff.apps.pde.config import PDEConfig
    from polydiff.apps.pde.train import run_training
    from polydiff.diffusion.config import load_config, read_yaml

    if read_yaml(args.config).get("kind") == "refiner":
        return _train_refiner(args)
    try:
        config = load_config(args.config, PDEConfig)
    except ValueError as err:  # a value the typed config refuses (kind, domain ...)
        raise UserError(f"{args.config}: {err}") from err
    apply_train_args(config.train, args)
    cache = args.data_cache
    written = [Path(config.train.out_dir)]
    if cache is not None and not cache.is_file():
        Outputs(inputs=[args.config]).check(cache, named=True)
        written.append(cache)
    result = run_training(config, data_file=cache, progress=progress_enabled())
    tail = result.losses[-100:]
    report(f"trained {result.step} steps, final loss {sum(tail) / max(len(tail), 1):.4g}")
    report("wrote " + ", ".join(str(p) for p in written))
    return 0


def _train_refiner(args: argparse.Namespace) -> int:
    """``pde train`` of a refiner config (``kind: refiner``)."""
    from polydiff.apps.pde.config import RefinerConfig
    from polydiff.apps.pde.train import run_refiner_training
    from polydiff.diffusion.config import load_config

    if args.data_cache is not None:
        raise UserError("--data-cache serves WDNO configs; a refiner config solves its data")
    try:
        config = load_config(args.config, RefinerConfig)
        config.network_block()  # refuse a network that does not fit the grid before solving
    except ValueError as err:
        raise UserError(f"{args.config}: {err}") from err
    apply_train_args(config.train, args)
    result = run_refiner_training(config, progress=progress_enabled())
    tail = result.losses[-100:]
    report(f"trained {result.step} steps, final loss {sum(tail) / max(len(tail), 1):.4g}")
    report(f"wrote {config.train.out_dir}")
    return 0


def _problem(args: argparse.Namespace):
    """Model and initial state of simulate/control, after checking the inputs."""
    from polydiff.apps.pde.inputs import read_field
    from polydiff.apps.pde.model import load_model
    from polydiff.apps.pde.simulate import draw_initial
    from polydiff.runtime import pick_device

    if args.output.suffix.lower() != ".nc":
        raise UserError(f"the output must be a NetCDF file ending in .nc, got {args.output}")
    model = load_model(args.model, pick_device(args.device))
    if args.init is not None:
        u0 = read_field(args.init, "init")
        if args.nx is not None and u0.shape[-1] != args.nx:
            raise UserError(f"--nx {args.nx} disagrees with the initial state's "
                            f"{u0.shape[-1]} points")
    else:
        u0 = draw_initial(model, args.nx or model.config.data.nx, args.seed)
    return model, u0


def _problem_outputs(args: argparse.Namespace, *extra_inputs: Path | None) -> Outputs:
    return Outputs(inputs=[args.init, args.model, args.superres_model, *extra_inputs],
                   overwrite=args.overwrite)


def run_simulate(args: argparse.Namespace) -> int:
    """Sample trajectories and write the NetCDF and its picture."""
    from polydiff.apps.pde.inputs import read_field
    from polydiff.apps.pde.plots import plot_xt
    from polydiff.apps.pde.simulate import Request, simulate
    from polydiff.apps.pde.trajectories import write_netcdf

    if args.method == "refiner":
        return _simulate_refiner(args)
    if args.equation != "burgers" or args.t_final is not None:
        raise UserError(f"{'--t-final' if args.t_final is not None else '--equation ks'} needs "
                        "--method refiner (WDNO serves Burgers on its grid)")
    with _problem_outputs(args, args.forcing) as out:
        nc = out.file(args.output, named=True)
        png = out.file(args.output.with_suffix(".png"))
        model, u0 = _problem(args)
        forcing = read_field(args.forcing, "forcing") if args.forcing is not None else None
        req = Request(u0=u0, forcing=forcing, members=args.members, steps=args.steps,
                      seed=args.seed)
        traj = simulate(model, req, superres_folder=args.superres_model,
                        progress=progress_enabled())
        traj.check_finite("a model or checkpoint that diverged on this input")
        if _is_real(nc):
            write_netcdf(traj, nc)
            plot_xt(png, {"u (member 0)": traj.u[0], "forcing (member 0)": traj.f[0]}, traj.t,
                    traj.x, title=f"WDNO Burgers, nx = {traj.x.size}, {traj.attrs['steps']} "
                                  "steps")
    report(f"simulated {traj.u.shape[0]} member(s) x {traj.u.shape[1]} times x "
           f"{traj.u.shape[2]} points")
    report(out.summary())
    return 0


def _simulate_refiner(args: argparse.Namespace) -> int:
    """``simulate --method refiner``: an autoregressive PDE-Refiner rollout."""
    import math

    from polydiff.apps.pde.inputs import read_field
    from polydiff.apps.pde.model import load_refiner
    from polydiff.apps.pde.plots import plot_xt
    from polydiff.apps.pde.simulate import Request, draw_refiner_initial, simulate_refiner
    from polydiff.apps.pde.trajectories import write_netcdf
    from polydiff.runtime import pick_device

    if args.output.suffix.lower() != ".nc":
        raise UserError(f"the output must be a NetCDF file ending in .nc, got {args.output}")
    if args.superres_model is not None:
        raise UserError("--superres-model is for WDNO; PDE-Refiner runs on its own grid")
    with _problem_outputs(args, args.forcing) as out:
        nc = out.file(args.output, named=True)
        png = out.file(args.output.with_suffix(".png"))
        model = load_refiner(args.model, pick_device(args.device), equation=args.equation)
        c = model.config
        if c.equation != args.equation:
            raise UserError(f"{model.folder} is a refiner of {c.equation}, not {args.equation}")
        if args.t_final is not None and c.ks is None:
            raise UserError("--t-final applies to ks; a Burgers refiner runs its grid")
        u0 = read_field(args.init, "init") if args.init is not None else \
            draw_refiner_initial(model, args.seed)
        if args.nx is not None and u0.shape[-1] != args.nx:
            raise UserError(f"--nx {args.nx} disagrees with the model's {u0.shape[-1]} points")
        forcing = read_field(args.forcing, "forcing") if args.forcing is not None else None
        steps = math.ceil((args.t_final or 128.0) / c.step_dt - 1e-9) if c.ks else None
        req = Request(u0=u0, forcing=forcing, members=args.members, steps=args.steps,
                      seed=args.seed)
        traj = simulate_refiner(model, req, model_steps=steps, progress=progress_enabled())
        traj.check_finite("a model or checkpoint that diverged on this input")
        if _is_real(nc):
            write_netcdf(traj, nc)
            plot_xt(png, {"u (member 0)": traj.u[0]}, traj.t, traj.x,
                    title=f"{traj.attrs['model_kind']}, {traj.attrs['equation']}, "
                          f"step {c.step_dt:g}")
    report(f"simulated {traj.u.shape[0]} member(s) x {traj.u.shape[1]} times x "
           f"{traj.u.shape[2]} points ({traj.attrs['model_kind']})")
    report(out.summary())
    return 0


def run_control(args: argparse.Namespace) -> int:
    """Sample candidate forcings towards the target, check them with the solver, write."""
    from polydiff.apps.pde.control import ControlSettings, control
    from polydiff.apps.pde.inputs import read_field
    from polydiff.apps.pde.plots import plot_xt
    from polydiff.apps.pde.trajectories import write_netcdf

    with _problem_outputs(args, args.target) as out:
        nc = out.file(args.output, named=True)
        png = out.file(args.output.with_suffix(".png"))
        model, u0 = _problem(args)
        target = read_field(args.target, "init")
        settings = ControlSettings(alpha=args.alpha, sigma=args.sigma)
        result = control(model, u0, target, members=args.members, steps=args.steps,
                         seed=args.seed, settings=settings, progress=progress_enabled())
        result.check_finite("guidance too strong: use a larger --sigma or a smaller --alpha")
        best = result.attrs["best_member"]
        if _is_real(nc):
            write_netcdf(result, nc)
            plot_xt(png, {"forcing": result.f[best],
                          "u (solver)": result.extra["u_solver"][1][best]},
                    result.t, result.x, title=f"control, best member {best}")
    _, misfit, _ = result.extra["misfit"]
    _, energy, _ = result.extra["energy"]
    report(f"best member {best}: J = {misfit[best] + energy[best]:.4g} (terminal misfit "
           f"{misfit[best]:.4g}, energy {energy[best]:.4g})")
    report(out.summary())
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Score a prediction file, or the model's run on the test set; write JSON and PNG."""
    from polydiff.apps.pde.evaluate import from_file, score
    from polydiff.apps.pde.plots import plot_scores
    from polydiff.physics.pde_data import read_trajectories
    from polydiff.runtime import check_finite

    if args.pred is not None:
        given = [flag for flag, value in (("--model", args.model), ("--steps", args.steps),
                                          ("--superres-model", args.superres_model),
                                          ("--equation", args.equation))
                 if value is not None] + (["--method"] if args.method != "wdno" else []) + \
            (["--members"] if args.members != 1 else [])
        if given:
            raise UserError(f"{given[0]} is for the model's run; with --pred the file is scored")
    if args.method == "refiner":
        given = [flag for flag, value in (("--steps", args.steps),
                                          ("--superres-model", args.superres_model))
                 if value is not None] + (["--members"] if args.members != 1 else [])
        if given:
            raise UserError(f"{given[0]} is for WDNO; a refiner runs its own refinement steps "
                            "on its own grid")
    elif args.equation is not None:
        raise UserError("--equation picks a bundled refiner: it goes with --method refiner")
    json_path = args.json or default_json(args.pred, args.truth)
    # the picture beside it: test.metrics.json -> test.metrics.png, m.json -> m.metrics.png
    png_path = json_path.with_suffix(".png" if json_path.stem.endswith(".metrics") else
                                     ".metrics.png")
    with Outputs(inputs=[args.truth, args.pred, args.model, args.superres_model],
                 overwrite=args.overwrite) as out:
        out.check(json_path, named=args.json is not None)
        out.check(png_path)
        truth = read_trajectories(args.truth)
        if args.pred is not None:
            prediction = from_file(read_trajectories(args.pred), truth)
            source = {"pred": str(args.pred)}
        elif args.method == "refiner":
            prediction, source = _refiner_prediction(args, truth)
        else:
            prediction, source = _model_prediction(args, truth)
        metrics = score(prediction)
        check_finite([metrics["mse"], metrics["nrmse"]], "the metrics",
                     "a test set whose states are all zero at some time")
        metrics.update(truth=str(args.truth), **source)
        write_json(json_path, metrics, out, named=args.json is not None)
        png = out.file(png_path)
        if _is_real(png):
            plot_scores(png, metrics, prediction.truth[0], prediction.pred[0], prediction.t,
                        prediction.x, title=f"{args.pred or source.get('kind', 'WDNO')} "
                                            f"against {args.truth}")
    report(f"MSE {metrics['mse']:.4g}  nRMSE {metrics['nrmse']:.4g} (PDEBench)  time until "
           f"correlation < 0.8: {metrics['time_until_decorrelation']:.3g} (of "
           f"{metrics['times'][-1]:.3g})")
    report(out.summary())
    return 0


def _model_prediction(args: argparse.Namespace, truth):
    """The WDNO model's prediction of ``truth`` and what to record about the run."""
    from polydiff.apps.pde.evaluate import predict
    from polydiff.apps.pde.model import load_model
    from polydiff.runtime import pick_device

    model = load_model(args.model, pick_device(args.device))
    prediction = predict(model, truth, steps=args.steps, seed=args.seed,
                         superres_folder=args.superres_model, members=args.members)
    return prediction, {"model": str(model.folder), "seed": args.seed, "members": args.members,
                        "steps": args.steps or model.config.sampling.steps}


def _refiner_prediction(args: argparse.Namespace, truth):
    """A refiner model's rollouts of ``truth`` and what to record about the run."""
    from polydiff.apps.pde.evaluate import REFINER_EQUATION_NAMES, predict_refiner
    from polydiff.apps.pde.model import load_refiner
    from polydiff.runtime import pick_device

    equation = args.equation or next(
        (eq for eq, names in REFINER_EQUATION_NAMES.items() if truth.equation in names),
        "burgers")
    model = load_refiner(args.model, pick_device(args.device), equation=equation)
    prediction = predict_refiner(model, truth, seed=args.seed)
    c = model.config
    kind = f"PDE-Refiner (K = {c.refinement_steps})" if c.refinement_steps else \
        "MSE one-step model"
    return prediction, {"model": str(model.folder), "seed": args.seed, "kind": kind,
                        "method": "refiner", "step_dt": c.step_dt}


# ================================================================================ demo
def demo(out_dir: Path, *, device: torch.device, seed: int) -> DemoResult:
    """Simulate one forced Burgers problem with the bundled WDNO model and check it against
    the numerical solver (baseline: persistence, u(t) = u0); then steer u0 to the solver's
    final state with least energy (baseline: no control, f = 0). Writes ``burgers.nc``,
    ``control.nc`` and their pictures into ``out_dir``."""
    import numpy as np
    import torch

    from polydiff.apps.pde.control import control, objective
    from polydiff.apps.pde.model import load_model
    from polydiff.apps.pde.plots import plot_xt
    from polydiff.apps.pde.simulate import Request, simulate
    from polydiff.apps.pde.trajectories import write_netcdf
    from polydiff.physics.burgers import sample_burgers_problem, solve_burgers
    from polydiff.physics.pde_metrics import mse, nrmse
    from polydiff.runtime import make_generator

    out_dir = Path(out_dir)
    with Outputs() as out:
        nc = out.file(out_dir / "burgers.nc", named=True)
        png = out.file(out_dir / "burgers.png", named=True)
        control_nc = out.file(out_dir / "control.nc", named=True)
        control_png = out.file(out_dir / "control.png", named=True)
        model = load_model(None, device)
        grid = model.config.data.grid(0)
        problem = sample_burgers_problem(1, grid, make_generator(seed))
        x, t = grid.x(), grid.t()
        forcing = problem.forcing.on_grid(t, x)
        truth = solve_burgers(problem.u0, grid, nu=model.config.data.nu,
                              forcing=forcing)[0].numpy()
        u0 = truth[0].astype(np.float32)
        req = Request(u0=u0, forcing=forcing[0].float().numpy(), members=2, seed=seed)
        traj = simulate(model, req)
        traj.extra["u_solver"] = (("t", "x"), truth.astype(np.float32),
                                  {"long_name": "numerical solver's trajectory"})
        traj.check_finite("a model or checkpoint that diverged")
        target = truth[-1].astype(np.float32)
        steered = control(model, u0, target, members=2, seed=seed)
        steered.check_finite("guidance too strong for the bundled model")
        best = steered.attrs["best_member"]
        if _is_real(nc):
            write_netcdf(traj, nc)
            plot_xt(png, {"solver": truth, "WDNO member 0": traj.u[0],
                          "error": traj.u[0] - truth}, traj.t, traj.x,
                    title="forced Burgers, nu = 0.01")
            write_netcdf(steered, control_nc)
            plot_xt(control_png, {"forcing": steered.f[best],
                                  "u (solver)": steered.extra["u_solver"][1][best]},
                    steered.t, steered.x, title=f"control to a target, best member {best}")
    pred = torch.from_numpy(traj.u[:, 1:])
    ref = torch.from_numpy(truth[None, 1:]).float().expand_as(pred)
    still = torch.from_numpy(u0)[None, None].expand_as(pred)
    free = solve_burgers(torch.as_tensor(u0, dtype=torch.float64)[None], grid,
                         nu=model.config.data.nu).numpy()
    dt = grid.t_final / model.config.data.nt
    free_misfit, _ = objective(free, np.zeros_like(free), target, dt, grid.dx, 0.0)
    misfit = float(steered.extra["misfit"][1][best])
    j = float(steered.extra["objective"][1][best])
    metrics = {"simulate nRMSE": nrmse(pred, ref), "control terminal misfit": misfit,
               "control J": j}
    baseline = {"simulate nRMSE": nrmse(still, ref),
                "control terminal misfit": float(free_misfit[0]),
                "control J": float(free_misfit[0])}
    summary = (f"WDNO Burgers ({traj.u.shape[0]} members, {traj.attrs['steps']} steps): MSE "
               f"{mse(pred, ref):.3g}, nRMSE {metrics['simulate nRMSE']:.3g} (PDEBench) against "
               f"the solver; control: terminal misfit {misfit:.3g} (no control "
               f"{baseline['control terminal misfit']:.3g}), J {j:.3g}; {out.summary()}")
    return DemoResult(summary, list(out.written), [out_dir / "burgers.png",
                                                   out_dir / "control.png"],
                      {k: float(v) for k, v in metrics.items()}, baseline)
