"""`polydiff demo`: wall time of the whole tour and of each app (goal: < 5 min on the 2-core
CPU), and a screenshot of its report.html in headless Chromium.

Writes results/demo_tour.json and results/demo_report.png (the report's full page). The
demo runs in a fresh process, as `make demo` runs it; the machine's load average before and
after is recorded, and the demo's CPU time, since the shared development CPU is rarely idle
and its wall time varies several-fold with the load.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, bench_device, write_json


def main(quick: bool = True) -> dict:
    device = str(bench_device())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo_out"
        load_before = os.getloadavg()
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "polydiff.cli", "demo", "-o", str(out),
                               "--device", device], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime -
                                                             cpu_before.ru_stime)
        load_after = os.getloadavg()
        record = json.loads((out / "demo.json").read_text())
        shot = None
        from polydiff.tour.browser import chromium_missing, screenshot

        if chromium_missing() is None:
            shot = screenshot(out / "report.html", RESULTS / "demo_report.png")
        result = {
            "command": f"polydiff demo -o DIR --device {device}",
            "exit_status": done.returncode,
            "wall_seconds": round(seconds, 1),
            "cpu_seconds": round(cpu, 1),  # user + system of the demo process: less load-bound
            "goal_seconds": 300,
            "apps": {name: {"ok": app["ok"], "seconds": app["seconds"],
                            "metrics": app["metrics"], "baseline": app["baseline"],
                            "error": next(iter((app["error"] or "").splitlines()), None)}
                     for name, app in record["apps"].items()},
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "screenshot": None if shot is None else str(shot.relative_to(RESULTS.parent)),
            "screenshot_skipped": chromium_missing(),
        }
    path = write_json("demo_tour", result)
    print(f"demo: {seconds:.0f} s (exit {done.returncode}); wrote {path}"
          + (f", {shot}" if shot else ""))
    return result


if __name__ == "__main__":
    main()
