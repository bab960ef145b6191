"""Real ERA5-style inputs: regions across the dateline, every coordinate checked by evaluate,
one-line warnings for input outside what the model knows."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from polydiff.cli import main

from .conftest import exit_code


def _warnings(err: str) -> list[str]:
    """The warning lines of stderr (progress bars aside)."""
    lines = err.replace("\r", "\n").splitlines()
    assert sum("warning" in line for line in lines) == sum(
        line.startswith("warning: ") for line in lines)  # each warning is a line of its own
    return [line for line in lines if line.startswith("warning: ")]


def _moved(data, tmp_path, name: str, lat: np.ndarray, lon: np.ndarray) -> str:
    """The synthetic coarse file with other coordinates (values unchanged)."""
    coarse = xr.open_dataset(data["coarse"]).load()
    moved = coarse.assign_coords(latitude=lat, longitude=lon)
    path = tmp_path / f"{name}.nc"
    moved.to_netcdf(path)
    return str(path)


def _superres(coarse: str, model_dir, out, *extra: str) -> int:
    return exit_code(["atmos", "superres", coarse, "--factor", "4", "--members", "2",
                      "--steps", "2", "--model", str(model_dir), "-o", str(out), *extra])


def test_a_region_across_the_dateline_works_in_both_conventions(data, model_dir, tmp_path,
                                                               capsys):
    lat = xr.open_dataset(data["coarse"]).latitude.values
    east = np.array([166.0, 174.0, 182.0, 190.0])  # 8-degree cells from 162E to 194E
    files = {"0..360": _moved(data, tmp_path, "east", lat, east),
             "-180..180": _moved(data, tmp_path, "west", lat, (east + 180) % 360 - 180)}
    results = {}
    for convention, path in files.items():
        out = tmp_path / f"fine_{convention}.nc"
        assert _superres(path, model_dir, out, "--seed", "3") == 0
        results[convention] = xr.open_dataset(out).load()
        warnings = _warnings(capsys.readouterr().err)  # warnings, not errors
        assert len(warnings) == 1 and "not the one the model was trained on" in warnings[0]
    a, b = results.values()
    np.testing.assert_allclose(a.longitude.values, 163.0 + 2.0 * np.arange(16))
    np.testing.assert_array_equal(a.longitude.values, b.longitude.values)
    np.testing.assert_array_equal(a.t2m.values, b.t2m.values)


def test_evaluate_refuses_a_prediction_shifted_in_longitude(data, run_superres, tmp_path,
                                                            capsys):
    out = tmp_path / "fine.nc"
    assert run_superres(out) == 0
    pred = xr.open_dataset(out).load()
    for name, moved in {
        "longitudes": pred.assign_coords(longitude=pred.longitude.values + 100.0),
        "latitudes": pred.assign_coords(latitude=pred.latitude.values - 10.0),
    }.items():
        path = tmp_path / f"shifted_{name}.nc"
        moved.to_netcdf(path)
        capsys.readouterr()
        rc = exit_code(["atmos", "evaluate", "--truth", str(data["truth"]), "--pred", str(path),
                        "--json", str(tmp_path / f"{name}.json")])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and f"{name} differ" in err
        assert not (tmp_path / f"{name}.json").exists()
    # the same meridians written in the other convention are the same grid
    same = pred.assign_coords(longitude=pred.longitude.values + 360.0)
    same.to_netcdf(tmp_path / "plus360.nc")
    assert main(["atmos", "evaluate", "--truth", str(data["truth"]), "--pred",
                 str(tmp_path / "plus360.nc"), "--json", str(tmp_path / "ok.json")]) == 0


def test_evaluate_refuses_other_pressure_levels(data, tmp_path, capsys):
    from polydiff.apps.atmos.evaluate import check_coordinates
    from polydiff.runtime import UserError

    truth = xr.open_dataset(data["truth"]).expand_dims(level=[500.0])
    pred = truth.assign_coords(level=[850.0])
    with pytest.raises(UserError, match="pressure levels differ"):
        check_coordinates(truth, pred)
    with pytest.raises(UserError, match="only the truth has pressure levels"):
        check_coordinates(truth, truth.isel(level=0))
    check_coordinates(truth, truth)


def test_a_finer_grid_elsewhere_warns_once_per_problem(data, model_dir, tmp_path, capsys):
    # 1-degree coarse cells at factor 4: a 0.25-degree fine grid over the Alps
    path = _moved(data, tmp_path, "alps", 44.5 + np.arange(4.0), 5.5 + np.arange(4.0))
    assert _superres(path, model_dir, tmp_path / "alps_fine.nc") == 0
    err = _warnings(capsys.readouterr().err)
    assert any("spacing is 0.25° x 0.25° but the model was trained at 2°" in e for e in err)
    assert any("44..48N, 5..9E is not the one" in e for e in err)
    assert len(err) == 2


def test_observations_in_celsius_and_hpa_are_flagged(data, model_dir, tmp_path, capsys):
    obs = pd.read_csv(data["obs"])
    obs.loc[obs.variable == "t2m", "value"] -= 273.15
    obs.loc[obs.variable == "msl", "value"] /= 100.0
    obs.loc[obs.variable == "t2m", "sigma"] = 0.5
    obs.loc[obs.variable == "msl", "sigma"] = 0.5
    path = tmp_path / "obs_celsius.csv"
    obs.to_csv(path, index=False)
    rc = _superres(str(data["coarse"]), model_dir, tmp_path / "fine.nc", "--obs", str(path))
    err = _warnings(capsys.readouterr().err)
    assert rc == 0
    assert any("observations: t2m" in e and "°C instead of K" in e for e in err)
    assert any("observations: msl" in e and "hPa instead of Pa" in e for e in err)
    assert len(err) == 2  # nothing about the grid, u10 or v10


def test_inputs_the_model_knows_give_no_warning(data, run_superres, tmp_path, capsys):
    assert run_superres(tmp_path / "quiet.nc") == 0
    assert _warnings(capsys.readouterr().err) == []


def test_value_warnings_use_the_models_climatology_for_other_variables():
    from polydiff.apps.atmos.checks import value_warnings
    from polydiff.apps.atmos.normalise import Normaliser

    norm = Normaliser(("u10", "t2m"), np.stack([np.full((2, 2), 4.0), np.full((2, 2), 285.0)]),
                      np.array([5.0, 5.0]))
    assert value_warnings("u10", np.array([3.0, 9.0]), norm, "x") == []
    assert "stds from" in value_warnings("u10", np.array([400.0]), norm, "x")[0]
    assert value_warnings("t2m", np.array([300.0]), norm, "x") == []
    assert "outside the plausible" in value_warnings("t2m", np.array([1e4]), norm, "x")[0]
