"""fastMRI HDF5 round trip, slice-by-slice reading, and one-line errors for bad or hostile
files (groups, external storage, virtual datasets, sizes the file does not hold)."""

import os

import h5py
import numpy as np
import pytest

from polydiff.medical.fastmri_io import (
    KspaceReader,
    KspaceVolume,
    read_images,
    read_kspace,
    write_kspace,
)
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


def test_reader_gives_the_slices_one_at_a_time(tmp_path):
    rng = np.random.default_rng(1)
    k = (rng.standard_normal((3, 2, 6, 4)) + 1j * rng.standard_normal((3, 2, 6, 4)))
    path = tmp_path / "v.h5"
    write_kspace(path, KspaceVolume(k.astype(np.complex64)))
    with KspaceReader(path) as reader:
        assert reader.shape == (3, 2, 6, 4) and reader.multicoil and len(reader) == 3
        assert reader.slice_bytes == 2 * 6 * 4 * 8
        for i, s in enumerate(reader):
            assert s.dtype == np.complex64 and np.array_equal(s, k[i].astype(np.complex64))


def test_kspace_group_is_a_one_line_error(tmp_path):
    path = tmp_path / "group.h5"
    with h5py.File(path, "w") as f:
        f.create_group("kspace").create_dataset("data", data=np.ones((1, 4, 4), np.complex64))
    with pytest.raises(UserError, match="'kspace' is an HDF5 group"):
        read_kspace(path)


def test_external_storage_is_refused(tmp_path):
    """A dataset whose bytes live in /etc/passwd is never read."""
    secret = "/etc/passwd"
    n = os.path.getsize(secret) // 8
    path = tmp_path / "ext.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", shape=(1, 1, n), dtype=np.complex64,
                         external=[(secret, 0, n * 8)])
    with pytest.raises(UserError, match="outside the file.*passwd"):
        KspaceReader(path)
    with h5py.File(path, "w") as f:  # the same trick for a reference image
        f.create_dataset("reconstruction_esc", shape=(1, 1, n), dtype=np.float64,
                         external=[(secret, 0, n * 8)])
    with pytest.raises(UserError, match="external storage"):
        read_images(path)


def test_virtual_dataset_and_external_link_are_refused(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["kspace"] = np.ones((1, 4, 4), np.complex64)
    path = tmp_path / "vds.h5"
    layout = h5py.VirtualLayout(shape=(1, 4, 4), dtype=np.complex64)
    layout[...] = h5py.VirtualSource(str(other), "kspace", shape=(1, 4, 4))
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("kspace", layout)
    with pytest.raises(UserError, match="virtual dataset"):
        read_kspace(path)
    with h5py.File(path, "w") as f:
        f["kspace"] = h5py.ExternalLink(str(other), "kspace")
    with pytest.raises(UserError, match="link to another file"):
        read_kspace(path)


def test_declared_size_the_file_does_not_hold_is_refused_before_reading(tmp_path):
    """A 1.4 KB file declaring k-space (20000, 512, 512): 39 GiB, never allocated."""
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", shape=(20000, 512, 512), dtype=np.complex64)
    assert path.stat().st_size < 4096
    with pytest.raises(UserError, match=r"\(20000, 512, 512\).*39.1 GiB.*stores 0 B"):
        KspaceReader(path)


def test_truncated_dataset_is_refused(tmp_path):
    path = tmp_path / "part.h5"
    with h5py.File(path, "w") as f:  # chunked, only the first of four slices written
        ds = f.create_dataset("kspace", shape=(4, 8, 8), dtype=np.complex64, chunks=(1, 8, 8))
        ds[0] = np.ones((8, 8), np.complex64)
    with pytest.raises(UserError, match="truncated or was never written"):
        KspaceReader(path)


def test_one_slice_larger_than_memory_is_refused(tmp_path, monkeypatch):
    import polydiff.runtime as runtime

    path = tmp_path / "v.h5"
    write_kspace(path, KspaceVolume(np.ones((2, 64, 64), np.complex64)))
    monkeypatch.setattr(runtime, "available_memory", lambda: 10_000)
    with pytest.raises(UserError, match="needs about .* of memory"):
        KspaceReader(path)
