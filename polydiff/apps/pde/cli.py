"""``polydiff pde ...``: generate, train, simulate, control, evaluate; and the demo."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from polydiff.apps.contract import add_runtime_args
from polydiff.runtime import UserError, make_generator, pick_device


def register(subparsers, name: str, help_text: str) -> None:
    """Add ``polydiff pde`` and its sub-commands."""
    p = subparsers.add_parser(name, help=help_text)
    sub = p.add_subparsers(dest="pde_command", metavar="COMMAND", required=True)
    _add_generate(sub)
    t = sub.add_parser("train", help="train a WDNO / super-resolution model from a config")
    t.add_argument("--config", type=Path, required=True, help="configs/pde/<name>.yaml")
    t.add_argument("--out", type=Path, default=None, help="output folder (default: from config)")
    t.add_argument("--steps", type=int, default=None, help="override train.steps")
    t.add_argument("--data-cache", type=Path, default=None,
                   help="safetensors cache of the solver data (written if absent)")
    t.set_defaults(func=run_train)

    s = sub.add_parser("simulate", help="Burgers trajectories from an initial state by WDNO")
    _add_problem_args(s)
    s.add_argument("--forcing", type=Path, default=None,
                   help="forcing (nt+1, nx) as .npy/.nc/.h5 (default: none, f = 0)")
    s.add_argument("--members", type=int, default=1, help="ensemble members (default: 1)")
    s.add_argument("-o", "--output", type=Path, required=True, help="output NetCDF (.nc)")
    s.set_defaults(func=run_simulate)

    c = sub.add_parser("control", help="least-energy forcing from u0 to a target final state")
    _add_problem_args(c)
    c.add_argument("--target", type=Path, required=True,
                   help="target final state (nx,) as .npy/.nc/.h5")
    c.add_argument("--members", type=int, default=4, help="candidate forcings (default: 4)")
    c.add_argument("--alpha", type=float, default=0.01, help="energy weight in J (default 0.01)")
    c.add_argument("--sigma", type=float, default=0.1,
                   help="guidance likelihood std; smaller pulls harder (default 0.1)")
    c.add_argument("-o", "--output", type=Path, required=True, help="output NetCDF (.nc)")
    c.set_defaults(func=run_control)

    e = sub.add_parser("evaluate", help="MSE, nRMSE and time to decorrelation on a test set")
    e.add_argument("--data", type=Path, required=True, help="test set (.h5 PDEBench layout, .nc)")
    e.add_argument("--steps", type=int, default=None, help="reverse diffusion steps")
    e.add_argument("--superres-model", type=Path, default=None,
                   help="super-resolution checkpoint (default: superres/ in the model folder)")
    e.add_argument("-o", "--output", type=Path, default=None,
                   help="metrics JSON (default: <data>.metrics.json beside the test set)")
    add_runtime_args(e)
    e.set_defaults(func=run_evaluate)


def _add_problem_args(p: argparse.ArgumentParser) -> None:
    """Arguments shared by simulate and control."""
    p.add_argument("--equation", default="burgers", help="the equation (the models serve: burgers)")
    p.add_argument("--init", type=Path, default=None,
                   help="initial state (nx,) as .npy/.nc/.h5 (default: drawn with --seed)")
    p.add_argument("--nx", type=int, default=None,
                   help="interior grid points (base 31; 63, 127 ... through super-resolution)")
    p.add_argument("--steps", type=int, default=None, help="reverse diffusion steps")
    p.add_argument("--superres-model", type=Path, default=None,
                   help="super-resolution checkpoint (default: superres/ in the model folder)")
    add_runtime_args(p)


def _add_generate(sub) -> None:
    try:
        from polydiff.apps.pde.generate import add_generate_parser
    except ModuleNotFoundError as err:  # part of the app still being written
        if err.name != "polydiff.apps.pde.generate":
            raise
        return
    add_generate_parser(sub)


def run_train(args: argparse.Namespace) -> int:
    from polydiff.apps.pde.config import PDEConfig
    from polydiff.apps.pde.train import run_training
    from polydiff.diffusion.config import load_config

    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        config = load_config(args.config, PDEConfig)
    except ValueError as err:
        raise UserError(f"{args.config}: {err}") from err
    if args.out is not None:
        config.train.out_dir = str(args.out)
    if args.steps is not None:
        config.train.steps = args.steps
    main_process = os.environ.get("RANK", "0") == "0"  # torchrun: one report, one bar
    result = run_training(config, data_file=args.data_cache, progress=main_process)
    if not main_process:
        return 0
    tail = result.losses[-100:]
    print(f"trained {result.step} steps, final loss {sum(tail) / max(len(tail), 1):.4g}; "
          f"checkpoint in {config.train.out_dir}")
    return 0


def _problem(args: argparse.Namespace):
    """Model, initial state and device of simulate/control, after checking the inputs."""
    from polydiff.apps.pde.inputs import read_field
    from polydiff.apps.pde.model import load_model
    from polydiff.apps.pde.simulate import draw_initial

    if args.equation != "burgers":
        raise UserError(f"unknown equation {args.equation!r} (the pde models serve: burgers)")
    if args.output.suffix.lower() != ".nc":
        raise UserError(f"the output must be a NetCDF file ending in .nc, got {args.output}")
    device = pick_device(args.device)
    model = load_model(args.model, device)
    if args.init is not None:
        u0 = read_field(args.init, "init")
        if args.nx is not None and u0.shape[-1] != args.nx:
            raise UserError(f"--nx {args.nx} disagrees with the initial state's {u0.shape[-1]} "
                            "points")
    else:
        u0 = draw_initial(model, args.nx or model.config.data.nx, args.seed)
    return model, u0, device


def run_simulate(args: argparse.Namespace) -> int:
    from polydiff.apps.pde.inputs import read_field
    from polydiff.apps.pde.output import plot_xt, write_netcdf
    from polydiff.apps.pde.simulate import Request, simulate

    model, u0, _ = _problem(args)
    forcing = read_field(args.forcing, "forcing") if args.forcing is not None else None
    req = Request(u0=u0, forcing=forcing, members=args.members, steps=args.steps, seed=args.seed)
    traj = simulate(model, req, superres_folder=args.superres_model, progress=True)
    write_netcdf(traj, args.output)
    png = args.output.with_suffix(".png")
    plot_xt(png, {"u (member 0)": traj.u[0], "forcing (member 0)": traj.f[0]}, traj.t, traj.x,
            title=f"WDNO Burgers, nx = {traj.x.size}, {traj.attrs['steps']} steps")
    print(f"wrote {args.output} ({traj.u.shape[0]} member(s) x {traj.u.shape[1]} times x "
          f"{traj.u.shape[2]} points) and {png}")
    return 0


def run_control(args: argparse.Namespace) -> int:
    from polydiff.apps.pde.control import ControlSettings, control
    from polydiff.apps.pde.inputs import read_field
    from polydiff.apps.pde.output import plot_xt, write_netcdf

    model, u0, _ = _problem(args)
    target = read_field(args.target, "init")
    if args.alpha < 0 or args.sigma <= 0:
        raise UserError("--alpha must be >= 0 and --sigma > 0")
    settings = ControlSettings(alpha=args.alpha, sigma=args.sigma)
    result = control(model, u0, target, members=args.members, steps=args.steps, seed=args.seed,
                     settings=settings, progress=True)
    write_netcdf(result, args.output)
    best = result.attrs["best_member"]
    png = args.output.with_suffix(".png")
    plot_xt(png, {"forcing": result.f[best], "u (solver)": result.extra["u_solver"][1][best]},
            result.t, result.x, title=f"control, best member {best}")
    _, misfit, _ = result.extra["misfit"]
    _, energy, _ = result.extra["energy"]
    print(f"best member {best}: J = {misfit[best] + energy[best]:.4g} (terminal misfit "
          f"{misfit[best]:.4g}, energy {energy[best]:.4g}); wrote {args.output} and {png}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    import json

    from polydiff.apps.pde.evaluate import predict, score
    from polydiff.apps.pde.model import load_model
    from polydiff.physics.pde_data import read_trajectories
    from polydiff.runtime import atomic_output

    out = args.output or args.data.with_suffix(".metrics.json")
    data = read_trajectories(args.data)
    model = load_model(args.model, pick_device(args.device))
    if args.steps is not None and args.steps < 1:
        raise UserError("--steps must be at least 1")
    metrics = score(predict(model, data, steps=args.steps, seed=args.seed,
                            superres_folder=args.superres_model))
    metrics.update(model=str(model.folder), data=str(args.data), seed=args.seed,
                   steps=args.steps or model.config.sampling.steps)
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    print(f"MSE {metrics['mse']:.4g}  nRMSE {metrics['nrmse']:.4g}  time until correlation < 0.8: "
          f"{metrics['time_until_decorrelation']:.3g} (of {metrics['times'][-1]:.3g}); "
          f"wrote {out}")
    return 0


def demo(out_dir: Path, *, device: torch.device, seed: int) -> str:
    """Simulate one forced Burgers problem with the bundled WDNO model and check it against
    the numerical solver; writes ``burgers.nc`` and ``burgers.png`` into ``out_dir``."""
    import numpy as np

    from polydiff.apps.pde.model import load_model
    from polydiff.apps.pde.output import plot_xt, write_netcdf
    from polydiff.apps.pde.simulate import Request, simulate
    from polydiff.physics.burgers import sample_burgers_problem, solve_burgers
    from polydiff.physics.pde_metrics import mse, nrmse

    model = load_model(None, device)
    grid = model.config.data.grid(0)
    problem = sample_burgers_problem(1, grid, make_generator(seed))
    x, t = grid.x(), grid.t()
    forcing = problem.forcing.on_grid(t, x)
    truth = solve_burgers(problem.u0, grid, nu=model.config.data.nu, forcing=forcing)[0].numpy()
    req = Request(u0=truth[0].astype(np.float32), forcing=forcing[0].float().numpy(),
                  members=2, seed=seed)
    traj = simulate(model, req)
    traj.extra["u_solver"] = (("t", "x"), truth.astype(np.float32),
                              {"long_name": "numerical solver's trajectory"})
    out_dir = Path(out_dir)
    write_netcdf(traj, out_dir / "burgers.nc")
    plot_xt(out_dir / "burgers.png", {"solver": truth, "WDNO member 0": traj.u[0],
                                      "error": traj.u[0] - truth}, traj.t, traj.x,
            title="forced Burgers, nu = 0.01")
    pred = torch.from_numpy(traj.u[:, 1:])
    ref = torch.from_numpy(truth[None, 1:]).float().expand_as(pred)
    return (f"WDNO Burgers ({traj.u.shape[0]} members, {traj.attrs['steps']} steps): "
            f"MSE {mse(pred, ref):.3g}, nRMSE {nrmse(pred, ref):.3g} against the solver; "
            f"wrote {out_dir / 'burgers.nc'} and {out_dir / 'burgers.png'}")
