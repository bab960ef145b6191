"""The atmos commands end to end on a 16x16 grid with a briefly trained tiny prior."""

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from polydiff.apps.atmos.model import load_model
from polydiff.apps.atmos.superres import SuperresOptions, superres
from polydiff.cli import main
from polydiff.physics.atmos_fields import block_mean
from polydiff.physics.era5 import open_era5
from polydiff.runtime import make_generator


def test_generate_writes_truth_its_conservative_means_and_observations(data):
    truth, coarse = xr.open_dataset(data["truth"]), xr.open_dataset(data["coarse"])
    assert dict(coarse.sizes) == {"time": 2, "latitude": 4, "longitude": 4}
    lat = np.radians(truth.latitude.values)  # 2-degree cells: area ∝ sin(φ+1°) − sin(φ−1°)
    area = np.sin(lat + np.radians(1.0)) - np.sin(lat - np.radians(1.0))
    msl = truth.msl.values.astype(np.float64) * area[:, None]
    expected = msl.reshape(2, 4, 4, 4, 4).sum((2, 4)) / (4 * area.reshape(4, 4).sum(1))[:, None]
    np.testing.assert_allclose(coarse.msl.values, expected, rtol=1e-6)
    plain = block_mean(torch.as_tensor(truth.msl.values, dtype=torch.float64), 4).numpy()
    assert np.abs(plain - expected).max() > 0.5  # Pa: the area weights matter at 34-66 N
    obs = pd.read_csv(data["obs"])
    assert len(obs) == 6 * 4 * 2 and set(obs.variable) == {"t2m", "u10", "v10", "msl"}
    assert data["truth"].with_suffix(".png").is_file()


def test_superres_writes_a_cf_ensemble_and_evaluate_scores_it(data, run_superres, tmp_path,
                                                              capsys):
    out = tmp_path / "fine.nc"
    assert run_superres(out) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {out}, {out.with_suffix('.png')}"
    ds = xr.open_dataset(out)
    assert ds["t2m"].dims == ("member", "time", "latitude", "longitude")
    assert ds["t2m"].shape == (2, 2, 16, 16)
    assert ds["u10_mean"].dims == ("time", "latitude", "longitude")
    assert ds["u10"].attrs["standard_name"] == "eastward_wind"
    assert ds["msl_std"].attrs["units"] == "Pa"
    assert "polydiff atmos superres" in ds.attrs["history"]
    np.testing.assert_allclose(ds.latitude.values, xr.open_dataset(data["truth"]).latitude.values)
    np.testing.assert_allclose(ds["t2m_mean"].values, ds["t2m"].values.mean(0), rtol=1e-6)
    assert out.with_suffix(".png").is_file()
    metrics = tmp_path / "metrics.json"
    assert main(["atmos", "evaluate", "--truth", str(data["truth"]), "--pred", str(out),
                 "--json", str(metrics)]) == 0
    assert "RMSE" in capsys.readouterr().out and metrics.is_file()


def test_same_seed_same_file_other_seed_other_file(run_superres, tmp_path):
    paths = [tmp_path / f"{name}.nc" for name in ("a", "b", "c")]
    for path, seed in zip(paths, ("3", "3", "4")):
        assert run_superres(path, "--seed", seed, "--steps", "2") == 0
    a, b, c = (xr.open_dataset(p)["t2m"].values for p in paths)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_observations_alone_on_a_template_grid(data, model_dir, tmp_path):
    out = tmp_path / "obs_only.nc"
    rc = main(["atmos", "superres", "--obs", str(data["obs"]), "--grid", str(data["truth"]),
               "--members", "2", "--steps", "3", "--model", str(model_dir), "-o", str(out)])
    assert rc == 0 and xr.open_dataset(out)["v10"].shape == (2, 2, 16, 16)


def _bad_inputs(data, tmp_path) -> dict[str, list[str]]:
    unknown = tmp_path / "unknown.csv"
    obs = pd.read_csv(data["obs"])
    obs.assign(variable="q").to_csv(unknown, index=False)
    outside = tmp_path / "outside.csv"
    obs.assign(latitude=80.0).to_csv(outside, index=False)
    nan = tmp_path / "nan.nc"
    coarse = xr.open_dataset(data["coarse"]).load()
    coarse["t2m"][0, 1, 1] = np.nan
    coarse.to_netcdf(nan)
    return {"unknown variable": ["--obs", str(unknown)], "factor": ["--factor", "3"],
            "outside": ["--obs", str(outside)], "nan": [str(nan)]}


@pytest.mark.parametrize("case", ["unknown variable", "factor", "outside", "nan"])
def test_bad_input_fails_without_an_output_file(data, model_dir, tmp_path, case, capsys):
    args = _bad_inputs(data, tmp_path)[case]
    coarse = args[0] if case == "nan" else str(data["coarse"])
    obs = args[1] if args[0] == "--obs" else str(data["obs"])
    factor = args[1] if case == "factor" else "4"
    out = tmp_path / "never.nc"
    rc = main(["atmos", "superres", coarse, "--obs", obs, "--factor", factor, "--members", "2",
               "--steps", "2", "--model", str(model_dir), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc != 0 and not out.exists() and not out.with_suffix(".png").exists()
    assert err.count("\n") == 1 and "error:" in err


def test_coarse_guidance_makes_the_output_match_the_input(data, model_dir):
    model = load_model(model_dir, torch.device("cpu"))
    coarse = open_era5(data["coarse"]).isel(time=[0])
    errors = {}
    for weight in (0.0, 0.3):
        opts = SuperresOptions(factor=4, members=2, steps=10, guidance=weight, project=False,
                               constrain=False)  # the guidance alone, no projection
        ds = superres(model, opts, coarse=coarse, obs=None, grid=None,
                      generator=make_generator(0), device=torch.device("cpu"), progress=False)
        err = []
        for v, std in zip(model.normaliser.variables, model.normaliser.std):
            pooled = block_mean(torch.as_tensor(ds[v].values, dtype=torch.float64), 4).numpy()
            err.append(np.sqrt(np.mean((pooled - coarse[v].values[None]) ** 2)) / std)
        errors[weight] = float(np.mean(err))
    assert errors[0.3] < 0.25 * errors[0.0], errors


def test_evaluate_gives_zero_error_for_an_ensemble_of_the_truth(data, tmp_path):
    from polydiff.apps.atmos.evaluate import evaluate_files
    from polydiff.apps.atmos.superres import ensemble_dataset

    truth = xr.open_dataset(data["truth"])
    variables = ["t2m", "msl"]
    fields = np.stack([truth[v].values for v in variables], axis=1)  # (T, C, H, W)
    pred = ensemble_dataset(np.stack([fields] * 3), variables, truth.time.values,
                            truth.latitude.values, truth.longitude.values)
    path = tmp_path / "perfect.nc"
    pred.to_netcdf(path)
    report = evaluate_files(data["truth"], path)
    for v in variables:
        m = report["variables"][v]
        assert m["rmse"] == pytest.approx(0, abs=1e-3) and m["crps"] == pytest.approx(0, abs=1e-3)
        np.testing.assert_allclose(m["spectrum"]["mean"], m["spectrum"]["truth"], rtol=1e-5)
        assert m["spread_skill"] is None  # no error to compare the spread with: not NaN


def test_train_refuses_unknown_config_keys(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("variables: [t2m]\ntrain: {stepz: 3}\n")
    assert main(["atmos", "train", "--config", str(config)]) == 2
    assert "stepz" in capsys.readouterr().err


def test_an_era5_layout_of_the_coarse_file_gives_the_same_ensemble(data, model_dir, tmp_path):
    coarse = xr.open_dataset(data["coarse"]).load()
    era5 = coarse.isel(latitude=slice(None, None, -1))
    era5 = era5.assign_coords(longitude=era5.longitude % 360).sortby("longitude")
    era5["msl"] = era5["msl"] / 100.0
    era5["msl"].attrs.update(units="hPa", standard_name="air_pressure_at_mean_sea_level")
    era5 = era5.rename({"time": "valid_time", "t2m": "2m_temperature"})
    era5_path = tmp_path / "era5_coarse.nc"
    era5.to_netcdf(era5_path)
    outs = []
    for name, path in (("plain", data["coarse"]), ("era5", era5_path)):
        out = tmp_path / f"{name}.nc"
        assert main(["atmos", "superres", str(path), "--factor", "4", "--members", "2",
                     "--steps", "3", "--model", str(model_dir), "-o", str(out)]) == 0
        outs.append(xr.open_dataset(out))
    for v in ("t2m", "msl"):
        np.testing.assert_allclose(outs[1][v].values, outs[0][v].values, rtol=1e-4)
    np.testing.assert_allclose(outs[1].longitude.values, outs[0].longitude.values)
