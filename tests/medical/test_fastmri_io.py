"""fastMRI HDF5 round trip and one-line errors for bad files."""

import h5py
import numpy as np
import pytest

from polydiff.medical.fastmri_io import KspaceVolume, read_images, read_kspace, write_kspace
from polydiff.runtime import UserError


def test_round_trip_single_and_multicoil(tmp_path):
    rng = np.random.default_rng(0)
    for shape in [(2, 8, 6), (2, 3, 8, 6)]:
        k = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
        rec = rng.random((2, 4, 4)).astype(np.float32)
        path = tmp_path / f"v{len(shape)}.h5"
        write_kspace(path, KspaceVolume(k, rec, {"acquisition": "CORPD_FBK"}))
        back = read_kspace(path)
        assert np.array_equal(back.kspace, k) and np.array_equal(back.reconstruction, rec)
        assert back.multicoil == (len(shape) == 4)
        assert back.attrs["acquisition"] == "CORPD_FBK"
        assert back.attrs["max"] == pytest.approx(rec.max())
        assert back.attrs["norm"] == pytest.approx(np.linalg.norm(rec))
        with h5py.File(path) as f:
            assert f["kspace"].dtype == np.complex64 and "reconstruction_esc" in f
        images, key = read_images(path)
        assert key == "reconstruction_esc" and np.array_equal(images, rec)


def _write(path, **datasets):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)


@pytest.mark.parametrize("case,match", [
    ("missing", "no 'kspace'"), ("real", "complex-valued"), ("nan", "NaN"),
    ("shape", "must be"), ("notfound", "not found"), ("garbage", "not a readable HDF5")])
def test_bad_files(tmp_path, case, match):
    path = tmp_path / "bad.h5"
    good = np.ones((1, 4, 4), np.complex64)
    if case == "missing":
        _write(path, image=np.ones((1, 4, 4)))
    elif case == "real":
        _write(path, kspace=np.ones((1, 4, 4), np.float32))
    elif case == "nan":
        good[0, 0, 0] = np.nan
        _write(path, kspace=good)
    elif case == "shape":
        _write(path, kspace=np.ones((4, 4), np.complex64))
    elif case == "garbage":
        path.write_bytes(b"not hdf5 at all")
    with pytest.raises(UserError, match=match):
        read_kspace(path)
