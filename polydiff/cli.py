"""The ``polydiff`` command: one sub-command per app, plus ``demo`` and ``info``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from polydiff import __version__
from polydiff.runtime import UserError, nvdiffrast_status, pick_device

# The one explicit table of apps: name -> (module with `register` and `demo`, one-line help).
APPS: dict[str, tuple[str, str]] = {
    "mesh": ("polydiff.apps.mesh.cli", "text -> 3-D mesh; multi-view normals -> mesh"),
    "mono": ("polydiff.apps.mono.cli", "depth, normals and camera intrinsics from one image"),
    "pde": ("polydiff.apps.pde.cli", "PDE trajectories by wavelet-domain diffusion"),
    "atmos": ("polydiff.apps.atmos.cli", "atmospheric super-resolution with ensembles"),
    "mri": ("polydiff.apps.mri.cli", "active MRI subsampling by diffusion"),
}


def load_app(name: str):
    """The app's CLI module, or None when the app has not landed yet."""
    module, _ = APPS[name]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and (module == err.name or module.startswith(err.name + ".")):
            return None
        raise


def _not_available(name: str):
    def run(args: argparse.Namespace) -> int:
        raise UserError(f"the {name} app is not available yet in this version of polydiff")

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polydiff", description="Five domain applications on one diffusion backbone."
    )
    parser.add_argument("--version", action="version", version=f"polydiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in APPS.items():
        app = load_app(name)
        if app is None:
            p = sub.add_parser(name, help=f"{help_text} (not available yet)")
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            p.set_defaults(func=_not_available(name))
        else:
            app.register(sub, name, help_text)
    p = sub.add_parser("demo", help="run every available app on its bundled default")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda (default: auto)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_demo)
    p = sub.add_parser("info", help="versions, device, rasterizer and bundled checkpoints")
    p.set_defaults(func=run_info)
    return parser


def run_demo(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    missing = []
    for name in APPS:
        app = load_app(name)
        if app is None:
            missing.append(name)
            continue
        print(f"== {name} ==", flush=True)
        print(app.demo(args.out / name, device=device, seed=args.seed), flush=True)
    if missing:
        print(f"not available yet: {', '.join(missing)}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    import diffusers
    import numpy
    import torch

    from polydiff.weights import bundled_checkpoints

    print(f"polydiff {__version__}")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"diffusers {diffusers.__version__}, numpy {numpy.__version__}")
    print(f"--device auto picks: {pick_device('auto')}")
    print(f"nvdiffrast: {nvdiffrast_status()}")
    print("apps: " + ", ".join(
        f"{n}{'' if load_app(n) else ' (not available yet)'}" for n in APPS))
    ckpts = bundled_checkpoints()
    print("bundled checkpoints:" + ("" if ckpts else " none"))
    for name, (path, size) in ckpts.items():
        print(f"  {name}: {path} ({size / 1e6:.2f} MB)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"polydiff {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("polydiff: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # never a traceback for a user, unless asked for
        if os.environ.get("POLYDIFF_DEBUG"):
            raise
        print(f"polydiff {args.command}: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
