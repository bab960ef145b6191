"""Pictures of the mesh app: contact sheets of normal maps and shaded turntable renders."""

from __future__ import annotations

import os

import numpy as np


def normal_image(normals: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) unit world normals -> RGB in [0, 1] (n/2 + 1/2), white background."""
    rgb = normals * 0.5 + 0.5
    return np.where(mask[..., None], rgb, 1.0)


def shaded_image(normals: np.ndarray, mask: np.ndarray, color: np.ndarray | None,
                 light=(0.3, -0.6, 0.75)) -> np.ndarray:
    """Lambert + ambient shading of (H, W, 3) world normals and colours, white background."""
    light = np.asarray(light, dtype=np.float64)
    light /= np.linalg.norm(light)
    shade = 0.35 + 0.65 * np.clip(normals @ light, 0, 1)
    base = color if color is not None else np.full(normals.shape, 0.75)
    rgb = np.clip(base * shade[..., None], 0, 1)
    return np.where(mask[..., None], rgb, 1.0)


def contact_sheet(path: str | os.PathLike, rows: dict[str, list[np.ndarray]],
                  title: str = "") -> None:
    """One PNG: a row of images per entry of ``rows`` (label -> list of (H, W, 3) images)."""
    from polydiff.plotting import pyplot, save_figure

    plt = pyplot()
    n_rows, n_cols = len(rows), max(len(v) for v in rows.values())
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.0 * n_cols, 2.1 * n_rows + 0.3),
                             squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(np.clip(images[c], 0, 1), interpolation="nearest")
        axes[r][0].set_title(label, loc="left", fontsize=9)
    save_figure(fig, path, title=title)
