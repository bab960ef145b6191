"""Pictures of the pde app: x-t images of trajectories, and error curves over time (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from polydiff.plotting import pyplot, save_figure


def plot_xt(path: Path, panels: dict[str, np.ndarray], t: np.ndarray, x: np.ndarray,
            title: str = "") -> None:
    """One x-t image per panel (each (nt, nx)), written as PNG whole or not at all."""
    fig, axes = pyplot().subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    extent = (float(x[0]), float(x[-1]), float(t[-1]), float(t[0]))
    for ax, (name, img) in zip(axes[0], panels.items()):
        lim = float(np.abs(img).max()) or 1.0
        im = ax.imshow(img, aspect="auto", extent=extent, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set(title=name, xlabel="x", ylabel="t")
        fig.colorbar(im, ax=ax, shrink=0.8)
    save_figure(fig, path, title=title, dpi=100)


def plot_scores(path: Path, metrics: dict, truth: np.ndarray, pred: np.ndarray,
                t: np.ndarray, x: np.ndarray, title: str = "") -> None:
    """Truth, prediction and error of test item 0 (each (nt, nx) at ``t`` (nt,)), and the
    nRMSE and correlation curves of ``metrics`` (over ``t[1:]``), as one PNG."""
    fig, axes = pyplot().subplots(1, 5, figsize=(17, 3.2))
    extent = (float(x[0]), float(x[-1]), float(t[-1]), float(t[0]))
    lim = float(np.abs(truth).max()) or 1.0
    for ax, (name, img) in zip(axes[:3], (("truth (item 0)", truth), ("prediction", pred),
                                         ("error", pred - truth))):
        im = ax.imshow(img, aspect="auto", extent=extent, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set(title=name, xlabel="x", ylabel="t")
        fig.colorbar(im, ax=ax, shrink=0.8)
    axes[3].plot(t[1:], metrics["nrmse_per_time"])
    axes[3].set(xlabel="t", ylabel="nRMSE over x (PDEBench)", yscale="log",
                title=f"nRMSE {metrics['nrmse']:.3g}")
    axes[4].plot(t[1:], metrics["correlation_per_time"])
    axes[4].axhline(0.8, color="grey", linestyle=":")
    axes[4].set(xlabel="t", ylabel="Pearson correlation over x", ylim=(-0.05, 1.05),
                title=f"corr >= 0.8 until t = {metrics['time_until_decorrelation']:.3g}")
    save_figure(fig, path, title=title, dpi=100)
