"""PNG pictures of reconstructions: images, uncertainty and the acquisition order."""

from __future__ import annotations

import os

import numpy as np

from polydiff.plotting import pyplot
from polydiff.plotting import save_figure as write_png


def order_image(order: np.ndarray, width: int) -> np.ndarray:
    """(W,) float: the rank at which each column was acquired (NaN: never)."""
    ranks = np.full(width, np.nan)
    ranks[order] = np.arange(len(order))
    return ranks


def save_figure(path: str | os.PathLike, panels: list[list[tuple[str, np.ndarray, str]]],
                title: str = "") -> None:
    """A grid of panels ``(label, array, kind)``, rows of the same length; ``kind`` is
    "image" (grey), "std" (magma) or "order" (a (W,) acquisition rank as a bar code)."""
    rows, cols = len(panels), max(len(r) for r in panels)
    fig, axes = pyplot().subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows), squeeze=False)
    for ax_row, row in zip(axes, panels):
        for ax, panel in zip(ax_row, row + [None] * (cols - len(row))):
            ax.axis("off")
            if panel is None:
                continue
            label, arr, kind = panel
            if kind == "order":
                ax.imshow(np.tile(arr[None], (len(arr), 1)), cmap="viridis_r",
                          interpolation="nearest")
            else:
                ax.imshow(arr, cmap="gray" if kind == "image" else "magma")
            ax.set_title(label, fontsize=7)
    write_png(fig, path, title=title, dpi=110, title_size=8)


def reconstruction_figure(path: str | os.PathLike, slices, zero_filled: np.ndarray, *,
                          policy: str, particles: int, title: str = "") -> None:
    """One row per slice: zero-filled with the same mask, the particle mean, their spread,
    and the acquisition order. ``slices``: SliceResults; ``zero_filled`` (S, H, W)."""
    save_figure(path, [[("zero-filled (same mask)", zero_filled[i], "image"),
                        (f"{policy} mean of {particles}", r.reconstruction, "image"),
                        ("particle std", r.std, "std"),
                        ("acquisition order", order_image(r.order, len(r.mask)), "order")]
                       for i, r in enumerate(slices)], title=title)
