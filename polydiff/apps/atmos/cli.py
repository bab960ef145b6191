"""``polydiff atmos …``: generate, superres, train, evaluate; and the demo.

Argument handling only: the algorithms live in generate.py, superres.py, train.py and
evaluate.py, imported inside the commands (this module imports neither torch nor numpy).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from polydiff.apps.contract import (
    DemoResult,
    Outputs,
    Parser,
    add_eval_args,
    add_members,
    add_number,
    add_output,
    add_resume,
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


def _command(args: argparse.Namespace, keys: list[str]) -> str:
    """A readable command line for the NetCDF ``history`` attribute."""
    parts = ["polydiff", "atmos", args.atmos_command]
    if getattr(args, "coarse", None) is not None:  # the one positional argument
        parts.append(str(args.coarse))
    for key in keys:
        value = getattr(args, key, None)
        if value is True:  # a flag
            parts.append(f"--{key.replace('_', '-')}")
        elif value is not None and value is not False:
            parts += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(parts)


def _netcdf(path: Path) -> Path:
    """``path`` if it names a NetCDF file (.nc), else a UserError."""
    if path.suffix.lower() != ".nc":
        raise UserError(f"the output must be a NetCDF file ending in .nc (its picture is "
                        f"written beside it as <name>.png), got {path}")
    return path


def _beside(path: Path, tail: str) -> Path:
    """A side file of ``path``: ``out.nc`` + ``_coarse.nc`` -> ``out_coarse.nc``."""
    return path.with_name(path.stem + tail)


# ============================================================================ commands
def cmd_generate(args: argparse.Namespace) -> int:
    from polydiff.apps.atmos.generate import check_request, fields_like, synthetic_data
    from polydiff.apps.atmos.plots import plot_synthetic
    from polydiff.physics.era5 import write_netcdf
    from polydiff.physics.observations import write_observations
    from polydiff.runtime import pick_device

    truth_path = _netcdf(args.output)
    cfg = fields_like(args.like, size=args.size, resolution=args.resolution,
                      spinup_steps=args.spinup)
    check_request(cfg, args.coarsen)
    device = pick_device(args.device)
    command = _command(args, ["like", "n", "trajectories", "size", "resolution", "spinup",
                              "coarsen", "obs", "seed", "output"])
    with Outputs(overwrite=args.overwrite) as out:
        truth_tmp = out.file(truth_path, named=True)
        png_tmp = out.file(truth_path.with_suffix(".png"))
        coarse_tmp = out.file(_beside(truth_path, "_coarse.nc")) if args.coarsen else None
        obs_tmp = out.file(_beside(truth_path, "_obs.csv")) if args.obs else None
        data = synthetic_data(args.n, cfg, seed=args.seed, trajectories=args.trajectories,
                              coarsen=args.coarsen, stations=args.obs, device=device,
                              progress=progress_enabled())
        if out.active:
            write_netcdf(data.truth, truth_tmp, command=command)
            if coarse_tmp is not None:
                write_netcdf(data.coarse, coarse_tmp, command=command)
            if obs_tmp is not None:
                write_observations(data.obs, obs_tmp)
            plot_synthetic(png_tmp, data.truth, data.coarse, data.factor)
    report(out.summary())
    return 0


def cmd_superres(args: argparse.Namespace) -> int:
    from polydiff.apps.atmos.model import load_model
    from polydiff.apps.atmos.plots import plot_ensemble
    from polydiff.apps.atmos.steps import select_times
    from polydiff.apps.atmos.superres import (
        SuperresOptions,
        check_sources,
        read_inputs,
        superres,
    )
    from polydiff.physics.era5 import write_netcdf
    from polydiff.runtime import make_generator, pick_device

    nc_path = args.output if args.per_step else _netcdf(args.output)
    if args.resume and not args.per_step:
        raise UserError("--resume goes with --per-step (one file per time step)")
    opts = SuperresOptions(factor=args.factor, members=args.members, steps=args.steps,
                           guidance=args.guidance, coarse_sigma=args.coarse_sigma,
                           eta=args.eta, constrain=not args.no_constrain)
    check_sources(opts, coarse=args.coarse, obs=args.obs, grid=args.grid)
    device = pick_device(args.device)
    command = _command(args, ["obs", "grid", "factor", "members", "steps", "guidance",
                              "coarse_sigma", "eta", "no_constrain", "start", "end", "seed",
                              "output"])
    if args.per_step:
        return _superres_per_step(args, opts, device, command)
    with Outputs(inputs=[args.coarse, args.obs, args.grid], overwrite=args.overwrite) as out:
        nc_tmp = out.file(nc_path, named=True)
        png_tmp = out.file(nc_path.with_suffix(".png"))
        model = load_model(args.model, device)
        inputs = read_inputs(model, opts, coarse=args.coarse, obs=args.obs, grid=args.grid)
        inputs = select_times(inputs, args.start, args.end)
        result = superres(model, opts, coarse=inputs.coarse, obs=inputs.obs, grid=inputs.grid,
                          generator=make_generator(args.seed, device), device=device,
                          progress=progress_enabled())
        if out.active:
            write_netcdf(result, nc_tmp, command=command)
            plot_ensemble(png_tmp, result, inputs.coarse, opts.factor,
                          list(model.normaliser.variables))
    report(out.summary())
    return 0


def _superres_per_step(args: argparse.Namespace, opts, device, command: str) -> int:
    """``superres --per-step``: one NetCDF per time step into the folder ``-o``."""
    from polydiff.apps.atmos.model import load_model
    from polydiff.apps.atmos.steps import select_times, superres_per_step
    from polydiff.apps.atmos.superres import read_inputs

    if args.output.exists() and not args.output.is_dir():
        raise UserError(f"-o {args.output} is an existing file; with --per-step -o names a "
                        "folder")
    model = load_model(args.model, device)
    inputs = read_inputs(model, opts, coarse=args.coarse, obs=args.obs, grid=args.grid)
    inputs = select_times(inputs, args.start, args.end)
    stem = args.coarse.stem if args.coarse is not None else "superres"
    work = superres_per_step(model, opts, inputs, args.output, stem, seed=args.seed,
                             device=device, sources=[args.coarse, args.obs, args.grid],
                             overwrite=args.overwrite, resume=args.resume, command=command)
    work.print_summary()
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from polydiff.apps.atmos.config import AtmosConfig
    from polydiff.apps.atmos.train import run_training
    from polydiff.diffusion import load_config

    cfg = load_config(args.config, AtmosConfig)
    apply_train_args(cfg.train, args)
    if args.data_cache is not None:  # the cache may be read and rewritten, never the config
        Outputs(inputs=[args.config]).check(args.data_cache, named=True)
    result = run_training(cfg, data_cache=args.data_cache, progress=progress_enabled())
    tail = result.losses[-50:]
    loss = f"final loss {sum(tail) / len(tail):.4f}" if tail else "no new step"
    report(f"trained {result.step} steps, {loss}; checkpoint in {cfg.train.out_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from polydiff.apps.atmos.evaluate import evaluate_files

    json_path = args.json if args.json is not None else default_json(args.pred, args.truth)
    named = args.json is not None
    with Outputs(inputs=[args.truth, args.pred], overwrite=args.overwrite) as out:
        out.check(json_path, named=named)
        metrics = evaluate_files(args.truth, args.pred)
        for var, m in metrics["variables"].items():
            spec = m["spectrum"]
            high = slice(len(spec["wavenumber"]) * 3 // 4, None)  # the smallest scales
            power = sum(spec["members"][high]) / max(sum(spec["truth"][high]), 1e-30)
            ratio = "n/a" if m["spread_skill"] is None else f"{m['spread_skill']:.3f}"
            report(f"{var:>4}: RMSE {m['rmse']:.4g}  CRPS {m['crps']:.4g}  spread/skill "
                   f"{ratio}  small-scale power {power:.2f} x truth  ({m['units']})")
        write_json(json_path, metrics, out, named=named)
    report(out.summary())
    return 0


# ============================================================================ parser
def _add_generate(sub) -> None:
    g = sub.add_parser("generate", help="synthetic fine fields (+ coarse file, observations)",
                       description="Simulate synthetic near-surface weather on a lat-lon box "
                                   "and write it as CF NetCDF with a picture; optionally its "
                                   "block means and station observations.")
    add_output(g, "fine truth NetCDF (.nc); beside it <stem>.png, and <stem>_coarse.nc "
                  "and <stem>_obs.csv when asked for")
    add_number(g, "--n", kind=int, lo=1, hi=1_000_000, default=4, help="time steps")
    add_number(g, "--coarsen", kind=int, lo=1, hi=4096,
               help="also write <stem>_coarse.nc: block means over K x K cells")
    add_number(g, "--obs", kind=int, lo=1, hi=1_000_000,
               help="also write <stem>_obs.csv: M stations observing every variable")
    add_number(g, "--trajectories", kind=int, lo=1, hi=1_000_000, default=1,
               help="independent flows the time steps are split between")
    g.add_argument("--like", default=None, metavar="MODEL",
                   help="draw the fields the way a prior was trained: weather (t2m, u10, "
                        "v10, msl), turbulence (vo, tprate: vorticity filaments and "
                        "intermittent rain) or a checkpoint folder (default: the weather "
                        "defaults); --size, --resolution and --spinup override it")
    add_number(g, "--size", kind=int, lo=2, hi=4096, help="grid points per side (default 32)")
    add_number(g, "--resolution", lo=0, lo_open=True, hi=180,
               help="grid spacing, degrees (default 1)")
    add_number(g, "--spinup", kind=int, lo=0, hi=10_000_000,
               help="spin-up steps of the flow (default: 1500, or the prior's)")
    add_runtime_args(g, model=False)
    g.set_defaults(func=cmd_generate)


def _add_superres(sub) -> None:
    s = sub.add_parser("superres", help="fine ensemble from a coarse file and/or observations",
                       description="Sample a fine ensemble conditioned on a coarse CF/ERA5 "
                                   "NetCDF file and/or station observations (zero-shot, by "
                                   "measurement guidance of the score prior; or as the "
                                   "inputs of a conditional network). The members "
                                   "end on the coarse file's conservative means; with coarse "
                                   "input alone (or stations alone, where fitted), the "
                                   "checkpoint's spread calibration (fitted on validation "
                                   "fields) scales their spread. --model "
                                   "turbulence picks the bundled turbulence prior (vo, "
                                   "tprate), --model turbulence_conditional its conditional "
                                   "network (factors 4 and 8, any stations); warnings "
                                   "(stderr) flag input outside what the model knows.")
    s.add_argument("coarse", type=Path, nargs="?", default=None, help="coarse CF/ERA5 NetCDF")
    s.add_argument("--obs", type=Path, default=None,
                   help="observations CSV (time,latitude,longitude,variable,value[,sigma])")
    s.add_argument("--grid", type=Path, default=None,
                   help="fine grid template NetCDF (with --obs and no coarse file)")
    add_number(s, "--factor", kind=int, lo=1, hi=4096,
               help="coarse-graining factor K (required with a coarse file)")
    add_members(s, 8, "ensemble members; the ensemble mean of M calibrated "
                "members misses by about sqrt(1 + 1/M) times the posterior mean's error "
                "(8: +6 %%, 32: +1.5 %%), so take more for a point estimate")
    add_steps(s, 50)
    add_number(s, "--guidance", lo=0,
               help="DPS step size zeta, 0: the prior (default 0.3; from stations alone "
                    "the checkpoint's tuned weight: weather 0.5, turbulence 0.1; 0 for a "
                    "conditional network)")
    add_number(s, "--coarse-sigma", lo=0, lo_open=True, default=0.02,
               help="coarse-field noise std, as a fraction of each variable's std")
    add_number(s, "--eta", lo=0, hi=1, default=1.0,
               help="DDIM stochasticity: 0 deterministic steps, 1 DDPM-like (fresh noise "
                    "each step)")
    s.add_argument("--no-constrain", action="store_true",
                   help="do not hold the clean estimate on the coarse means and the "
                        "variables' bounds (rain >= 0) at every step; the members are "
                        "still projected at the end")
    s.add_argument("--start", default=None, metavar="TIME",
                   help="first time step to super-resolve (e.g. 2001-01-01; default: the "
                        "file's first)")
    s.add_argument("--end", default=None, metavar="TIME",
                   help="last time step, inclusive (default: the file's last)")
    s.add_argument("--per-step", action="store_true",
                   help="-o is a folder: one NetCDF per time step, <coarse stem>_<YYYY-MM-"
                        "DDTHHMM>.nc (no picture), the file read one step at a time, steps "
                        "split between torchrun processes / Slurm array tasks")
    add_resume(s)
    add_output(s, "fine ensemble NetCDF (.nc); its picture goes beside it as <stem>.png "
                  "(with --per-step: a folder)")
    add_runtime_args(s)
    s.set_defaults(func=cmd_superres)


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train the score prior from a YAML config (torchrun-ready)",
                       description="Simulate the training fields on the training device (or "
                                   "read them from --data-cache) and train the score prior, "
                                   "or, with a conditioning block in the config (e.g. "
                                   "configs/atmos/turbulence_conditional_cpu.yaml), a "
                                   "conditional network.")
    add_train_args(t, "atmos", data_cache="safetensors cache of the simulated fields: read "
                                          "when it was made with the same fields/data "
                                          "settings, else (re)written")
    t.set_defaults(func=cmd_train)


def _add_evaluate(sub) -> None:
    e = sub.add_parser("evaluate", help="lat-weighted RMSE, CRPS, spread/skill, spectra")
    add_eval_args(e, truth="fine truth NetCDF", pred="superres ensemble NetCDF")
    e.set_defaults(func=cmd_evaluate)


def _add_commands(sub) -> None:
    for add in (_add_generate, _add_superres, _add_train, _add_evaluate):
        add(sub)


def register(subparsers, name: str, help_text: str) -> None:
    """Add ``polydiff atmos`` and its sub-commands."""
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    sub = p.add_subparsers(dest="atmos_command", metavar="COMMAND", required=True)
    _add_commands(sub)


# ============================================================================ demo
def _run(argv: list[str]) -> int:
    """Run ``polydiff atmos <argv>`` in this process."""
    parser = Parser(prog="polydiff atmos")
    _add_commands(parser.add_subparsers(dest="atmos_command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _interpolated_rmse(truth: Path, coarse: Path, factor: int) -> dict[str, float]:
    """The baseline: each variable's lat-weighted RMSE of the coarse field interpolated
    bilinearly back to the fine grid."""
    import numpy as np
    from scipy.ndimage import zoom

    from polydiff.physics.atmos_metrics import lat_weighted_rmse
    from polydiff.physics.era5 import open_era5

    fine, low = open_era5(truth), open_era5(coarse)
    out = {}
    for v in low.data_vars:
        guess = zoom(low[v].values, (1, factor, factor), order=1, mode="nearest",
                     grid_mode=True)
        err = lat_weighted_rmse(guess, fine[v].values, fine.latitude.values)
        out[v] = float(np.sqrt(np.mean(err**2)))
    return out


def demo(out_dir: Path, *, device, seed: int) -> DemoResult:
    """Generate one field, super-resolve its 4x coarse version with 8 stations, score it
    against bilinear interpolation of the coarse field.

    The demo's files sit in its own folder ``out_dir`` and are replaced on a rerun.
    """
    out_dir = Path(out_dir)
    truth, fine = out_dir / "truth.nc", out_dir / "superres.nc"
    coarse, obs = out_dir / "truth_coarse.nc", out_dir / "truth_obs.csv"
    common = ["--seed", str(seed), "--overwrite"]
    _run(["generate", "--n", "1", "--spinup", "600", "--coarsen", "4", "--obs", "8",
          "--device", str(device), *common, "-o", str(truth)])
    _run(["superres", str(coarse), "--obs", str(obs), "--factor", "4", "--members", "4",
          "--steps", "20", "--device", str(device), *common, "-o", str(fine)])
    metrics_path = out_dir / "superres.metrics.json"
    _run(["evaluate", "--truth", str(truth), "--pred", str(fine), "--json", str(metrics_path)])
    metrics = json.loads(metrics_path.read_text())
    rmse = ", ".join(f"{v} {m['rmse']:.3g} {m['units']}" for v, m in metrics["variables"].items())
    summary = (f"4x super-resolution + 8 stations, 4 members: RMSE {rmse}; wrote {fine}, "
               f"{fine.with_suffix('.png')}")
    ours = {f"{v} RMSE ({m['units']})": m["rmse"] for v, m in metrics["variables"].items()}
    units = {v: m["units"] for v, m in metrics["variables"].items()}
    base = {f"{v} RMSE ({units[v]})": r for v, r in _interpolated_rmse(truth, coarse, 4).items()
            if v in units}
    files = [truth, truth.with_suffix(".png"), coarse, obs, fine, fine.with_suffix(".png"),
             metrics_path]
    return DemoResult(summary, files, [truth.with_suffix(".png"), fine.with_suffix(".png")],
                      ours, base)
