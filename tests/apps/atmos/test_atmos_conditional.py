"""The conditional network: its conditions encode the data exactly, training draws every
task, and superres runs it end to end on the factors it knows."""

import numpy as np
import pandas as pd
import pytest
import torch

from polydiff.apps.atmos.conditional import (
    coarse_channels,
    normalised_observations,
    request_conditions,
    simulated_stations,
    station_channels,
    training_pairs,
)
from polydiff.apps.atmos.config import AtmosConfig, ConditioningConfig, DataConfig
from polydiff.apps.atmos.generate import coarsen_dataset
from polydiff.apps.atmos.model import load_model
from polydiff.apps.atmos.normalise import Normaliser
from polydiff.apps.atmos.superres import SuperresOptions, superres
from polydiff.apps.atmos.train import run_training
from polydiff.diffusion import TrainConfig
from polydiff.physics.atmos_fields import generate_fields, grid_coords
from polydiff.physics.interpolation import ConservativePool, conservative_coarsen
from polydiff.physics.observations import simulate_observations
from polydiff.runtime import UserError, make_generator
from polydiff.weights import bundled_path

from .conftest import TURBULENCE_FIELDS as FIELDS
from .conftest import TURBULENCE_NETWORK as NETWORK

LAT, LON = grid_coords(FIELDS)


def _normaliser(c: int = 2) -> Normaliser:
    return Normaliser(("vo", "tprate")[:c], np.zeros((c, 16, 16)), np.ones(c))


def test_the_coarse_channels_pool_back_to_the_data_and_carry_the_factor():
    op = ConservativePool(4, LAT)
    y = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    out = coarse_channels(op, y)
    assert out.shape == (3, 3, 16, 16)
    torch.testing.assert_close(op.forward(out[:, :2]), y)
    assert torch.all(out[:, 2] == 0.25)


def test_station_channels_hold_the_weighted_mean_and_the_summed_weights():
    # two stations on grid point (2, 3) of channel 1 and one half way between (5, 5)
    # and (5, 6) of channel 0, in a (1, 2, 8, 8) grid
    hw = 64
    rows = torch.tensor([0, 1, 2, 2])
    cols = torch.tensor([hw + 2 * 8 + 3, hw + 2 * 8 + 3, 5 * 8 + 5, 5 * 8 + 6])
    weights = torch.sparse_coo_tensor(torch.stack([rows, cols]),
                                      torch.tensor([1.0, 1.0, 0.5, 0.5]), (3, 2 * hw),
                                      check_invariants=True)
    out = station_channels(weights, torch.tensor([1.0, 3.0, -2.0]), (1, 2, 8, 8))
    mean, mass = out[0, :2], out[0, 2:]
    assert mean[1, 2, 3] == 2.0 and mass[1, 2, 3] == 2.0
    assert mean[0, 5, 5] == mean[0, 5, 6] == -2.0 and mass[0, 5, 5] == 0.5
    assert float(mass.sum()) == 3.0  # one unit of weight per observation
    assert int((mean != 0).sum()) == 3


def test_simulated_stations_spend_one_unit_of_weight_per_station_and_variable():
    x = torch.randn(4, 2, 16, 16)
    counts = np.array([1, 5, 0, 12])
    out = simulated_stations(x, _normaliser(), LAT, LON, counts, np.random.default_rng(0))
    mass = out[:, 2:].sum(dim=(-2, -1))  # (B, C)
    np.testing.assert_allclose(mass.numpy(), np.repeat(counts[:, None], 2, 1), atol=1e-5)
    assert torch.all(out[2] == 0)  # a field without stations has no station channels


def test_request_conditions_read_a_station_on_a_grid_point_at_its_value():
    norm = Normaliser(("vo", "tprate"), np.full((2, 16, 16), 1e-6), np.array([2e-5, 1e-4]))
    rows = pd.DataFrame({"time": pd.Timestamp("2001-01-01"), "latitude": [LAT[4]],
                         "longitude": [LON[7]], "variable": ["tprate"], "value": [5e-5],
                         "sigma": [1e-6]})
    cond = request_conditions(norm, coarse=None,
                              observed=normalised_observations(norm, rows, LAT, LON))
    assert cond.shape == (1, 7, 16, 16)
    assert torch.all(cond[0, :3] == 0)  # no coarse field: no anomaly, 1/K = 0
    np.testing.assert_allclose(float(cond[0, 4, 4, 7]), (5e-5 - 1e-6) / 1e-4, rtol=1e-6)
    assert float(cond[0, 6, 4, 7]) == pytest.approx(1.0)
    assert int((cond[0, 3:] != 0).sum()) == 2  # the value and its weight, nothing else


def test_training_pairs_draw_every_task_and_encode_it_exactly():
    x = torch.randn(400, 2, 16, 16)
    cfg = ConditioningConfig(factors=[4, 8], stations=[3, 6], copies=2)
    fields, cond = training_pairs(x, _normaliser(), LAT, LON, cfg, seed=0)
    assert fields.shape == (800, 2, 16, 16) and cond.shape == (800, 7, 16, 16)
    torch.testing.assert_close(fields[400:], x)
    scale = cond[:, 2, 0, 0]
    stations = cond[:, 5:].sum(dim=(1, 2, 3))
    alone = {4: ((scale == 0.25) & (stations == 0)).sum(),
             8: ((scale == 0.125) & (stations == 0)).sum()}
    both = ((scale > 0) & (stations > 0)).sum()
    only_stations = ((scale == 0) & (stations > 0)).sum()
    assert int(alone[4] + alone[8] + both + only_stations) == 800  # never an empty task
    for n in (*alone.values(), both, only_stations):
        assert 140 < int(n) < 260  # a quarter each
    for k, f in ((0, 0.25), (1, 0.125)):  # the anomaly pools back to the field's means
        i = int(torch.nonzero(scale == f)[k])
        op = ConservativePool(round(1 / f), LAT)
        torch.testing.assert_close(op.forward(cond[i:i + 1, :2].double()),
                                   op.forward(fields[i:i + 1].double()), atol=1e-5, rtol=0)
    assert torch.all(cond[scale == 0][:, :3] == 0)
    counts = cond[:, 5:].sum(dim=(-2, -1))  # summed weights = stations per variable
    have = counts[:, 0] > 0
    assert counts[have].min() >= 3 - 1e-4 and counts[have].max() <= 6 + 1e-4


@pytest.fixture(scope="module")
def conditional_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("conditional")
    cfg = AtmosConfig(fields=FIELDS, data=DataConfig(trajectories=2, snapshots=8),
                      conditioning=ConditioningConfig(factors=[4], stations=[3, 6]),
                      network=NETWORK, prediction_type="v_prediction",
                      train=TrainConfig(steps=10, batch_size=8, ema_decay=0.0,
                                        out_dir=str(out), device="cpu", resume=False))
    run_training(cfg, progress=False)
    return load_model(out, "cpu")


def test_a_conditional_network_takes_the_conditions_as_input_channels(conditional_model):
    model = conditional_model
    assert model.config.conditioning.factors == [4]
    assert model.net.config.in_channels == 2 + 7 and model.net.config.out_channels == 2


def test_conditional_superres_keeps_the_coarse_means_and_repeats_with_the_seed(
        conditional_model):
    model = conditional_model
    truth = generate_fields(2, FIELDS, make_generator(9), trajectories=2)
    coarse = coarsen_dataset(truth[["vo", "tprate"]], 4)
    obs = simulate_observations(truth[["vo", "tprate"]], 5, np.random.default_rng(1))

    def run(**kw):
        return superres(model, SuperresOptions(factor=4, members=3, steps=3), coarse=coarse,
                        generator=make_generator(0), device=torch.device("cpu"),
                        progress=False, **kw)

    ds = run(obs=None, grid=None)
    for v in ("vo", "tprate"):
        pooled = conservative_coarsen(ds[v].values.astype(np.float64), LAT, 4)
        np.testing.assert_allclose(pooled, np.broadcast_to(coarse[v].values, pooled.shape),
                                   rtol=1e-4, atol=1e-4 * float(np.abs(coarse[v]).max()))
    assert float(ds["tprate"].min()) >= 0
    np.testing.assert_array_equal(ds["vo"].values, run(obs=None, grid=None)["vo"].values)
    with_obs = run(obs=obs, grid=None)  # the stations change the members
    assert not np.array_equal(with_obs["vo"].values, ds["vo"].values)
    grid = (truth.time.values, truth.latitude.values, truth.longitude.values)
    alone = superres(model, SuperresOptions(factor=None, members=2, steps=3), coarse=None,
                     obs=obs, grid=grid, generator=make_generator(0),
                     device=torch.device("cpu"), progress=False)
    assert np.isfinite(alone["vo"].values).all()


def test_a_conditional_network_refuses_a_factor_it_was_not_trained_for(conditional_model):
    truth = generate_fields(1, FIELDS, make_generator(9), trajectories=1)
    coarse = coarsen_dataset(truth[["vo", "tprate"]], 8)
    with pytest.raises(UserError, match="trained for factors 4, not 8"):
        superres(conditional_model, SuperresOptions(factor=8, members=2, steps=2),
                 coarse=coarse, obs=None, grid=None, generator=make_generator(0),
                 device=torch.device("cpu"), progress=False)


def test_conditioning_settings_are_checked():
    with pytest.raises(UserError, match="stations"):
        ConditioningConfig(stations=[5])
    with pytest.raises(UserError, match="factors"):
        ConditioningConfig(factors=[1])
    with pytest.raises(UserError, match="in_channels must be 9"):
        AtmosConfig(fields=FIELDS, conditioning=ConditioningConfig(),
                    network={**NETWORK, "in_channels": 2})


@pytest.mark.skipif(not (bundled_path("atmos") / "turbulence_conditional" / "polydiff.json")
                    .is_file(), reason="no bundled conditional network")
def test_the_bundled_conditional_network_beats_the_block_means_it_is_given(tmp_path):
    """``--model turbulence_conditional``: on unseen turbulence fields at x4 its ensemble
    mean is closer to the truth than the coarse field spread over its blocks."""
    model = load_model("turbulence_conditional", "cpu")
    prior = load_model("turbulence", "cpu")
    assert model.config.fields == prior.config.fields
    assert model.config.conditioning.factors == [4, 8]
    assert set(model.config.spread_calibration) == {"4", "8", "obs"}
    truth = generate_fields(2, model.config.fields, make_generator(31), trajectories=2)
    variables = ["vo", "tprate"]
    coarse = coarsen_dataset(truth[variables], 4)
    ds = superres(model, SuperresOptions(factor=4, members=4, steps=10), coarse=coarse,
                  obs=None, grid=None, generator=make_generator(0),
                  device=torch.device("cpu"), progress=False)
    for v in variables:
        exact = truth[v].values.astype(np.float64)
        blocks = np.kron(coarse[v].values, np.ones((4, 4)))
        ours = ds[f"{v}_mean"].values.astype(np.float64)
        assert np.sqrt(np.mean((ours - exact) ** 2)) < 0.95 * np.sqrt(np.mean((blocks - exact)
                                                                             ** 2)), v
