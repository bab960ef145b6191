"""``polydiff pde generate`` through the CLI: files, physics, seeds and bad input."""

import math

import pytest
import torch

from polydiff.physics.advection import advection_exact
from polydiff.physics.pde_data import read_trajectories
from tests.apps.pde.pde_testing import cli


def run(tmp_path, name, *args):
    out = tmp_path / name
    return cli("generate", *args, "-o", out), out


def test_advection_file_is_the_exact_shift(tmp_path):
    rc, out = run(tmp_path, "adv.h5", "--equation", "advection", "--n", "2", "--nx", "128",
                  "--nt", "3", "--t-final", "0.5", "--beta", "0.8")
    assert rc == 0
    traj = read_trajectories(out)
    assert traj.u.shape == (2, 3, 128) and traj.params == {"beta": 0.8}
    exact = advection_exact(traj.u[:, 0].double(), traj.t, beta=0.8)
    assert (traj.u - exact).abs().max() < 1e-2  # 3rd-order scheme, up to 4 waves on 128 cells


def test_burgers_wdno_file(tmp_path):
    rc, out = run(tmp_path, "b.nc", "--equation", "burgers", "--n", "2", "--nx", "24",
                  "--nt", "5", "--t-final", "0.5")
    assert rc == 0
    traj = read_trajectories(out)
    assert traj.u.shape == (2, 5, 24) and traj.forcing.shape == (2, 5, 24)
    assert traj.equation == "burgers" and traj.params["Nu"] == pytest.approx(0.01)
    assert torch.allclose(traj.x, torch.arange(1, 25, dtype=torch.float64) / 25)
    assert traj.forcing.abs().max() > 0 and torch.isfinite(traj.u).all()


def test_periodic_burgers_conserves_mass(tmp_path):
    # nu = 0.05 keeps the cell Peclet number below 2 on the saved grid: no internal refinement,
    # so the saved values are the conserved ones
    rc, out = run(tmp_path, "p.h5", "--equation", "burgers-periodic", "--n", "2", "--nx", "32",
                  "--nt", "4", "--t-final", "0.3", "--nu", "0.05")
    assert rc == 0
    mass = read_trajectories(out).u.double().sum(-1)
    assert torch.allclose(mass, mass[:, :1].expand_as(mass), atol=1e-4)


def test_ns2d_file(tmp_path):
    rc, out = run(tmp_path, "ns.h5", "--equation", "ns2d", "--n", "2", "--nx", "16", "--nt", "3",
                  "--t-final", "0.2")
    assert rc == 0
    traj = read_trajectories(out)
    assert traj.u.shape == (2, 3, 16, 16) and traj.y is not None
    assert traj.x[-1] == pytest.approx(2 * math.pi * 15 / 16)
    # zero-mean forcing on a periodic square: the mean vorticity stays zero
    assert traj.u.double().mean(dim=(-2, -1)).abs().max() < 1e-5


@pytest.mark.parametrize("suffix", [".h5", ".nc"])
def test_same_seed_same_file(tmp_path, suffix):
    args = ["--equation", "burgers", "--n", "2", "--nx", "16", "--nt", "3", "--t-final", "0.2"]
    _, a = run(tmp_path, "a" + suffix, *args, "--seed", "5")
    _, b = run(tmp_path, "b" + suffix, *args, "--seed", "5")
    _, c = run(tmp_path, "c" + suffix, *args, "--seed", "6")
    assert a.read_bytes() == b.read_bytes()
    assert not torch.equal(read_trajectories(a).u, read_trajectories(c).u)


@pytest.mark.parametrize("args", [
    ["--equation", "heat"],
    ["--equation", "burgers", "--nu", "nan"],
    ["--equation", "burgers", "--nu", "0"],            # once tried to allocate 7.7 TB
    ["--equation", "burgers", "--nu", "-0.01"],
    ["--equation", "advection", "--beta", "inf"],
    ["--equation", "burgers", "--n", "0"],
    ["--equation", "burgers", "--nx", "0"],            # once fell back to the default
    ["--equation", "burgers", "--nt", "0"],
    ["--equation", "burgers", "--beta", "1"],          # a parameter of another equation
    ["--equation", "ns2d", "--nx", "15"],
    ["--equation", "burgers-periodic", "--refine", "2"],
])
def test_bad_input_fails_without_a_file(tmp_path, capsys, args):
    rc, out = run(tmp_path, "bad.h5", *args, "--nt", "3", "--t-final", "0.1")
    assert rc == 2 and not out.exists()
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    rc, out = run(tmp_path, "bad.csv", "--equation", "burgers")
    assert rc == 2 and not out.exists()


@pytest.mark.parametrize("args, numbers", [
    (["--nx", "100000"], ["7.11e+09 time steps", "2e+05 points", "1e+12"]),
    (["--nu", "1e-9"], ["time steps", "point-updates", "1e+12"]),
    (["--n", "1000000", "--nx", "1000000"], ["GiB"]),
])
def test_work_beyond_the_bounds_is_refused_with_the_estimate(tmp_path, capsys, args, numbers):
    """Sizes that would take hours to years (or more memory than there is) are refused
    before any work, with the estimate in the message."""
    rc, out = run(tmp_path, "big.h5", "--equation", "burgers", *args)
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists() and len(err.strip().splitlines()) == 1
    assert all(n in err for n in numbers), err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_fails_without_a_file(tmp_path):
    rc, out = run(tmp_path, "gpu.h5", "--equation", "advection", "--device", "cuda")
    assert rc != 0 and not out.exists()


def test_device_argument_gives_the_same_data(tmp_path):
    args = ["--equation", "burgers", "--n", "2", "--nx", "16", "--nt", "3", "--t-final", "0.2"]
    _, a = run(tmp_path, "a.h5", *args)
    _, b = run(tmp_path, "b.h5", *args, "--device", "cpu")
    assert a.read_bytes() == b.read_bytes()


def test_ks_file_conserves_the_mean_and_refine_keeps_every_other_point(tmp_path):
    """KS conserves ∫u exactly (the spectral solver never touches mode 0), and ``--refine 2``
    on 32 points is the 64-point solve of the same seed with every second point kept."""
    common = ("--equation", "ks", "--n", "2", "--nt", "6", "--t-final", "1.0", "--seed", "3")
    rc, fine = run(tmp_path, "fine.h5", *common, "--nx", "64")
    assert rc == 0
    rc, coarse = run(tmp_path, "coarse.h5", *common, "--nx", "32", "--refine", "2")
    assert rc == 0
    a, b = read_trajectories(fine), read_trajectories(coarse)
    assert a.equation == "kuramoto-sivashinsky" and a.params == {"L": 64.0}
    assert a.u.shape == (2, 6, 64)
    assert torch.allclose(a.t, torch.arange(6, dtype=torch.float64) * 0.2)
    assert torch.equal(a.u[..., ::2], b.u) and torch.allclose(a.x[::2], b.x)
    mean = a.u.double().mean(-1)
    assert torch.allclose(mean, mean[:, :1].expand_as(mean), atol=1e-5)
    assert a.u.std() > 0.5  # on the attractor after the burn-in, not decayed


def test_ks_refuses_options_of_other_equations(tmp_path, capsys):
    rc, out = run(tmp_path, "ks.h5", "--equation", "ks", "--n", "1", "--nu", "0.1")
    assert rc == 2 and not out.exists()
    assert "--nu does not apply to --equation ks" in capsys.readouterr().err
