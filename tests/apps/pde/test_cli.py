"""``polydiff pde simulate|control`` end to end with the bundled checkpoint, and bad input."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import xarray as xr

from polydiff.apps.pde.model import default_folder, load_model
from polydiff.cli import main
from polydiff.physics.burgers import BurgersGrid, sample_burgers_problem, solve_burgers
from polydiff.runtime import make_generator

pytestmark = pytest.mark.skipif(not (default_folder() / "polydiff.json").is_file(),
                                reason="bundled pde checkpoint missing")


@pytest.fixture(scope="module")
def problem(tmp_path_factory) -> dict[str, Path]:
    """u0, forcing and the solver's final state for one WDNO problem on the base grid."""
    folder = tmp_path_factory.mktemp("pde")
    grid = BurgersGrid(nx=31, nt=33, t_final=8.0)
    p = sample_burgers_problem(1, grid, make_generator(3))
    f = p.forcing.on_grid(grid.t(), grid.x())
    u = solve_burgers(p.u0, grid, forcing=f)
    paths = {"u0": folder / "u0.npy", "f": folder / "f.npy", "uT": folder / "uT.npy"}
    np.save(paths["u0"], u[0, 0].float().numpy())
    np.save(paths["f"], f[0].float().numpy())
    np.save(paths["uT"], u[0, -1].float().numpy())
    return paths


def test_simulate_writes_the_netcdf_and_holds_u0(problem, tmp_path: Path) -> None:
    out = tmp_path / "traj.nc"
    rc = main(["pde", "simulate", "--init", str(problem["u0"]), "--forcing", str(problem["f"]),
               "--members", "2", "--steps", "4", "--device", "cpu", "-o", str(out)])
    assert rc == 0 and out.is_file() and out.with_suffix(".png").is_file()
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds["u"].dims == ("member", "t", "x") and ds["u"].shape == (2, 33, 31)
        assert ds["t"].values[-1] == pytest.approx(8.0) and ds.attrs["steps"] == 4
        u0 = np.load(problem["u0"])
        np.testing.assert_allclose(ds["u0"].values, u0)
        np.testing.assert_allclose(ds["u"].values[:, 0], np.broadcast_to(u0, (2, 31)), atol=1e-5)
        np.testing.assert_allclose(ds["forcing"].values[:, :-1],
                                   np.broadcast_to(np.load(problem["f"])[:-1], (2, 32, 31)),
                                   atol=1e-5)


def test_same_seed_same_file(tmp_path: Path) -> None:
    args = ["pde", "simulate", "--steps", "3", "--device", "cpu", "--seed", "7"]
    a, b, c = tmp_path / "a.nc", tmp_path / "b.nc", tmp_path / "c.nc"
    assert main([*args, "-o", str(a)]) == 0 and main([*args, "-o", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert main([*args[:-1], "8", "-o", str(c)]) == 0
    with xr.open_dataset(a, engine="h5netcdf") as da, xr.open_dataset(c, engine="h5netcdf") as dc:
        assert not np.allclose(da["u0"].values, dc["u0"].values)  # --seed draws another u0


def _bad(tmp_path: Path, *extra: str) -> None:
    out = tmp_path / "bad.nc"
    rc = main(["pde", "simulate", "--steps", "2", "--device", "cpu", *extra, "-o", str(out)])
    assert rc != 0
    assert not out.exists() and not list(tmp_path.glob(".bad.nc*"))


def test_bad_input_fails_without_output(tmp_path: Path, capsys) -> None:
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros(40, np.float32))
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full(31, np.nan, np.float32))
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"not an hdf5 file")
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as h5:
        h5["other"] = np.zeros(3)
    _bad(tmp_path, "--init", str(wrong))                 # wrong length
    _bad(tmp_path, "--init", str(nan))                   # NaNs
    _bad(tmp_path, "--init", str(corrupt))               # not HDF5
    _bad(tmp_path, "--init", str(empty))                 # no u0 / tensor
    _bad(tmp_path, "--init", str(tmp_path / "missing.npy"))
    _bad(tmp_path, "--equation", "kdv")                  # unknown equation
    _bad(tmp_path, "--nx", "50")                         # a grid the model cannot serve
    _bad(tmp_path, "--nx", "63", "--superres-model", str(tmp_path))  # no SR model there
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("polydiff pde: error: ") for line in err if "error" in line)
    assert any("unknown equation 'kdv'" in line for line in err)
    assert any("NaN" in line for line in err)


def test_control_reduces_the_terminal_misfit(problem, tmp_path: Path) -> None:
    """Guided forcings land closer to the target than unguided ones (solver-checked)."""
    from polydiff.apps.pde.control import ControlSettings, control

    model = load_model(None, "cpu")
    u0, target = np.load(problem["u0"]), np.load(problem["uT"])
    kw = dict(members=4, steps=20, seed=0)
    guided = control(model, u0, target, **kw)
    free = control(model, u0, target, settings=ControlSettings(guided=False), **kw)
    g, f = guided.extra["misfit"][1], free.extra["misfit"][1]
    assert np.mean(g) < 0.5 * np.mean(f)
    out = tmp_path / "control.nc"
    rc = main(["pde", "control", "--init", str(problem["u0"]), "--target", str(problem["uT"]),
               "--members", "2", "--steps", "4", "--device", "cpu", "-o", str(out)])
    assert rc == 0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds["objective"].dims == ("member",) and "u_solver" in ds


def test_evaluate_writes_metrics_and_refuses_other_grids(tmp_path: Path) -> None:
    import json

    from polydiff.physics.pde_data import Trajectories, write_trajectories

    grid = BurgersGrid(nx=31, nt=33, t_final=8.0)
    p = sample_burgers_problem(2, grid, make_generator(1))
    f = p.forcing.on_grid(grid.t(), grid.x())
    u = solve_burgers(p.u0, grid, forcing=f)
    data = tmp_path / "test.h5"
    write_trajectories(Trajectories(u, grid.x(), grid.t(), forcing=f, equation="burgers",
                                    params={"Nu": 0.01}), data)
    out = tmp_path / "m.json"
    assert main(["pde", "evaluate", "--data", str(data), "--steps", "3", "--device", "cpu",
                 "-o", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 2 and metrics["nt"] == 32 and len(metrics["nrmse_per_time"]) == 32
    assert metrics["mse"] > 0 and 0 <= metrics["time_until_decorrelation"] <= 8.0
    other = tmp_path / "other.h5"  # 40 time levels: not the model's grid
    g2 = BurgersGrid(nx=31, nt=40, t_final=8.0)
    write_trajectories(Trajectories(torch.zeros(1, 40, 31), g2.x(), g2.t(),
                                    equation="burgers", params={"Nu": 0.01}), other)
    bad = tmp_path / "bad.json"
    assert main(["pde", "evaluate", "--data", str(other), "--device", "cpu",
                 "-o", str(bad)]) != 0
    assert not bad.exists()


@pytest.mark.slow
def test_demo_writes_its_files(tmp_path: Path) -> None:
    from polydiff.apps.pde.cli import demo

    text = demo(tmp_path / "pde", device=torch.device("cpu"), seed=0)
    assert "nRMSE" in text
    assert (tmp_path / "pde" / "burgers.nc").is_file()
    assert (tmp_path / "pde" / "burgers.png").is_file()
