"""Start-up cost of the CLI against a bare ``import torch``, in one interleaved run.

A scripted pipeline that calls one command per file pays the start-up each time; the goal
(issue 9) is ``polydiff --help`` in at most half the time of ``import torch``. Writes
benchmarks/results/cli_startup.json and .png.
"""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks.common import figure_path, write_json

APPS = ("mesh", "mono", "pde", "atmos", "mri")


def _seconds(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=False)
    return time.perf_counter() - t0


def main(quick: bool = True) -> dict:
    repeats = 3 if quick else 9
    commands = {"import torch": [sys.executable, "-c", "import torch"],
                "polydiff --help": [sys.executable, "-m", "polydiff.cli", "--help"],
                "polydiff --version": [sys.executable, "-m", "polydiff.cli", "--version"]}
    for app in APPS:
        commands[f"polydiff {app} --help"] = [sys.executable, "-m", "polydiff.cli", app, "--help"]
    times: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # warm the file cache once
        _seconds(argv)
    for _ in range(repeats):  # interleaved, so machine load affects all alike
        for name, argv in commands.items():
            times[name].append(_seconds(argv))
    median = {name: sorted(v)[len(v) // 2] for name, v in times.items()}
    ratio = median["polydiff --help"] / median["import torch"]
    result = {"repeats": repeats, "median_seconds": median,
              "help_over_import_torch": ratio, "goal": "help <= 0.5 x import torch"}
    write_json("cli_startup", result)
    _plot(median)
    print(f"   polydiff --help {median['polydiff --help']:.3f} s, import torch "
          f"{median['import torch']:.3f} s (ratio {ratio:.2f})")
    return result


def _plot(median: dict[str, float]) -> None:
    from polydiff.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = list(median)
    ax.barh(names, [median[n] for n in names], color=["#999"] + ["#3a7"] * (len(names) - 1))
    ax.set_xlabel("seconds (median)")
    ax.set_title("CLI start-up against import torch")
    ax.invert_yaxis()
    save_figure(fig, figure_path("cli_startup"))


if __name__ == "__main__":
    main(quick="--full" not in sys.argv)
