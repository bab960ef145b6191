"""Per-item cost of each app's command against its networks alone, measured in one run.

A scripted pipeline pays, for each extra item (an image, a time step, a slice, a member, a
prompt), the command's end-to-end cost; the networks' share of it is the floor. For each
app the same command runs on n and 2n items in-process (start-up excluded; the
faster of two runs each), with a global
forward hook timing the outermost diffusers network calls; the marginal costs

    end-to-end: (T(2n) − T(n)) / n        network: (N(2n) − N(n)) / n

and their ratio are reported (issue 9's figure: mono 0.051 s against 0.040 s, ratio 1.28).
Writes benchmarks/results/apps_throughput.json and .png.

The timer sees the networks' forward passes only: where sampling is guided (atmos, mri: DPS
differentiates the network's x̂₀), the backward pass through the network is counted outside
it, so a ratio near 2 there is the guidance's own cost, not overhead.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path

import torch
from diffusers import ModelMixin

from benchmarks.common import bench_device, figure_path, write_json
from polydiff.cli import main as polydiff


@contextlib.contextmanager
def network_timer():
    """Accumulate wall time spent inside outermost diffusers networks (a 1-item list)."""
    spent, depth, start = [0.0], [0], [0.0]

    def pre(module, args):
        if isinstance(module, ModelMixin):
            if depth[0] == 0:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                start[0] = time.perf_counter()
            depth[0] += 1

    def post(module, args, out):
        if isinstance(module, ModelMixin):
            depth[0] -= 1
            if depth[0] == 0:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                spent[0] += time.perf_counter() - start[0]

    h1 = torch.nn.modules.module.register_module_forward_pre_hook(pre)
    h2 = torch.nn.modules.module.register_module_forward_hook(post)
    try:
        yield spent
    finally:
        h1.remove()
        h2.remove()


def _run(argv: list[str]) -> None:
    code = polydiff(argv)
    if code != 0:
        raise RuntimeError(f"polydiff {' '.join(argv)} exited {code}")


def _timed(argv: list[str]) -> tuple[float, float]:
    with network_timer() as net:
        t0 = time.perf_counter()
        _run(argv)
        total = time.perf_counter() - t0
    return total, net[0]


# ------------------------------------------------------------------ one case per app
def mono(tmp: Path, n: int, device: str) -> list[str]:
    _run(["mono", "scenes", "--n", str(n), "-o", str(tmp / "scenes"), "--overwrite"])
    return ["mono", "estimate", str(tmp / "scenes"), "-o", str(tmp / "out"), "--overwrite",
            "--device", device]


def atmos(tmp: Path, n: int, device: str) -> list[str]:
    _run(["atmos", "generate", "--n", str(n), "--coarsen", "4", "--spinup", "200",
          "-o", str(tmp / "truth.nc"), "--overwrite"])
    return ["atmos", "superres", str(tmp / "truth_coarse.nc"), "--factor", "4", "--members",
            "4", "--steps", "20", "-o", str(tmp / "sr.nc"), "--overwrite", "--device", device]


def mri(tmp: Path, n: int, device: str) -> list[str]:
    from polydiff.apps.mri.model import load_model

    size = load_model(None, "cpu").size  # phantoms on the bundled prior's grid
    _run(["mri", "phantoms", "--n", str(n), "--size", str(size), "-o", str(tmp / "ph.h5"),
          "--overwrite"])
    return ["mri", "reconstruct", str(tmp / "ph.h5"), "--members", "8", "--steps", "20",
            "-o", str(tmp / "rec.h5"), "--overwrite", "--device", device]


def pde(tmp: Path, n: int, device: str) -> list[str]:
    return ["pde", "simulate", "--members", str(n), "--steps", "20", "-o",
            str(tmp / "sim.nc"), "--overwrite", "--device", device]


# app -> (unit, case, items in a quick run); members are batched, so pde needs more of them
CASES = {"mono": ("images", mono, 4), "atmos": ("time steps", atmos, 2),
         "mri": ("slices", mri, 2), "pde": ("members", pde, 16)}


def measure(name: str, scale: int, device: str, repeats: int = 2) -> dict:
    """Marginal costs from runs on n and 2n items (the faster of ``repeats`` runs each)."""
    unit, case, n = CASES[name]
    n *= scale
    rows = {}
    for items in (n, 2 * n):
        with tempfile.TemporaryDirectory() as folder:
            argv = case(Path(folder), items, device)
            _timed(argv)  # warm-up: model loading, caches
            rows[items] = min((_timed(argv) for _ in range(repeats)), key=lambda r: r[0])
    (t1, n1), (t2, n2) = rows[n], rows[2 * n]
    e2e, net = (t2 - t1) / n, (n2 - n1) / n
    return {"unit": unit, "items": [n, 2 * n], "seconds": [t1, t2], "network_seconds": [n1, n2],
            "per_item_end_to_end": e2e, "per_item_network": net,
            "items_per_second_end_to_end": 1 / e2e if e2e > 0 else None,
            "items_per_second_network": 1 / net if net > 0 else None,
            "ratio": e2e / net if net > 0 else None}


def main(quick: bool = True) -> dict:
    device = str(bench_device())
    results = {}
    for name in CASES:
        results[name] = measure(name, 1 if quick else 4, device)
        r = results[name]
        print(f"   {name}: one more {r['unit'][:-1]} costs {r['per_item_end_to_end']:.3f} s "
              f"end to end, {r['per_item_network']:.3f} s in the networks "
              f"(ratio {r['ratio']:.2f})", flush=True)
    out = {"device": device, "quick": quick, "apps": results,
           "note": "network time counts forward passes only; guided sampling (atmos, mri) "
                   "also runs a backward pass through the network per step"}
    write_json("apps_throughput", out)
    _plot(results, device)
    return out


def _plot(results: dict, device: str) -> None:
    from polydiff.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    names = list(results)
    x = range(len(names))
    e2e = [results[k]["per_item_end_to_end"] for k in names]
    net = [results[k]["per_item_network"] for k in names]
    ax.bar([i - 0.2 for i in x], e2e, 0.4, label="end to end", color="#3a7")
    ax.bar([i + 0.2 for i in x], net, 0.4, label="networks only", color="#999")
    ax.set_xticks(list(x), [f"{k}\n(per {results[k]['unit'][:-1]})" for k in names])
    ax.set_ylabel("seconds per extra item")
    ax.legend()
    save_figure(fig, figure_path("apps_throughput"), title=f"marginal cost per item ({device})")


if __name__ == "__main__":
    main(quick="--full" not in sys.argv)
