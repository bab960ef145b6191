"""Issue 10 for the pde app: never lose a user's data, finite results only, bounded sizes,
one-line errors (exit 2), and no partial files on a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import xarray as xr

from polydiff.apps.pde.model import bundled_folder
from polydiff.physics.burgers import BurgersGrid
from polydiff.physics.pde_data import Trajectories, write_trajectories
from tests.apps.pde.pde_testing import cli

pytestmark = pytest.mark.skipif(not (bundled_folder() / "polydiff.json").is_file(),
                                reason="bundled pde checkpoint missing")
ROOT = Path(__file__).resolve().parents[3]
FAST = ("--steps", 2, "--device", "cpu")


def profile(scale: float = 1.0, n: int = 31) -> np.ndarray:
    """A WDNO-like initial state (n,): a positive and a negative Gaussian, times ``scale``."""
    x = np.arange(1, n + 1) / (n + 1)
    u = np.exp(-((x - 0.3) / 0.08) ** 2) - np.exp(-((x - 0.7) / 0.08) ** 2)
    return (scale * u).astype(np.float32)


@pytest.fixture
def u0_nc(tmp_path: Path) -> Path:
    path = tmp_path / "u0.nc"
    xr.Dataset({"u0": (("x",), profile())}).to_netcdf(path, engine="h5netcdf")
    return path


def only_files(folder: Path) -> set[str]:
    """Names in ``folder``, hidden temporary files included."""
    return {p.name for p in folder.iterdir()}


def one_error_line(capsys) -> str:
    """The one error line on stderr (progress bars aside), and no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------- output = input, data loss
def test_an_output_that_is_an_input_is_refused(tmp_path: Path, u0_nc: Path, capsys) -> None:
    before = u0_nc.read_bytes()
    link = tmp_path / "link.nc"
    link.symlink_to(u0_nc)
    hard = tmp_path / "hard.nc"
    os.link(u0_nc, hard)
    for out in (u0_nc, link, hard):
        assert cli("simulate", "--init", u0_nc, *FAST, "-o", out) == 2
        assert "is also an input" in one_error_line(capsys)
    test = tmp_path / "test.h5"
    grid = BurgersGrid(nx=31, nt=33, t_final=8.0)
    write_trajectories(Trajectories(torch.zeros(1, 33, 31), grid.x(), grid.t()), test)
    truth = test.read_bytes()
    assert cli("evaluate", "--truth", test, "--json", test) == 2
    assert "is also an input" in one_error_line(capsys)
    assert cli("control", "--init", u0_nc, "--target", test, *FAST, "-o", test) == 2
    assert u0_nc.read_bytes() == before and test.read_bytes() == truth
    assert only_files(tmp_path) == {"u0.nc", "link.nc", "hard.nc", "test.h5"}


def test_folders_are_never_replaced(tmp_path: Path, capsys) -> None:
    """A folder where an output would go (the user's own files in it) stays as it is, with
    or without --overwrite."""
    mine = tmp_path / "traj.nc"
    mine.mkdir()
    (mine / "holiday.txt").write_text("mine")
    for extra in ((), ("--overwrite",)):
        assert cli("simulate", *FAST, *extra, "-o", mine) == 2
        assert "is an existing folder" in one_error_line(capsys)
    (tmp_path / "p.png").mkdir()
    assert cli("simulate", *FAST, "--overwrite", "-o", tmp_path / "p.nc") == 2
    assert "is an existing folder" in one_error_line(capsys)
    assert (mine / "holiday.txt").read_text() == "mine"
    assert only_files(tmp_path) == {"traj.nc", "p.png"}


def test_side_files_are_never_clobbered_without_overwrite(tmp_path: Path, capsys) -> None:
    """-o traj.nc names the NetCDF; an existing traj.png of the user's is kept (and then no
    file at all is written) unless --overwrite; the named output itself may be replaced."""
    out, png = tmp_path / "traj.nc", tmp_path / "traj.png"
    png.write_bytes(b"my own picture")
    assert cli("simulate", *FAST, "-o", out) == 2
    assert "traj.png already exists" in one_error_line(capsys)
    assert png.read_bytes() == b"my own picture" and only_files(tmp_path) == {"traj.png"}
    assert cli("simulate", *FAST, "-o", out, "--overwrite") == 0
    assert png.read_bytes()[:4] == b"\x89PNG" and out.is_file()
    assert cli("simulate", *FAST, "--seed", 1, "-o", out, "--overwrite") == 0  # named: replaced
    # evaluate: an unnamed default metrics file is kept, a named one is replaced
    test = tmp_path / "t.h5"
    grid = BurgersGrid(nx=31, nt=33, t_final=8.0)
    u = torch.from_numpy(np.tile(profile(), (1, 33, 1)))
    write_trajectories(Trajectories(u, grid.x(), grid.t()), test)
    pred = tmp_path / "p.h5"
    write_trajectories(Trajectories(1.1 * u, grid.x(), grid.t()), pred)
    (tmp_path / "p.metrics.json").write_text("mine")
    capsys.readouterr()
    assert cli("evaluate", "--truth", test, "--pred", pred) == 2
    assert (tmp_path / "p.metrics.json").read_text() == "mine"
    assert cli("evaluate", "--truth", test, "--pred", pred, "--json",
               tmp_path / "p.metrics.json") == 0
    assert (tmp_path / "p.metrics.json").read_text().startswith("{")


# ---------------------------------------------------------------- numbers and results
@pytest.mark.parametrize("argv", [
    ["control", "--alpha", "nan"],
    ["control", "--alpha", "0"],
    ["control", "--sigma", "0"],
    ["control", "--sigma", "inf"],
    ["simulate", "--members", "0"],
    ["simulate", "--steps", "0"],
    ["simulate", "--nx", "0"],          # once fell back to the default grid
    ["simulate", "--seed", "-1"],
    ["evaluate", "--steps", "1e9"],
])
def test_every_number_is_range_checked_by_the_parser(tmp_path: Path, capsys, argv) -> None:
    extra = {"control": ["--target", tmp_path / "t.npy", "-o", tmp_path / "o.nc"],
             "simulate": ["-o", tmp_path / "o.nc"], "evaluate": ["--truth", tmp_path / "t.h5"]}
    assert cli(*argv, *extra[argv[0]]) == 2
    line = one_error_line(capsys)
    assert f"argument {argv[1]}" in line and only_files(tmp_path) == set()


def test_help_shows_the_ranges(capsys) -> None:
    assert cli("control", "--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(range (0, 100]; default: 0.01)" in text and "(range [0.001, 100]" in text


def test_inputs_beyond_the_models_range_are_refused_before_work(tmp_path: Path,
                                                                 capsys) -> None:
    """An initial state of amplitude 1e30 once gave an all-NaN file with exit 0."""
    big = tmp_path / "big.npy"
    np.save(big, profile(1e30))
    out = tmp_path / "o.nc"
    assert cli("simulate", "--init", big, *FAST, "-o", out) == 2
    line = one_error_line(capsys)
    assert "9.76e+29" in line and "RMS 0.669" in line and "up to 6.69" in line
    forcing = tmp_path / "f.npy"
    np.save(forcing, np.full((33, 31), 1e6, np.float32))
    assert cli("simulate", "--forcing", forcing, *FAST, "-o", out) == 2
    assert "forcings of RMS 1.21" in one_error_line(capsys)
    target = tmp_path / "t.npy"
    np.save(target, profile(50.0))
    assert cli("control", "--target", target, *FAST, "-o", out) == 2
    assert "the target reaches" in one_error_line(capsys)
    assert only_files(tmp_path) == {"big.npy", "f.npy", "t.npy"}


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory) -> Path:
    """A diffusers folder of the bundled network with NaN weights (a diverged checkpoint)."""
    from polydiff.apps.pde.model import load_model

    folder = tmp_path_factory.mktemp("nan") / "model"
    net = load_model(None, "cpu").net
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(float("nan"))
    net.save_pretrained(folder / "unet", safe_serialization=True)
    return folder


def test_non_finite_results_are_errors_without_files(tmp_path: Path, nan_model: Path,
                                                     capsys) -> None:
    out = tmp_path / "o.nc"
    assert cli("simulate", "--model", nan_model, *FAST, "-o", out) == 2
    line = one_error_line(capsys)
    assert "not finite" in line and "diverged" in line and "nothing was written" in line
    test = tmp_path / "t.h5"
    grid = BurgersGrid(nx=31, nt=33, t_final=8.0)
    write_trajectories(Trajectories(torch.from_numpy(np.tile(profile(), (1, 33, 1))),
                                    grid.x(), grid.t()), test)
    assert cli("evaluate", "--truth", test, "--model", nan_model, *FAST) == 2
    assert "the model's predictions is not finite" in one_error_line(capsys)
    assert only_files(tmp_path) == {"t.h5"}


# ---------------------------------------------------------------- sizes from headers / options
def test_sizes_are_checked_before_work(tmp_path: Path, capsys, monkeypatch) -> None:
    huge = tmp_path / "huge.h5"  # a small file whose header declares 20 GiB
    with h5py.File(huge, "w") as h5:
        h5.create_dataset("tensor", shape=(20000, 512, 512), dtype="f4")
        h5.create_dataset("x-coordinate", data=np.arange(512.0))
        h5.create_dataset("t-coordinate", data=np.arange(512.0))
    assert huge.stat().st_size < 100_000
    start = time.perf_counter()
    assert cli("evaluate", "--truth", huge, "--json", tmp_path / "m.json") == 2
    line = one_error_line(capsys)
    assert "(20000, 512, 512)" in line and "needs about" in line
    assert time.perf_counter() - start < 10
    out = tmp_path / "o.nc"
    assert cli("simulate", "--nx", 16383, *FAST, "-o", out) == 2  # 9 super-resolution levels
    assert "up to 3 super-resolution levels); nx = 16383 would need 9" in one_error_line(capsys)
    monkeypatch.setattr("polydiff.runtime.available_memory", lambda: 64 * 2**20)
    assert cli("simulate", "--nx", 255, "--members", 64, *FAST, "-o", out) == 2
    assert "sampling 64 member(s) on the 257 x 255 grid needs about" in one_error_line(capsys)
    assert only_files(tmp_path) == {"huge.h5"}


def test_data_stored_outside_an_input_file_is_refused(tmp_path: Path, capsys) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(31, dtype="f4").tobytes())
    ext = tmp_path / "ext.h5"
    with h5py.File(ext, "w") as h5:
        h5.create_dataset("u0", shape=(31,), dtype="f4", external=[(str(secret), 0, 124)])
    assert cli("simulate", "--init", ext, *FAST, "-o", tmp_path / "o.nc") == 2
    assert "stored outside the file" in one_error_line(capsys)
    virtual = tmp_path / "virtual.h5"
    layout = h5py.VirtualLayout(shape=(1, 33, 31), dtype="f4")
    layout[0] = h5py.VirtualSource(str(tmp_path / "elsewhere.h5"), "tensor", shape=(33, 31))
    grid = BurgersGrid(nx=31, nt=33, t_final=8.0)
    with h5py.File(virtual, "w") as h5:
        h5.create_virtual_dataset("tensor", layout)
        h5["x-coordinate"], h5["t-coordinate"] = grid.x().numpy(), grid.t().numpy()
    assert cli("evaluate", "--truth", virtual, "--json", tmp_path / "m.json") == 2
    assert "stored outside the file" in one_error_line(capsys)
    assert not (tmp_path / "o.nc").exists() and not (tmp_path / "m.json").exists()


# ---------------------------------------------------------------- unwritable output
def test_an_unwritable_output_is_refused_before_work(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    assert cli("simulate", *FAST, "-o", blocker / "out.nc") == 2
    assert "cannot create the output folder" in one_error_line(capsys)
    assert cli("generate", "--equation", "burgers", "-o", blocker / "d.h5") == 2
    assert "cannot create the output folder" in one_error_line(capsys)
    if os.geteuid() != 0:  # root writes into read-only folders
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert cli("simulate", *FAST, "-o", locked / "out.nc") == 2
        assert "cannot write into" in one_error_line(capsys)
    assert only_files(tmp_path) == {"file.txt"} | ({"locked"} if os.geteuid() else set())


# ---------------------------------------------------------------- signals
def test_sigterm_leaves_no_partial_files(tmp_path: Path) -> None:
    out = tmp_path / "traj.nc"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    argv = ["pde", "simulate", "--steps", "1000", "--members", "16", "--device", "cpu",
            "-o", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "polydiff.cli", *argv], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".part.nc") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
        time.sleep(0.05)
    time.sleep(0.5)  # into the work
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert only_files(tmp_path) == set()
