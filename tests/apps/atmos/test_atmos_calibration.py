"""Ensemble calibration: exact consistency with the coarse data, and the spread factors
fitted on validation fields give spread/skill 1 there."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from polydiff.apps.atmos.calibrate import calibrate_checkpoint
from polydiff.apps.atmos.config import CalibrationConfig
from polydiff.apps.atmos.generate import coarsen_dataset
from polydiff.apps.atmos.model import load_model
from polydiff.apps.atmos.superres import SuperresOptions, superres
from polydiff.physics.atmos_fields import generate_fields
from polydiff.physics.atmos_metrics import spread_skill
from polydiff.physics.era5 import open_era5
from polydiff.physics.interpolation import conservative_coarsen
from polydiff.runtime import make_generator


def _run(model, coarse, **kw):
    opts = SuperresOptions(factor=4, members=3, **{"steps": 3, **kw})
    return superres(model, opts, coarse=coarse, obs=None, grid=None,
                    generator=make_generator(0), device=torch.device("cpu"), progress=False)


def test_members_end_on_the_conservative_means_of_the_input(data, model_dir):
    model = load_model(model_dir, "cpu")
    coarse = open_era5(data["coarse"]).isel(time=[0])
    lat = None
    for projected in (True, False):
        ds = _run(model, coarse, project=projected)
        lat = ds.latitude.values
        misfit = max(float(np.abs(conservative_coarsen(ds[v].values, lat, 4)
                                  - coarse[v].values[None]).max() / s)
                     for v, s in zip(model.normaliser.variables, model.normaliser.std))
        assert (misfit < 1e-5) if projected else (misfit > 1e-3)


def test_spread_factors_scale_the_deviations_from_the_mean(data, model_dir, tmp_path):
    folder = tmp_path / "calibrated"
    shutil.copytree(model_dir, folder)
    meta = json.loads((folder / "polydiff.json").read_text())
    meta["config"]["spread_calibration"] = {"4": [0.5, 2.0, 1.0, 0.25]}
    meta["config"]["calibration_settings"] = {"steps": 3, "guidance": 0.3, "eta": 1.0,
                                              "constrain": True}
    (folder / "polydiff.json").write_text(json.dumps(meta))
    model = load_model(folder, "cpu")
    coarse = open_era5(data["coarse"]).isel(time=[0])
    raw, cal = _run(model, coarse, calibrate=False), _run(model, coarse)
    for v, f in zip(model.normaliser.variables, [0.5, 2.0, 1.0, 0.25]):
        r, c = raw[v].values.astype(np.float64), cal[v].values.astype(np.float64)
        np.testing.assert_allclose(c.mean(0), r.mean(0), rtol=1e-5, atol=1e-6 * np.abs(r).max())
        scale = np.abs(r - r.mean(0)).max()
        np.testing.assert_allclose(c - c.mean(0), f * (r - r.mean(0)), atol=1e-5 * scale + 1e-4)
    from polydiff.apps.atmos.superres import spread_factors

    fitted = SuperresOptions(factor=4, steps=3)
    assert spread_factors(model, fitted, coarse=True, obs=False) is not None
    assert spread_factors(model, fitted, coarse=False, obs=True) is None  # no "obs" key
    for opts, obs in ((SuperresOptions(factor=4, steps=4), False), (fitted, True),
                      (SuperresOptions(factor=8, steps=3), False),
                      (SuperresOptions(factor=4, steps=3, project=False), False),
                      (SuperresOptions(factor=4, steps=3, eta=0.0), False),
                      (SuperresOptions(factor=4, steps=3, constrain=False), False)):
        assert spread_factors(model, opts, coarse=True, obs=obs) is None  # not fitted: raw
    # factors fitted before eta and constrain existed hold for deterministic, unconstrained
    # sampling only
    meta["config"]["calibration_settings"] = {"steps": 3, "guidance": 0.3}
    (folder / "polydiff.json").write_text(json.dumps(meta))
    old = load_model(folder, "cpu")
    assert spread_factors(old, fitted, coarse=True, obs=False) is None
    assert spread_factors(old, SuperresOptions(factor=4, steps=3, eta=0.0, constrain=False),
                          coarse=True, obs=False) is not None


def test_a_stations_calibration_applies_to_stations_alone(model_dir, tmp_path):
    from polydiff.apps.atmos.superres import spread_factors

    folder = tmp_path / "stations"
    shutil.copytree(model_dir, folder)
    meta = json.loads((folder / "polydiff.json").read_text())
    meta["config"]["spread_calibration"] = {"4": [1.0] * 4, "obs": [2.0, 1.5, 1.0, 0.5]}
    meta["config"]["calibration_settings"] = {"steps": 3, "guidance": 0.3, "eta": 1.0,
                                              "constrain": True}
    (folder / "polydiff.json").write_text(json.dumps(meta))
    model = load_model(folder, "cpu")
    opts = SuperresOptions(factor=4, steps=3, guidance=0.3)
    np.testing.assert_array_equal(spread_factors(model, opts, coarse=False, obs=True),
                                  [2.0, 1.5, 1.0, 0.5])
    assert spread_factors(model, opts, coarse=True, obs=True) is None  # both: raw
    assert spread_factors(model, SuperresOptions(factor=4, steps=3, guidance=0.1),
                          coarse=False, obs=True) is None  # other settings: raw


@pytest.mark.slow
def test_fitted_factors_make_the_validation_spread_skill_one(model_dir, tmp_path):
    folder = tmp_path / "fit"
    shutil.copytree(model_dir, folder)
    cal = CalibrationConfig(factors=[4], times=2, members=3, steps=3, seed=5, stations=12)
    table = calibrate_checkpoint(folder, cal)
    model = load_model(folder, "cpu")
    assert model.config.spread_calibration == table
    assert sorted(table) == ["4", "obs"] and all(0.1 <= f <= 10 for f in table["obs"])
    variables = list(model.normaliser.variables)
    truth = generate_fields(cal.times, model.config.fields, make_generator(cal.seed),
                            trajectories=cal.times)
    coarse = coarsen_dataset(truth[variables], 4)
    opts = SuperresOptions(factor=4, members=cal.members, steps=cal.steps, guidance=cal.guidance)
    ds = superres(model, opts, coarse=coarse, obs=None, grid=None,
                  generator=make_generator(cal.seed + 4), device=torch.device("cpu"),
                  progress=False)
    for v in variables:
        ss = spread_skill(ds[v].values.astype(np.float64), truth[v].values.astype(np.float64),
                          truth.latitude.values)
        ratio = math.sqrt(4 / 3) * math.sqrt(np.mean(ss.spread**2) / np.mean(ss.skill**2))
        assert ratio == pytest.approx(1.0, rel=1e-3)


def test_recalibration_keeps_the_guidance_it_was_calibrated_for(model_dir, tmp_path):
    from polydiff.apps.atmos.calibrate import default_guidance

    folder = tmp_path / "guided"
    shutil.copytree(model_dir, folder)
    meta = json.loads((folder / "polydiff.json").read_text())
    meta["config"]["calibration_settings"] = {"steps": 3, "guidance": 0.7}
    (folder / "polydiff.json").write_text(json.dumps(meta))
    assert default_guidance(load_model(folder, "cpu")) == 0.7
    meta["config"].pop("calibration_settings")
    (folder / "polydiff.json").write_text(json.dumps(meta))
    assert default_guidance(load_model(folder, "cpu")) == CalibrationConfig.guidance
    assert default_guidance(load_model("turbulence_conditional", "cpu")) == 0.0


@pytest.mark.parametrize("args", [["--model", "no/such/folder"],
                                  ["--model", "turbulence_conditional", "--stations", "-1"]])
def test_calibrate_refuses_bad_input_in_one_line(args, capsys):
    from polydiff.apps.atmos.calibrate import main

    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("atmos calibrate: error:") and "\n" not in err
