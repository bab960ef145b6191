"""Trajectories container and its HDF5 (PDEBench) / NetCDF files: round trips and bad files."""

import h5py
import numpy as np
import pytest
import torch
import xarray as xr

from polydiff.physics.pde_data import Trajectories, read_trajectories, write_trajectories
from polydiff.runtime import UserError


def sample(two_d: bool = False, forcing: bool = True) -> Trajectories:
    g = torch.Generator().manual_seed(0)
    shape = (3, 5, 8, 6) if two_d else (3, 5, 8)
    u = torch.randn(shape, generator=g)
    return Trajectories(
        u, x=torch.linspace(0, 1, 8), t=torch.linspace(0, 2, 5),
        y=torch.linspace(0, 3, 6) if two_d else None,
        forcing=torch.randn(shape, generator=g) if forcing else None,
        equation="burgers", params={"Nu": 0.01})


def assert_same(a: Trajectories, b: Trajectories) -> None:
    assert torch.equal(a.u, b.u) and a.u.dtype == torch.float32
    assert torch.equal(a.x, b.x) and torch.equal(a.t, b.t)
    assert (a.y is None and b.y is None) or torch.equal(a.y, b.y)
    assert (a.forcing is None and b.forcing is None) or torch.equal(a.forcing, b.forcing)
    assert a.equation == b.equation and a.params == b.params


@pytest.mark.parametrize("suffix", [".h5", ".nc"])
@pytest.mark.parametrize("two_d", [False, True])
def test_round_trip(tmp_path, suffix, two_d):
    traj = sample(two_d, forcing=not two_d)
    path = write_trajectories(traj, tmp_path / f"data{suffix}")
    assert_same(read_trajectories(path), traj)


def test_hdf5_has_the_pdebench_layout(tmp_path):
    path = write_trajectories(sample(), tmp_path / "data.hdf5")
    with h5py.File(path) as h5:
        assert h5["tensor"].shape == (3, 5, 8) and h5["tensor"].dtype == np.float32
        assert h5["x-coordinate"].shape == (8,) and h5["t-coordinate"].shape == (5,)
        assert h5["forcing"].shape == (3, 5, 8)
        assert h5.attrs["Nu"] == pytest.approx(0.01)


def test_netcdf_has_named_dims(tmp_path):
    path = write_trajectories(sample(two_d=True), tmp_path / "data.nc")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds["u"].dims == ("sample", "t", "x", "y")
        assert ds.attrs["equation"] == "burgers"
        np.testing.assert_allclose(ds["t"].values, np.linspace(0, 2, 5))


def test_reads_pdebench_time_stamps(tmp_path):
    # PDEBench's 1-D files store nt + 1 time stamps for nt saved states
    path = tmp_path / "pdebench.hdf5"
    with h5py.File(path, "w") as h5:
        h5["tensor"] = np.ones((2, 4, 8), np.float32)
        h5["x-coordinate"] = np.linspace(0, 1, 8)
        h5["t-coordinate"] = np.linspace(0, 2, 5)
        h5.attrs["beta"] = 0.4
    traj = read_trajectories(path)
    assert traj.u.shape == (2, 4, 8) and len(traj.t) == 4 and traj.params == {"beta": 0.4}


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_trajectories(tmp_path / "missing.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(UserError, match="cannot read"):
        read_trajectories(corrupt)
    no_tensor = tmp_path / "empty.h5"
    with h5py.File(no_tensor, "w") as h5:
        h5["x-coordinate"] = np.zeros(3)
    with pytest.raises(UserError, match="'tensor'"):
        read_trajectories(no_tensor)
    nan = tmp_path / "nan.h5"
    with h5py.File(nan, "w") as h5:
        h5["tensor"] = np.full((1, 2, 3), np.nan, np.float32)
        h5["x-coordinate"], h5["t-coordinate"] = np.zeros(3), np.zeros(2)
    with pytest.raises(UserError, match="NaN"):
        read_trajectories(nan)
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as h5:
        h5["tensor"] = np.zeros((1, 2, 3), np.float32)
        h5["x-coordinate"], h5["t-coordinate"] = np.zeros(4), np.zeros(2)
    with pytest.raises(UserError, match="do not match"):
        read_trajectories(wrong)
    bad_nc = tmp_path / "bad.nc"
    xr.Dataset({"v": (("a",), np.zeros(2))}).to_netcdf(bad_nc, engine="h5netcdf")
    with pytest.raises(UserError, match="'u'"):
        read_trajectories(bad_nc)
    with pytest.raises(UserError, match="unknown"):
        write_trajectories(sample(), tmp_path / "data.csv")
    assert not (tmp_path / "data.csv").exists()


def test_data_outside_the_file_and_huge_headers_are_refused(tmp_path, monkeypatch):
    """Only data inside the file are read (an external dataset could be /etc/passwd), and a
    dataset larger than memory is refused from its header, before reading."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.zeros((2, 3, 4), "f4").tobytes())
    ext = tmp_path / "ext.h5"
    with h5py.File(ext, "w") as h5:
        h5.create_dataset("tensor", shape=(2, 3, 4), dtype="f4", external=[(str(secret), 0, 96)])
        h5["x-coordinate"], h5["t-coordinate"] = np.arange(4.0), np.arange(3.0)
    with pytest.raises(UserError, match="stored outside the file"):
        read_trajectories(ext)
    big = tmp_path / "big.h5"
    with h5py.File(big, "w") as h5:
        h5.create_dataset("tensor", shape=(1000, 1000, 1000), dtype="f4")
        h5["x-coordinate"], h5["t-coordinate"] = np.arange(1000.0), np.arange(1000.0)
    monkeypatch.setattr("polydiff.runtime.available_memory", lambda: 2**30)
    with pytest.raises(UserError, match=r"reading dataset 'tensor' of shape \(1000, 1000, 1000\)"
                                        r" needs about 11.2 GiB"):
        read_trajectories(big)
