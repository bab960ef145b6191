"""PNG pictures of atmos fields (matplotlib, Agg backend): one row per variable."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from polydiff.plotting import pyplot, save_figure


def plot_maps(path: str | Path, columns: dict[str, dict[str, np.ndarray]],
              extent: tuple[float, float, float, float], *, title: str = "") -> Path:
    """Maps ``columns[name][variable]`` (2-D arrays) in a grid: variables down, columns across.

    Columns sharing a variable share its colour range, except those named ``*std*`` or
    ``*spread*``, which get their own.
    """
    names = list(columns)
    variables = list(next(iter(columns.values())))
    fig, axes = pyplot().subplots(len(variables), len(names), squeeze=False,
                             figsize=(2.6 * len(names) + 0.5, 2.2 * len(variables)))
    for r, var in enumerate(variables):
        shared = [columns[n][var] for n in names if not _own_scale(n)]
        lo = min(float(np.min(a)) for a in shared) if shared else None
        hi = max(float(np.max(a)) for a in shared) if shared else None
        for c, name in enumerate(names):
            ax = axes[r, c]
            own = _own_scale(name)
            im = ax.imshow(columns[name][var], origin="lower", extent=extent,
                           cmap="magma" if own else "viridis",
                           vmin=None if own else lo, vmax=None if own else hi)
            fig.colorbar(im, ax=ax, shrink=0.8)
            ax.set_title(f"{name}: {var}", fontsize=8)
            ax.tick_params(labelsize=6)
    return save_figure(fig, path, title=title, dpi=90, title_size=9)


def _own_scale(name: str) -> bool:
    return "std" in name or "spread" in name


def extent_of(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float, float, float]:
    """imshow extent (west, east, south, north) of cell-centre coordinates."""
    dlat = (lat[-1] - lat[0]) / max(len(lat) - 1, 1) / 2
    dlon = (lon[-1] - lon[0]) / max(len(lon) - 1, 1) / 2
    return (float(lon[0] - dlon), float(lon[-1] + dlon), float(lat[0] - dlat),
            float(lat[-1] + dlat))


def _upsampled(coarse: np.ndarray, factor: int) -> np.ndarray:
    return np.kron(coarse, np.ones((factor, factor)))


def plot_synthetic(path: str | Path, truth, coarse, factor: int | None) -> Path:
    """Truth (and its block means) at the first time step of a generated dataset."""
    variables = list(truth.data_vars)
    columns = {"truth": {v: truth[v].values[0] for v in variables}}
    if coarse is not None:
        columns[f"coarse x{factor}"] = {v: _upsampled(coarse[v].values[0], factor)
                                        for v in variables}
    return plot_maps(path, columns, extent_of(truth.latitude.values, truth.longitude.values),
                     title=f"synthetic fields, {str(truth.time.values[0])[:16]}")


def plot_ensemble(path: str | Path, result, coarse, factor: int | None,
                  variables: list[str]) -> Path:
    """Coarse input, ensemble mean, one member and the spread at the first time step."""
    columns = {}
    if coarse is not None:
        columns[f"coarse x{factor}"] = {
            v: _upsampled(coarse[v].isel(time=0).values, factor) for v in variables}
    columns["mean"] = {v: result[f"{v}_mean"].values[0] for v in variables}
    columns["member 0"] = {v: result[v].values[0, 0] for v in variables}
    columns["spread (std)"] = {v: result[f"{v}_std"].values[0] for v in variables}
    return plot_maps(path, columns, extent_of(result.latitude.values, result.longitude.values),
                     title=f"{result.sizes['member']} members, "
                           f"{str(result.time.values[0])[:16]}")
