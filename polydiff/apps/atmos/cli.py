"""``polydiff atmos …``: generate, superres, train, evaluate; and the demo."""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import replace
from pathlib import Path

import torch

from polydiff.apps.contract import add_runtime_args
from polydiff.runtime import UserError, atomic_output, pick_device


def _command(args: argparse.Namespace, argv_keys: list[str]) -> str:
    """A readable command line for the ``history`` attribute."""
    parts = ["polydiff", "atmos", args.atmos_command]
    if getattr(args, "coarse", None) is not None:  # the one positional argument
        parts.append(str(args.coarse))
    for key in argv_keys:
        value = getattr(args, key, None)
        if value is not None and value is not False:
            parts += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(parts)


def _png_path(out: Path) -> Path:
    return out.with_suffix(".png")


def cmd_generate(args: argparse.Namespace) -> int:
    from polydiff.apps.atmos.pipeline import generate_files
    from polydiff.physics.atmos_fields import FieldConfig

    cfg = FieldConfig(size=args.size, resolution=args.resolution)
    if args.spinup is not None:
        cfg = replace(cfg, spinup_steps=args.spinup)
    written = generate_files(args.out, n=args.n, cfg=cfg, seed=args.seed,
                             trajectories=args.trajectories, coarsen=args.coarsen,
                             n_obs=args.obs, command=_command(args, ["n", "coarsen", "obs",
                                                                     "seed", "size"]))
    for path in written:
        print(path)
    return 0


def cmd_superres(args: argparse.Namespace) -> int:
    from polydiff.apps.atmos.pipeline import run_superres
    from polydiff.apps.atmos.superres import SuperresOptions

    if args.coarse is None and args.obs is None:
        raise UserError("give a coarse NetCDF file and/or --obs observations.csv")
    if args.coarse is not None and args.factor is None:
        raise UserError("--factor K is required with a coarse file")
    if args.coarse is None and args.grid is None:
        raise UserError("--obs without a coarse file needs --grid fine_template.nc")
    if args.members < 1 or args.steps < 1:
        raise UserError("--members and --steps must be at least 1")
    opts = SuperresOptions(factor=args.factor, members=args.members, steps=args.steps,
                           guidance=args.guidance, coarse_sigma=args.coarse_sigma)
    nc, png = run_superres(
        coarse=args.coarse, obs=args.obs, grid=args.grid, out=args.out, opts=opts,
        model=args.model, device=pick_device(args.device), seed=args.seed,
        command=_command(args, ["obs", "grid", "factor", "members", "steps", "guidance",
                                "seed", "out"]))
    print(f"wrote {nc} and {png}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from polydiff.apps.atmos.config import AtmosConfig
    from polydiff.apps.atmos.train import run_training
    from polydiff.diffusion import load_config

    cfg = load_config(args.config, AtmosConfig)
    if args.out is not None:
        cfg.train.out_dir = str(args.out)
    if args.device is not None:
        cfg.train.device = args.device
    result = run_training(cfg)
    tail = result.losses[-50:] or [float("nan")]
    print(f"trained {result.step} steps, final loss {sum(tail) / len(tail):.4f}; "
          f"checkpoint in {cfg.train.out_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from polydiff.apps.atmos.pipeline import evaluate_files

    report = evaluate_files(args.truth, args.pred)
    for var, m in report["variables"].items():
        spec = m["spectrum"]
        high = slice(len(spec["wavenumber"]) * 3 // 4, None)  # the smallest scales
        power = sum(spec["members"][high]) / max(sum(spec["truth"][high]), 1e-30)
        print(f"{var:>4}: RMSE {m['rmse']:.4g}  CRPS {m['crps']:.4g}  "
              f"spread/skill {m['spread_skill']:.3f}  small-scale power {power:.2f} x truth  "
              f"({m['units']})")
    out = args.json if args.json is not None else Path(args.pred).with_suffix(".metrics.json")
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    sub = p.add_subparsers(dest="atmos_command", metavar="COMMAND", required=True)

    g = sub.add_parser("generate", help="synthetic fine fields (+ coarse file, observations)")
    g.add_argument("--n", type=int, default=4, help="number of time steps (default 4)")
    g.add_argument("-o", "--out", type=Path, required=True, help="fine fields NetCDF")
    g.add_argument("--coarsen", type=int, default=None, help="also write <out>_coarse.nc")
    g.add_argument("--obs", type=int, default=None, help="also write <out>_obs.csv: M stations")
    g.add_argument("--trajectories", type=int, default=1, help="independent flows (default 1)")
    g.add_argument("--size", type=int, default=32, help="grid points per side (default 32)")
    g.add_argument("--resolution", type=float, default=1.0, help="degrees (default 1.0)")
    g.add_argument("--spinup", type=int, default=None, help="spin-up steps of the flow")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_generate)

    s = sub.add_parser("superres", help="fine ensemble from a coarse file and/or observations")
    s.add_argument("coarse", type=Path, nargs="?", default=None, help="coarse CF/ERA5 NetCDF")
    s.add_argument("--obs", type=Path, default=None, help="observations CSV")
    s.add_argument("--grid", type=Path, default=None, help="fine grid template (with --obs only)")
    s.add_argument("--factor", type=int, default=None, help="coarse-graining factor K")
    s.add_argument("--members", type=int, default=8, help="ensemble members (default 8)")
    s.add_argument("--steps", type=int, default=50, help="reverse steps (default 50)")
    s.add_argument("--guidance", type=float, default=0.3,
                   help="DPS step size zeta (default 0.3)")
    s.add_argument("--coarse-sigma", type=float, default=0.02,
                   help="coarse noise std as a fraction of each variable's std (default 0.02)")
    s.add_argument("-o", "--out", type=Path, required=True, help="fine ensemble NetCDF")
    add_runtime_args(s)
    s.set_defaults(func=cmd_superres)

    t = sub.add_parser("train", help="train the score prior from a YAML config (torchrun-ready)")
    t.add_argument("--config", type=Path, required=True, help="configs/atmos/<name>.yaml")
    t.add_argument("--out", type=Path, default=None, help="output folder (default: config's)")
    t.add_argument("--device", default=None, help="auto|cpu|cuda (default: the config's)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="lat-weighted RMSE, CRPS, spread/skill, spectra")
    e.add_argument("--truth", type=Path, required=True, help="fine truth NetCDF")
    e.add_argument("--pred", type=Path, required=True, help="superres output NetCDF")
    e.add_argument("--json", type=Path, default=None,
                   help="metrics JSON (default: <pred>.metrics.json)")
    e.set_defaults(func=cmd_evaluate)


def demo(out_dir: Path, *, device: torch.device, seed: int) -> str:
    """Generate one field, super-resolve its 4× coarse version with 8 observations."""
    from polydiff.apps.atmos.pipeline import evaluate_files, generate_files, run_superres
    from polydiff.apps.atmos.superres import SuperresOptions
    from polydiff.physics.atmos_fields import FieldConfig

    out_dir = Path(out_dir)
    truth, coarse, obs, _ = generate_files(
        out_dir / "truth.nc", n=1, cfg=FieldConfig(spinup_steps=600), seed=seed,
        trajectories=1, coarsen=4, n_obs=8, command="polydiff demo (atmos generate)")
    opts = SuperresOptions(factor=4, members=4, steps=20)
    nc, png = run_superres(coarse=coarse, obs=obs, grid=None, out=out_dir / "superres.nc",
                           opts=opts, model=None, device=device, seed=seed,
                           command="polydiff demo (atmos superres)")
    report = evaluate_files(truth, nc)
    rmse = ", ".join(f"{v} {m['rmse']:.3g} {m['units']}"
                     for v, m in report["variables"].items())
    return f"4x super-resolution + 8 stations, 4 members: RMSE {rmse}; wrote {nc}, {png}"

