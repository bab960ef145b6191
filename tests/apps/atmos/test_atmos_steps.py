"""``atmos superres --per-step`` and ``--start/--end``: one file per time step, each step's
file independent of the others, --resume, and a record larger than the memory the process
may use, read lazily one step at a time."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from polydiff.apps.atmos.steps import step_name, step_seed
from polydiff.cli import main

LAT = np.arange(36.0, 65.0, 4.0)  # the bundled model's 32 x 32 grid, coarsened 4x
LON = np.arange(-14.0, 15.0, 4.0)
CLIMATE = {"t2m": (280.0, 4.0, "K"), "u10": (0.0, 3.0, "m s-1"), "v10": (0.0, 3.0, "m s-1"),
           "msl": (101000.0, 600.0, "Pa")}
FAST = ["--factor", "4", "--members", "2", "--steps", "2", "--device", "cpu"]


def coarse_record(path: Path, steps: int, chunk: int = 8760) -> Path:
    """An hourly coarse record from 1990 on (random fields around a climate), written
    chunk by chunk (the writer never holds it whole)."""
    times = np.datetime64("1990-01-01T00", "ns") + np.arange(steps) * np.timedelta64(1, "h")
    data = {}
    for i, (name, (mean, std, units)) in enumerate(CLIMATE.items()):
        x = da.random.RandomState(i).standard_normal((steps, 8, 8), chunks=(chunk, 8, 8))
        data[name] = (("time", "latitude", "longitude"), (x * std + mean).astype("f4"),
                      {"units": units})
    ds = xr.Dataset(data, coords={"time": times, "latitude": LAT, "longitude": LON})
    ds.to_netcdf(path, engine="h5netcdf",
                 encoding={v: {"chunksizes": (min(chunk, steps), 8, 8)} for v in CLIMATE})
    return path


def _fields(path: Path) -> dict[str, np.ndarray]:
    with xr.open_dataset(path) as ds:
        return {v: ds[v].values for v in ds.data_vars}


def test_names_and_seeds_depend_on_the_step_only():
    assert step_name("era5", np.datetime64("2001-02-03T04:05")) == "era5_2001-02-03T0405.nc"
    t, later = np.datetime64("1850-01-01T00:00"), np.datetime64("1850-01-01T00:01")
    assert step_seed(0, t) == step_seed(0, t) != step_seed(0, later) != step_seed(1, t)


@pytest.mark.slow
def test_one_file_per_step_each_as_if_made_alone(tmp_path, capsys):
    record = coarse_record(tmp_path / "coarse.nc", 4)
    assert main(["atmos", "superres", str(record), *FAST, "--per-step", "--start",
                 "1990-01-01T01", "-o", str(tmp_path / "all")]) == 0
    names = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert names == [f"coarse_1990-01-01T0{h}00.nc" for h in (1, 2, 3)]
    with xr.open_dataset(tmp_path / "all" / names[0]) as ds:
        assert ds["t2m"].shape == (2, 1, 32, 32) and "t2m_std" in ds
    # the last step alone, from a range that holds only it: the same numbers
    assert main(["atmos", "superres", str(record), *FAST, "--per-step", "--start",
                 "1990-01-01T03", "--end", "1990-01-01T03", "-o", str(tmp_path / "one")]) == 0
    alone, together = _fields(tmp_path / "one" / names[-1]), _fields(tmp_path / "all" / names[-1])
    for name in alone:
        np.testing.assert_array_equal(alone[name], together[name])
    capsys.readouterr()
    assert main(["atmos", "superres", str(record), *FAST, "--per-step", "--resume",
                 "-o", str(tmp_path / "all")]) == 0
    out = capsys.readouterr().out
    assert "skipped 3 input(s)" in out and "coarse_1990-01-01T0000.nc" in out


def test_bad_ranges_and_flags_are_one_line_errors(tmp_path, capsys):
    record = coarse_record(tmp_path / "coarse.nc", 2)
    for extra, message in ((["--start", "1991-01-01", "--per-step"], "no time step"),
                           (["--start", "1990-01-02", "--end", "1990-01-01"], "is after"),
                           (["--start", "yesterday-ish"], "not a date"),
                           (["--resume"], "goes with --per-step")):
        out = tmp_path / ("dir" if "--per-step" in extra else "x.nc")
        assert main(["atmos", "superres", str(record), *FAST, *extra, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists()


LIMITED = textwrap.dedent("""
    import resource, sys
    from polydiff.apps.atmos.model import load_model
    from polydiff.cli import main

    load_model(None, "cpu")  # torch, diffusers and the model in memory first
    import dask, xarray  # noqa: F401
    size = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
    budget = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (size + budget, size + budget))
    try:  # the limit bites: the record does not fit
        xarray.open_dataset(sys.argv[2]).load()
        print("LOADED WHOLE")
    except MemoryError:
        print("WHOLE FILE REFUSED")
    sys.exit(main(sys.argv[3:]))
""")


@pytest.mark.slow
def test_a_record_larger_than_the_memory_limit_is_read_one_step_at_a_time(tmp_path):
    budget = 192 * 2**20  # address space the process may add after start-up
    record = coarse_record(tmp_path / "years.nc", 262_800)  # 30 years, hourly: 270 MB
    assert record.stat().st_size > 1.3 * budget
    script = tmp_path / "limited.py"
    script.write_text(LIMITED)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    last_two = np.datetime64("1990-01-01T00") + np.timedelta64(262_800 - 2, "h")
    done = subprocess.run(
        [sys.executable, str(script), str(budget), str(record), "atmos", "superres",
         str(record), *FAST, "--per-step", "--start", str(last_two), "-o",
         str(tmp_path / "fine")], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "WHOLE FILE REFUSED" in done.stdout
    written = sorted(p.name for p in (tmp_path / "fine").iterdir())
    assert written == ["years_2019-12-24T2200.nc", "years_2019-12-24T2300.nc"]
    assert re.search(r"wrote .*years_2019-12-24T2300\.nc", done.stdout)
