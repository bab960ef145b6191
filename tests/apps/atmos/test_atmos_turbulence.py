"""The turbulence case: a prior over vorticity and rain, rain never negative, the bundled
turbulence prior selectable by name."""

import numpy as np
import pytest
import torch

from polydiff.apps.atmos.config import AtmosConfig, DataConfig
from polydiff.apps.atmos.generate import coarsen_dataset
from polydiff.apps.atmos.model import load_model
from polydiff.apps.atmos.superres import SuperresOptions, lower_bounds, superres
from polydiff.apps.atmos.train import run_training
from polydiff.diffusion import TrainConfig
from polydiff.physics.atmos_fields import generate_fields
from polydiff.physics.interpolation import conservative_coarsen
from polydiff.runtime import make_generator
from polydiff.weights import bundled_path

from .conftest import TURBULENCE_FIELDS as FIELDS
from .conftest import TURBULENCE_NETWORK as NETWORK


@pytest.fixture(scope="module")
def turbulence_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("turbulence")
    cfg = AtmosConfig(fields=FIELDS, data=DataConfig(trajectories=2, snapshots=8),
                      network=NETWORK, train=TrainConfig(steps=10, batch_size=8, ema_decay=0.0,
                                                         out_dir=str(out), device="cpu",
                                                         resume=False))
    run_training(cfg, progress=False)
    return load_model(out, "cpu")


def test_a_turbulence_prior_super_resolves_rain_that_is_never_negative(turbulence_model):
    model = turbulence_model
    assert model.normaliser.variables == ("vo", "tprate")
    truth = generate_fields(2, FIELDS, make_generator(7), trajectories=2)
    coarse = coarsen_dataset(truth[["vo", "tprate"]], 4)
    ds = superres(model, SuperresOptions(factor=4, members=3, steps=3), coarse=coarse,
                  obs=None, grid=None, generator=make_generator(0),
                  device=torch.device("cpu"), progress=False)
    assert ds["tprate"].attrs["units"] == "kg m-2 s-1"
    assert float(ds["tprate"].min()) >= 0.0 and float(ds["vo"].min()) < 0.0
    raw = superres(model, SuperresOptions(factor=4, members=3, steps=3), coarse=coarse,
                   obs=None, grid=None, generator=make_generator(0),
                   device=torch.device("cpu"), progress=False)
    np.testing.assert_array_equal(ds["vo"].values, raw["vo"].values)  # same seed, same file


def test_constrained_members_keep_the_coarse_means_of_rain_and_vorticity(turbulence_model):
    """Rain clipped at 0 after the projection would only add rain: the members must end on
    the conservative means of both variables and be nonnegative in rain, whether x̂₀ is
    constrained at every step (with stochastic DDIM steps) or only at the end."""
    model = turbulence_model
    truth = generate_fields(2, FIELDS, make_generator(8), trajectories=2)
    coarse = coarsen_dataset(truth[["vo", "tprate"]], 4)
    lat = truth.latitude.values
    for constrain, eta in ((False, 0.0), (True, 1.0)):
        opts = SuperresOptions(factor=4, members=3, steps=4, constrain=constrain, eta=eta,
                               calibrate=False)
        ds = superres(model, opts, coarse=coarse, obs=None, grid=None,
                      generator=make_generator(0), device=torch.device("cpu"), progress=False)
        assert float(ds["tprate"].min()) >= 0.0
        for v, s in zip(model.normaliser.variables, model.normaliser.std):
            means = conservative_coarsen(ds[v].values.astype(np.float64), lat, 4)
            assert np.abs(means - coarse[v].values[None]).max() / s < 1e-3, (v, constrain)


def test_only_nonnegative_variables_get_a_lower_bound(turbulence_model, model_dir):
    low = lower_bounds(turbulence_model)
    norm = turbulence_model.normaliser
    assert torch.isinf(low[0]).all() and (low[0] < 0).all()  # vo: unbounded
    zero = (0 - torch.as_tensor(norm.mean[1])) / norm.std[1]
    np.testing.assert_allclose(low[1], zero.float(), rtol=1e-5)  # tprate: physical 0
    assert lower_bounds(load_model(model_dir, "cpu")) is None  # weather: no bound


@pytest.mark.skipif(not (bundled_path("atmos") / "turbulence" / "polydiff.json").is_file(),
                    reason="no bundled turbulence prior")
def test_the_bundled_turbulence_prior_is_picked_by_name():
    model = load_model("turbulence", "cpu")
    assert model.normaliser.variables == ("vo", "tprate")
    assert model.config.fields.kind == "turbulence"
    assert set(model.config.spread_calibration) == {"4", "8"}
    weather = load_model("weather", "cpu")
    assert weather.normaliser.variables == ("t2m", "u10", "v10", "msl")
    assert load_model(None, "cpu").folder == weather.folder


def test_generate_like_turbulence_draws_the_fields_that_prior_was_trained_on(tmp_path):
    """``generate --like turbulence`` takes the bundled prior's field settings (its
    variables, grid, physics), so its files are what ``superres --model turbulence``
    knows; --size/--spinup still override."""
    import json

    import xarray as xr

    from polydiff.cli import main

    out = tmp_path / "rain.nc"
    assert main(["atmos", "generate", "--like", "turbulence", "--n", "2", "--size", "16",
                 "--spinup", "20", "--coarsen", "4", "-o", str(out)]) == 0
    meta = json.loads((bundled_path("atmos") / "turbulence" / "polydiff.json").read_text())
    with xr.open_dataset(out) as ds:
        assert sorted(ds.data_vars) == ["tprate", "vo"]
        assert ds.sizes["latitude"] == 16
        assert float(ds.tprate.min()) >= 0.0
        step = float(abs(ds.latitude[1] - ds.latitude[0]))
    assert step == pytest.approx(meta["config"]["fields"]["resolution"])
    assert (tmp_path / "rain_coarse.nc").is_file()


@pytest.mark.parametrize("like", ["nowhere", "mri"])
def test_generate_like_refuses_what_is_not_an_atmos_prior(tmp_path, capsys, like):
    from polydiff.cli import main
    from polydiff.weights import bundled_path as bundled

    model = str(bundled("mri")) if like == "mri" else like
    out = tmp_path / "x.nc"
    assert main(["atmos", "generate", "--like", model, "--n", "1", "-o", str(out)]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and ("--like" in line or "atmos" in line)
    assert not out.exists()
