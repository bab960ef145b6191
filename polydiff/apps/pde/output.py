"""Trajectory files of the pde app: CF-style NetCDF with dims (member, t, x), and x-t PNGs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from polydiff.plotting import pyplot, save_figure
from polydiff.runtime import atomic_output


@dataclass
class TrajectorySet:
    """Sampled trajectories in the solver layout (interior nodes, t_0..t_nt).

    Attributes:
        u: (M, nt + 1, nx) states; u[:, 0] is the initial state.
        f: (M, nt + 1, nx) forcing.
        t: (nt + 1,) times; x: (nx,) positions.
        u0: (nx,) the initial state used.
        attrs: global attributes (equation, model, steps, seed ...).
        extra: further variables, name -> (dims, values, attrs).
    """

    u: np.ndarray
    f: np.ndarray
    t: np.ndarray
    x: np.ndarray
    u0: np.ndarray
    attrs: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_dataset(self) -> xr.Dataset:
        """The NetCDF dataset (float32 fields, float64 coordinates)."""
        data_vars = {
            "u": (("member", "t", "x"), self.u.astype(np.float32),
                  {"long_name": "Burgers state u", "units": "1"}),
            "forcing": (("member", "t", "x"), self.f.astype(np.float32),
                        {"long_name": "forcing f (acting from each saved time to the next)",
                         "units": "1"}),
            "u0": (("x",), self.u0.astype(np.float32),
                   {"long_name": "initial state used", "units": "1"}),
        }
        for name, (dims, values, attrs) in self.extra.items():
            data_vars[name] = (dims, np.asarray(values), attrs)
        coords = {
            "member": ("member", np.arange(self.u.shape[0], dtype=np.int32)),
            "t": ("t", self.t.astype(np.float64), {"long_name": "time", "units": "1"}),
            "x": ("x", self.x.astype(np.float64),
                  {"long_name": "position (interior nodes of [0, 1])", "units": "1"}),
        }
        return xr.Dataset(data_vars, coords, attrs={"Conventions": "CF-1.8", **self.attrs})


def write_netcdf(traj: TrajectorySet, path: Path) -> None:
    """Write ``traj`` to ``path`` whole or not at all."""
    with atomic_output(path) as tmp:
        traj.to_dataset().to_netcdf(tmp, engine="h5netcdf")


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
