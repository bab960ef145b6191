"""Run every benchmark module ``benchmarks/<app>_<name>.py`` (each has ``main(quick)``)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

import torch


def discover() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(p.stem for p in here.glob("*_*.py") if not p.stem.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--full", action="store_true", help="full size instead of quick")
    parser.add_argument("--device", default=None,
                        help="auto|cpu|cuda for benchmarks that use benchmarks.common."
                             "bench_device (default: auto)")
    args = parser.parse_args(argv)
    if args.device is not None:
        os.environ["POLYDIFF_BENCH_DEVICE"] = args.device
    torch.set_num_threads(max(1, torch.get_num_threads()))
    failed = []
    for name in args.names or discover():
        print(f"== {name} ==", flush=True)
        t0 = time.time()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            module.main(quick=not args.full)
            print(f"   done in {time.time() - t0:.1f} s", flush=True)
        except Exception:  # one broken benchmark must not hide the others
            traceback.print_exc()
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
