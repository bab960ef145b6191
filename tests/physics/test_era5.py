"""ERA5 layouts all normalise to the same dataset; CF output; one-line errors."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from polydiff.physics.era5 import normalise, open_era5, select, time_batches, write_netcdf
from polydiff.runtime import UserError

TIMES = pd.date_range("2024-01-01", periods=3, freq="6h")
LAT = np.array([40.0, 45.0, 50.0, 55.0])
LON = np.array([-20.0, -10.0, 0.0, 10.0, 20.0])
LEVELS = np.array([500.0, 850.0])


def canonical() -> xr.Dataset:
    rng = np.random.default_rng(0)
    surf = ("time", "latitude", "longitude")
    lev = ("time", "level", "latitude", "longitude")

    def field(dims, loc, scale):
        shape = [dict(time=3, level=2, latitude=4, longitude=5)[d] for d in dims]
        return dims, (loc + scale * rng.standard_normal(shape)).astype(np.float32)

    return xr.Dataset(
        {"t2m": field(surf, 285, 5), "u10": field(surf, 3, 4), "v10": field(surf, 0, 4),
         "msl": field(surf, 101325, 900), "z": field(lev, 30000, 3000),
         "t": field(lev, 260, 8), "q": field(lev, 0.004, 0.001)},
        coords={"time": TIMES, "level": LEVELS, "latitude": LAT, "longitude": LON})


def era5_style(ds: xr.Dataset) -> xr.Dataset:
    """As the CDS writes it: latitude descending, longitude 0..360, ERA5 units on attrs."""
    ds = ds.isel(latitude=slice(None, None, -1))
    ds = ds.assign_coords(longitude=ds.longitude % 360).sortby("longitude")
    units = {"t2m": "K", "u10": "m s**-1", "v10": "m s**-1", "msl": "Pa",
             "z": "m**2 s**-2", "t": "K", "q": "kg kg**-1"}
    for name, u in units.items():
        ds[name].attrs["units"] = u
    return ds


def variants() -> dict[str, xr.Dataset]:
    base = era5_style(canonical())
    new_cds = base.rename({"time": "valid_time", "level": "pressure_level"})
    expver = xr.concat([base.where(base.time < TIMES[2]), base.where(base.time >= TIMES[2])],
                       dim=pd.Index(["0001", "0005"], name="expver"))
    cf = base.rename({"t2m": "var167", "msl": "var151", "u10": "2m_u", "t": "ta"})
    for name, std in [("var167", "air_temperature"), ("var151", "air_pressure_at_mean_sea_level"),
                      ("2m_u", "eastward_wind"), ("ta", "air_temperature")]:
        cf[name].attrs["standard_name"] = std
    cf["var167"] = cf["var167"] - 273.15
    cf["var167"].attrs.update(units="degC", standard_name="air_temperature")
    cf["var151"] = cf["var151"] / 100.0
    cf["var151"].attrs.update(units="hPa", standard_name="air_pressure_at_mean_sea_level")
    long_names = base.rename({"t2m": "2m_temperature", "msl": "mean_sea_level_pressure"})
    return {"era5": base, "valid_time+pressure_level": new_cds, "expver": expver,
            "cf_names_and_units": cf, "cds_long_names": long_names, "canonical": canonical()}


@pytest.mark.parametrize("name", list(variants()))
def test_every_layout_normalises_to_the_same_dataset(tmp_path, name):
    path = tmp_path / f"{name}.nc"
    variants()[name].to_netcdf(path, engine="h5netcdf")
    ds = open_era5(path, batch=2)
    ref = canonical()
    assert list(ds["latitude"].values) == list(LAT)
    assert list(ds["longitude"].values) == list(LON)
    for var in ref.data_vars:
        got = ds[var].transpose(*ref[var].dims)
        np.testing.assert_allclose(got.values, ref[var].values, rtol=2e-6, atol=1e-6,
                                   err_msg=f"{name}: {var}")
        assert "standard_name" in ds[var].attrs and "units" in ds[var].attrs
    assert ds["msl"].attrs["units"] == "Pa" and ds["t2m"].attrs["units"] == "K"
    assert "expver" not in ds.dims and "expver" not in ds.variables


def test_files_open_lazily_and_are_read_a_batch_of_times_at_a_time(tmp_path):
    path = tmp_path / "a.nc"
    era5_style(canonical()).to_netcdf(path, engine="h5netcdf")
    ds = open_era5(path, batch=2)
    assert ds["t2m"].chunks is not None  # dask-backed: nothing read yet
    sizes = [b.sizes["time"] for b in time_batches(select(ds, ["t2m", "msl"]), 2)]
    assert sizes == [2, 1]


def test_bad_inputs_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        open_era5(tmp_path / "missing.nc")
    bad = tmp_path / "corrupt.nc"
    bad.write_bytes(b"\x89HDF\r\n\x1a\nthis is not a netcdf file")
    with pytest.raises(UserError, match="not a readable NetCDF"):
        open_era5(bad)
    ds = canonical()
    ds["msl"].attrs["units"] = "inHg"
    with pytest.raises(UserError, match="units 'inHg'"):
        normalise(ds)
    with pytest.raises(UserError, match="no known variable"):
        normalise(canonical().rename({v: f"x{i}" for i, v in enumerate(canonical().data_vars)}))
    with pytest.raises(UserError, match="not in the file"):
        select(normalise(canonical()), ["t2m", "tp"])
    nan = canonical()
    nan["t2m"][1, 2, 3] = np.nan
    with pytest.raises(UserError, match="t2m contains NaN"):
        list(time_batches(normalise(nan), 2))


def test_written_netcdf_is_cf_with_history_and_round_trips(tmp_path):
    ds = normalise(canonical())
    out = write_netcdf(ds, tmp_path / "out.nc", command="polydiff atmos test")
    back = xr.open_dataset(out)
    assert back.attrs["Conventions"] == "CF-1.8"
    assert back.attrs["history"].endswith("polydiff atmos test")
    assert back["u10"].attrs["standard_name"] == "eastward_wind"
    np.testing.assert_allclose(back["msl"].values, ds["msl"].values, rtol=1e-6)
    again = write_netcdf(back.load(), tmp_path / "out2.nc", command="second")
    assert xr.open_dataset(again).attrs["history"].count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc", "out2.nc"]


def test_the_same_dataset_gives_the_same_bytes(tmp_path, monkeypatch):
    """No wall-clock time in the file: the same command and seed give the same file."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    ds = xr.Dataset({"t2m": (("lat", "lon"), np.arange(12.0).reshape(3, 4))},
                    coords={"lat": [0.0, 1.0, 2.0], "lon": [0.0, 1.0, 2.0, 3.0]})
    a, b = write_netcdf(ds, tmp_path / "a.nc", command="x"), write_netcdf(
        ds, tmp_path / "b.nc", command="x")
    assert a.read_bytes() == b.read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    c = write_netcdf(ds, tmp_path / "c.nc", command="x")
    assert xr.open_dataset(c).attrs["history"].startswith("1970-01-01T00:00:00Z")


def _dateline_file(convention: str) -> xr.Dataset:
    """A 170E..160W box of t2m = 280 + longitude east of 170E, in either file convention."""
    lon = 170.5 + np.arange(30.0)  # 170.5 .. 199.5 degrees east
    values = 280.0 + (lon - 170.0)[None, None, :] + np.zeros((2, 3, 1))
    if convention == "-180..180":
        lon = (lon + 180.0) % 360.0 - 180.0  # 170.5 .. 179.5, -179.5 .. -160.5
    ds = xr.Dataset({"t2m": (("time", "latitude", "longitude"), values, {"units": "K"})},
                    coords={"time": TIMES[:2], "latitude": [10.0, 11.0, 12.0],
                            "longitude": lon})
    return ds.sortby("longitude")


@pytest.mark.parametrize("convention", ["0..360", "-180..180"])
def test_regions_across_the_dateline_come_out_contiguous(convention):
    ds = normalise(_dateline_file(convention))
    lon = ds.longitude.values
    np.testing.assert_allclose(lon, 170.5 + np.arange(30.0))  # regular, ascending, past 180
    np.testing.assert_allclose(ds.t2m.values[0, 0], 280.0 + (lon - 170.0))  # values follow


def test_contiguous_longitudes_keep_ordinary_and_global_grids_in_pm180():
    from polydiff.physics.era5 import contiguous_longitudes, same_longitudes

    np.testing.assert_allclose(contiguous_longitudes(np.array([350.0, 0.0, 10.0])),
                               [-10.0, 0.0, 10.0])
    world = np.arange(0.0, 360.0, 2.5)
    out = contiguous_longitudes(world)
    assert out.min() >= -180 and out.max() < 180 and len(np.unique(out)) == len(world)
    assert same_longitudes(np.array([190.0, -10.0]), np.array([-170.0, 350.0]))
    assert not same_longitudes(np.array([10.0, 20.0]), np.array([110.0, 120.0]))
