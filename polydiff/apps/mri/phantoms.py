"""``mri phantoms``: a fastMRI-layout file of random ellipse phantoms, its cost checked first.

Slices are made and written one at a time, so memory holds one slice (with its coil images)
whatever ``n`` is; time, memory and disk are estimated from the options before any work.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tqdm.auto import tqdm

from polydiff.medical.fastmri_io import write_kspace_slices
from polydiff.medical.phantoms import phantom_cost, phantom_slices
from polydiff.runtime import UserError, available_memory, format_bytes

TIME_LIMIT_S = 3600.0  # one run of `mri phantoms` (several files can be made in parallel)
MEMORY_FRACTION = 0.8  # of the free memory, as polydiff.runtime.check_memory


def format_seconds(s: float) -> str:
    """``s`` seconds as a short human duration (2.5 h, 3.1 days, 12 years)."""
    for unit, length in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600),
                         ("min", 60)):
        if s >= length:
            return f"{s / length:.3g} {unit}"
    return f"{s:.2g} s"


def check_phantom_cost(n: int, size: int, coils: int, folder: str | os.PathLike) -> None:
    """Refuse a phantom file that would take longer than ``TIME_LIMIT_S``, or more memory or
    disk (in ``folder``) than this machine has; the message gives all three estimates."""
    cost = phantom_cost(n, size, coils)
    memory = MEMORY_FRACTION * available_memory()
    try:
        disk = shutil.disk_usage(Path(folder) if Path(folder).is_dir() else ".").free
    except OSError:
        disk = float("inf")
    over = [what for what, bad in (("time", cost.seconds > TIME_LIMIT_S),
                                   ("memory", cost.memory > memory),
                                   ("disk", cost.disk > disk)) if bad]
    if over:
        raise UserError(
            f"{n} phantom slices of {size}x{size} with {coils} coil(s) would take about "
            f"{format_seconds(cost.seconds)} (limit {format_seconds(TIME_LIMIT_S)}), need "
            f"{format_bytes(cost.memory)} of memory (this machine gives {format_bytes(memory)})"
            f" and write {format_bytes(cost.disk)} (free: {format_bytes(disk)}); too much "
            f"{' and '.join(over)}: use a smaller --n, --size or --coils")


def write_phantoms(path: str | os.PathLike, n: int, size: int, coils: int, seed: int, *,
                   progress: bool = True) -> str:
    """Write ``n`` phantom scans to ``path`` (fastMRI layout); returns a summary line.

    One coil: ``kspace`` (n, size, size) and ``reconstruction_esc``; several: ``kspace``
    (n, coils, size, size) of sensitivity-weighted images and ``reconstruction_rss``.
    """
    shape = (n, size, size) if coils == 1 else (n, coils, size, size)
    key = "reconstruction_esc" if coils == 1 else "reconstruction_rss"
    slices = tqdm(phantom_slices(n, size, coils, seed), total=n, desc="phantoms",
                  leave=False, disable=not progress)
    write_kspace_slices(path, slices, shape, key, {"seed": seed})
    return (f"made {n} phantom slice(s) of {size}x{size} "
            f"({coils} coil{'s' if coils > 1 else ''})")
