"""What every benchmark shares: where results go and how they are written."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

# benchmarks/gpu_check.sh points this elsewhere so GPU runs do not replace the CPU results
RESULTS = Path(os.environ.get("POLYDIFF_BENCH_RESULTS",
                              Path(__file__).resolve().parent / "results"))


def bench_device() -> torch.device:
    """The device a benchmark measures on: ``--device`` of benchmarks.run (default: auto)."""
    from polydiff.runtime import pick_device

    return pick_device(os.environ.get("POLYDIFF_BENCH_DEVICE", "auto"))


def machine() -> dict:
    """The machine a result was measured on."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "gpu": gpu, "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}


def write_json(name: str, result: dict) -> Path:
    """Write ``results/<name>.json`` with the machine facts added."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2, default=float))
    return path


def figure_path(name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / f"{name}.png"


def median_time(fn, repeats: int = 5) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def interleaved_times(a, b, repeats: int = 5) -> tuple[float, float]:
    """Median wall times of ``a()`` and ``b()``, run alternately so load affects both alike."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return sorted(ta)[repeats // 2], sorted(tb)[repeats // 2]
