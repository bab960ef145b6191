"""The ``polydiff`` command: one sub-command per app, plus ``demo`` and ``info``.

Start-up is lazy: only the app named on the command line is imported, and app CLI modules
import torch inside their commands, so ``--help`` and argument errors answer without torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from pathlib import Path

from polydiff import __version__
from polydiff.apps.contract import Parser, add_output, add_runtime_args
from polydiff.runtime import UserError

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


def _command_of(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` (its first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the app named in ``argv`` is imported (all of them when None)."""
    wanted = _command_of(argv) if argv is not None else None
    parser = Parser(prog="polydiff",
                    description="Five domain applications on one diffusion backbone.")
    parser.add_argument("--version", action="version", version=f"polydiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in APPS.items():
        app = load_app(name) if argv is None or name == wanted else None
        if app is not None:
            app.register(sub, name, help_text)
            continue
        available = argv is not None and name != wanted  # not imported: assume it is there
        p = sub.add_parser(name, help=help_text if available else
                           f"{help_text} (not available yet)", add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(func=_not_available(name))
    p = sub.add_parser("demo", help="run every app on its bundled checkpoint; write "
                                    "DIR/<app>/ and DIR/report.html",
                       description="Run every app on its bundled checkpoint with small "
                                   "settings, write each app's files into DIR/<app>/ and a "
                                   "report.html that shows them. Exit status 1 when an app "
                                   "failed (the others still run).")
    add_output(p, "output folder (default: demo_out); --overwrite replaces only what an "
                  "earlier demo wrote there", required=False, default=Path("demo_out"))
    add_runtime_args(p, model=False)
    p.set_defaults(func=run_demo)
    p = sub.add_parser("info", help="versions, device, rasterizer and bundled checkpoints")
    p.set_defaults(func=run_info)
    return parser


def run_demo(args: argparse.Namespace) -> int:
    """Every app's demo into ``-o DIR/<app>/`` and ``DIR/report.html``; 1 if an app failed."""
    from polydiff.runtime import pick_device
    from polydiff.tour.run import run_tour

    device = pick_device(args.device)
    apps = {}
    for name, (_, help_text) in APPS.items():
        app = load_app(name)
        apps[name] = (help_text, None if app is None else app.demo)
    return run_tour(args.output, apps, device=device, seed=args.seed,
                    overwrite=args.overwrite, version=__version__)


def run_info(args: argparse.Namespace) -> int:
    import diffusers
    import numpy
    import torch

    from polydiff.runtime import nvdiffrast_status, pick_device
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


def _terminate(signum, frame):
    """SIGTERM unwinds like an error, so that no temporary output is left behind."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    command = _command_of(argv) or "polydiff"
    try:
        args = build_parser(argv).parse_args(argv)
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"polydiff {command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("polydiff: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"polydiff {command}: error: out of memory; try a smaller input or fewer "
              "members", file=sys.stderr)
        return 2
    except Exception as err:  # never a traceback for a user, unless asked for
        if os.environ.get("POLYDIFF_DEBUG"):
            raise
        print(f"polydiff {command}: internal error: {type(err).__name__}: {err} "
              "(set POLYDIFF_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def entry() -> None:
    """Console-script entry: SIGINT during start-up ends quietly too."""
    try:
        code = main()
    except KeyboardInterrupt:
        print("polydiff: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    entry()
