"""``polydiff pde simulate|control|evaluate`` end to end with the bundled checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import xarray as xr

from polydiff.apps.pde.model import bundled_folder, load_model
from polydiff.physics.burgers import BurgersGrid, sample_burgers_problem, solve_burgers
from polydiff.physics.pde_data import Trajectories, read_trajectories, write_trajectories
from polydiff.runtime import make_generator
from tests.apps.pde.pde_testing import cli

pytestmark = pytest.mark.skipif(not (bundled_folder() / "polydiff.json").is_file(),
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


@pytest.fixture(scope="module")
def test_set(tmp_path_factory) -> Path:
    """Two solver trajectories on the model's base grid, as a PDEBench-layout file."""
    grid = BurgersGrid(nx=31, nt=33, t_final=8.0)
    p = sample_burgers_problem(2, grid, make_generator(1))
    f = p.forcing.on_grid(grid.t(), grid.x())
    u = solve_burgers(p.u0, grid, forcing=f)
    path = tmp_path_factory.mktemp("pde_eval") / "test.h5"
    write_trajectories(Trajectories(u, grid.x(), grid.t(), forcing=f, equation="burgers",
                                    params={"Nu": 0.01}), path)
    return path


def test_simulate_writes_the_netcdf_and_holds_u0(problem, tmp_path: Path, capsys) -> None:
    out = tmp_path / "traj.nc"
    rc = cli("simulate", "--init", problem["u0"], "--forcing", problem["f"], "--members", 2,
             "--steps", 4, "--device", "cpu", "-o", out)
    assert rc == 0 and out.is_file() and out.with_suffix(".png").is_file()
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {out}, {out.with_suffix('.png')}"
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
    args = ["simulate", "--steps", 3, "--device", "cpu"]
    a, b, c = tmp_path / "a.nc", tmp_path / "b.nc", tmp_path / "c.nc"
    assert cli(*args, "--seed", 7, "-o", a) == 0 and cli(*args, "--seed", 7, "-o", b) == 0
    assert a.read_bytes() == b.read_bytes()
    assert cli(*args, "--seed", 8, "-o", c) == 0
    with xr.open_dataset(a, engine="h5netcdf") as da, xr.open_dataset(c, engine="h5netcdf") as dc:
        assert not np.allclose(da["u0"].values, dc["u0"].values)  # --seed draws another u0


def _bad(tmp_path: Path, *extra) -> None:
    out = tmp_path / "bad.nc"
    assert cli("simulate", "--steps", 2, "--device", "cpu", *extra, "-o", out) == 2
    assert not out.exists() and not list(tmp_path.glob(".bad.*"))


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
    _bad(tmp_path, "--init", wrong)                 # wrong length
    _bad(tmp_path, "--init", nan)                   # NaNs
    _bad(tmp_path, "--init", corrupt)               # not HDF5
    _bad(tmp_path, "--init", empty)                 # no u0 / tensor
    _bad(tmp_path, "--init", tmp_path / "missing.npy")
    _bad(tmp_path, "--equation", "kdv")             # unknown equation
    _bad(tmp_path, "--nx", 50)                      # a grid the model cannot serve
    _bad(tmp_path, "--nx", 63, "--superres-model", tmp_path)  # no SR model there
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 8
    assert all(line.startswith(("polydiff pde: error: ", "polydiff pde simulate: error: "))
               for line in err)
    assert any("invalid choice: 'kdv'" in line for line in err)
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
    rc = cli("control", "--init", problem["u0"], "--target", problem["uT"], "--members", 2,
             "--steps", 4, "--device", "cpu", "-o", out)
    assert rc == 0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds["objective"].dims == ("member",) and "u_solver" in ds


def test_the_control_command_defaults_to_the_tuned_settings() -> None:
    """``--sigma`` and ``--alpha`` default to ``ControlSettings`` (tuned on held-out problems)."""
    from polydiff.apps.pde.control import ControlSettings
    from polydiff.cli import build_parser

    argv = ["pde", "control", "--init", "a.npy", "--target", "b.npy", "-o", "c.nc"]
    args = build_parser(argv).parse_args(argv)
    assert (args.sigma, args.alpha) == (ControlSettings().sigma, ControlSettings().alpha)


def test_evaluate_the_model_writes_metrics_and_refuses_other_grids(test_set: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    assert cli("evaluate", "--truth", test_set, "--steps", 3, "--device", "cpu",
               "--json", out) == 0
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 2 and metrics["nt"] == 32 and len(metrics["nrmse_per_time"]) == 32
    assert metrics["mse"] > 0 and 0 <= metrics["time_until_decorrelation"] <= 8.0
    assert metrics["nrmse"] == pytest.approx(np.mean(metrics["nrmse_per_time"]))
    assert metrics["steps"] == 3 and (tmp_path / "m.metrics.png").is_file()
    other = tmp_path / "other.h5"  # 40 time levels: not the model's grid
    g2 = BurgersGrid(nx=31, nt=40, t_final=8.0)
    write_trajectories(Trajectories(torch.zeros(1, 40, 31), g2.x(), g2.t(),
                                    equation="burgers", params={"Nu": 0.01}), other)
    bad = tmp_path / "bad.json"
    assert cli("evaluate", "--truth", other, "--device", "cpu", "--json", bad) == 2
    assert not bad.exists() and not (tmp_path / "bad.metrics.png").exists()


def test_evaluate_members_scores_the_ensemble_mean(test_set: Path, tmp_path: Path,
                                                  capsys) -> None:
    """--members 2 scores the mean of two samples: its first sample is the one-member run of
    the same seed, so 2 x mean - that run is the second sample, another valid trajectory."""
    from polydiff.apps.pde.evaluate import predict

    truth = read_trajectories(test_set)
    model = load_model(None, "cpu")
    one = predict(model, truth, steps=3, seed=5)
    two = predict(model, truth, steps=3, seed=5, members=2)
    second = 2 * two.pred - one.pred
    assert not np.allclose(second, one.pred, atol=1e-3)
    assert np.abs(second[:, 0] - truth.u[:, 0].numpy()).max() < 1e-4  # u0 held exactly
    out = tmp_path / "m.json"
    assert cli("evaluate", "--truth", test_set, "--steps", 3, "--seed", 5, "--members", 2,
               "--device", "cpu", "--json", out) == 0
    metrics = json.loads(out.read_text())
    assert metrics["members"] == 2
    assert metrics["mse"] == pytest.approx(float(((two.pred - two.truth)[:, 1:] ** 2).mean()),
                                           rel=1e-4)
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    assert cli("evaluate", "--truth", test_set, "--pred", test_set, "--members", 2,
               "--json", bad) == 2 and not bad.exists()
    assert "--members is for the model's run" in capsys.readouterr().err


def test_evaluate_a_prediction_file(test_set: Path, tmp_path: Path, capsys) -> None:
    """A prediction 1.1 x the truth has nRMSE 0.1 at every time and correlation 1; the
    metrics go beside the prediction by default."""
    truth = read_trajectories(test_set)
    pred = tmp_path / "pred.nc"
    write_trajectories(Trajectories(1.1 * truth.u, truth.x, truth.t, equation="burgers"), pred)
    assert cli("evaluate", "--truth", test_set, "--pred", pred) == 0
    out = tmp_path / "pred.metrics.json"
    metrics = json.loads(out.read_text())
    assert metrics["nrmse"] == pytest.approx(0.1, rel=1e-5)
    np.testing.assert_allclose(metrics["nrmse_per_time"], 0.1, rtol=1e-5)
    np.testing.assert_allclose(metrics["correlation_per_time"], 1.0, rtol=1e-6)
    assert metrics["mse"] == pytest.approx(0.01 * float(truth.u[:, 1:].double().pow(2).mean()),
                                           rel=1e-4)
    assert capsys.readouterr().out.splitlines()[-1] == \
        f"wrote {out}, {tmp_path / 'pred.metrics.png'}"
    # the prediction must be of the test set's shape, and --model belongs to the model's run
    short = tmp_path / "short.nc"
    write_trajectories(truth.select(slice(0, 1)), short)
    assert cli("evaluate", "--truth", test_set, "--pred", short, "--json",
               tmp_path / "s.json") == 2
    assert cli("evaluate", "--truth", test_set, "--pred", pred, "--model", tmp_path,
               "--json", tmp_path / "s.json") == 2
    assert not (tmp_path / "s.json").exists()


def test_help_and_argument_errors_need_no_torch() -> None:
    """The pde CLI module imports neither torch nor numpy; help and argument errors answer
    without them."""
    code = ("import sys\n"
            "import polydiff.apps.pde.cli\n"
            "from polydiff.cli import main\n"
            "for argv in (['pde', 'simulate', '--help'], ['pde', 'generate', '--nx', '0']):\n"
            "    try:\n"
            "        main(argv)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "heavy = [m for m in ('torch', 'numpy', 'xarray', 'h5py') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--members" in done.stdout and "outside [4, 1e+06]" in done.stderr


@pytest.mark.slow
def test_demo_writes_its_files(tmp_path: Path) -> None:
    from polydiff.apps.pde.cli import demo

    result = demo(tmp_path / "pde", device=torch.device("cpu"), seed=0)
    names = ("burgers.nc", "burgers.png", "control.nc", "control.png")
    assert "nRMSE" in result.summary and result.summary.endswith(
        "wrote " + ", ".join(str(tmp_path / "pde" / n) for n in names))
    assert result.files == [tmp_path / "pde" / n for n in names]
    assert all(p.is_file() for p in result.files)
    for key in ("simulate nRMSE", "control terminal misfit"):  # both beat doing nothing
        assert result.metrics[key] < result.baseline[key], key
