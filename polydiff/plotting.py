"""Pictures for people: matplotlib on the Agg backend, PNGs written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, *, title: str = "", dpi: int = 100,
                title_size: float | None = None) -> Path:
    """Title, lay out, write ``fig`` as PNG to ``path`` atomically, and close it."""
    from polydiff.runtime import atomic_output

    top = 1.0
    if title:  # tight_layout leaves no room for a suptitle: reserve its lines at the top
        height = fig.get_figheight()  # inches; the title hangs 0.05 in below the top edge
        fig.suptitle(title, fontsize=title_size, y=1 - 0.05 / height, va="top")
        points = (title_size or 12) * 1.5 * (title.count("\n") + 1)
        top = max(0.5, 1.0 - (points / 72 + 0.15) / height)
    fig.tight_layout(rect=(0, 0, 1, top))
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(fig)
    return Path(path)
