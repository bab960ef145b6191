"""Trajectory files of the pde app: CF-style NetCDF with dims (member, t, x)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from polydiff.runtime import check_finite


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
        u_name, x_name: long names of u and x in the file.
    """

    u: np.ndarray
    f: np.ndarray
    t: np.ndarray
    x: np.ndarray
    u0: np.ndarray
    attrs: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    u_name: str = "Burgers state u"
    x_name: str = "position (interior nodes of [0, 1])"

    def check_finite(self, hint: str) -> None:
        """A UserError naming the variable when any value is NaN or infinite."""
        check_finite(self.u, "the sampled states u", hint)
        check_finite(self.f, "the sampled forcing", hint)
        for name, (_, values, _) in self.extra.items():
            check_finite(values, f"the variable {name}", hint)

    def to_dataset(self):
        """The NetCDF dataset (an ``xarray.Dataset``; float32 fields, float64 coordinates)."""
        import xarray as xr

        data_vars = {
            "u": (("member", "t", "x"), self.u.astype(np.float32),
                  {"long_name": self.u_name, "units": "1"}),
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
                  {"long_name": self.x_name, "units": "1"}),
        }
        return xr.Dataset(data_vars, coords, attrs={"Conventions": "CF-1.8", **self.attrs})


def write_netcdf(traj: TrajectorySet, path: Path) -> None:
    """Write ``traj`` to ``path`` (a temporary path of :class:`~polydiff.apps.contract.Outputs`)."""
    traj.to_dataset().to_netcdf(path, engine="h5netcdf")
