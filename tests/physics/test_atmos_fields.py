"""Synthetic weather: units, magnitudes, geostrophic balance, background gradient, seeding."""

import math

import numpy as np
import pytest
import torch

from polydiff.physics.atmos_fields import (
    EARTH_RADIUS,
    RHO_AIR,
    FieldConfig,
    block_mean,
    generate_fields,
)
from polydiff.runtime import UserError, make_generator

CFG = FieldConfig(size=16, resolution=2.0, sim_factor=1, spinup_steps=300, sample_every=30)


@pytest.fixture(scope="module")
def fields():
    return generate_fields(8, CFG, make_generator(0), trajectories=2)


def test_dataset_layout_units_and_magnitudes(fields):
    ds = fields
    assert dict(ds.sizes) == {"time": 8, "latitude": 16, "longitude": 16}
    assert np.all(np.diff(ds.latitude) == 2.0) and ds.latitude[0] == CFG.lat_south + 1.0
    assert list(ds.trajectory.values) == [0] * 4 + [1] * 4
    units = {"t2m": "K", "u10": "m s-1", "v10": "m s-1", "msl": "Pa"}
    for name, unit in units.items():
        assert ds[name].attrs["units"] == unit and ds[name].attrs["standard_name"]
        assert np.isfinite(ds[name].values).all()
    assert 250 < ds.t2m.min() and ds.t2m.max() < 320 and 2 < ds.t2m.std() < 15
    assert abs(float(ds.u10.mean()) - CFG.mean_westerly) < 1.0 and 2 < ds.v10.std() < 10
    assert abs(ds.u10).max() < 50 and 95_000 < ds.msl.min() and ds.msl.max() < 107_000
    assert (ds.time.diff("time") > np.timedelta64(0)).all()


def test_winds_are_in_geostrophic_balance_with_pressure(fields):
    p = fields.msl.values.astype(np.float64)
    dy = math.radians(CFG.resolution) * EARTH_RADIUS
    # centred differences on the periodic anomaly + the background gradient's exact slope
    p_anom = p - p.mean(axis=(0, 2), keepdims=True)
    dpdy = (np.roll(p_anom, -1, axis=1) - np.roll(p_anom, 1, axis=1)) / (2 * dy)
    dpdx = (np.roll(p_anom, -1, axis=2) - np.roll(p_anom, 1, axis=2)) / (2 * dy)
    rho_f = RHO_AIR * CFG.coriolis
    u_g, v_g = -dpdy / rho_f, dpdx / rho_f
    u = fields.u10.values - fields.u10.values.mean(axis=(0, 2), keepdims=True)
    v = fields.v10.values
    for wind, geo in ((u, u_g), (v, v_g)):
        corr = np.corrcoef(wind.ravel(), geo.ravel())[0, 1]
        ratio = np.std(wind) / np.std(geo)
        assert corr > 0.9 and ratio == pytest.approx(CFG.surface_wind_ratio, rel=0.25)
    slope = np.polyfit(fields.latitude, p.mean(axis=(0, 2)), 1)[0]  # Pa per degree
    expected = -rho_f * CFG.mean_westerly / CFG.surface_wind_ratio * dy / CFG.resolution
    assert slope == pytest.approx(expected, rel=0.3)


def test_temperature_falls_northward_at_the_configured_rate(fields):
    zonal = fields.t2m.values.mean(axis=(0, 2))
    slope = np.polyfit(fields.latitude, zonal, 1)[0]
    assert slope == pytest.approx(-CFG.t_gradient, rel=0.35)


def test_same_seed_same_fields_other_seed_other_fields(fields):
    again = generate_fields(8, CFG, make_generator(0), trajectories=2)
    other = generate_fields(1, CFG, make_generator(1))
    assert np.array_equal(again.t2m.values, fields.t2m.values)
    assert not np.allclose(other.t2m.values[0], fields.t2m.values[0])


def test_block_mean_averages_and_refuses_other_sizes():
    x = torch.arange(16.0).reshape(4, 4)
    assert torch.equal(block_mean(x, 2), torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    with pytest.raises(UserError, match="not a multiple"):
        block_mean(torch.zeros(6, 6), 4)


SMALL = FieldConfig(size=8, resolution=4.0, sim_factor=1, spinup_steps=20, sample_every=10)


def test_blocks_simulated_apart_fill_in_the_same_fields():
    from polydiff.physics.atmos_fields import initial_states, synthetic_fields

    w0, forcing = initial_states(3, SMALL, make_generator(4))
    whole = synthetic_fields(w0, forcing, 2, SMALL, block=2)
    assert whole.shape == (3, 2, 4, 8, 8) and whole.dtype == torch.float32
    first = synthetic_fields(w0, forcing, 2, SMALL, block=2, blocks={0})
    second = synthetic_fields(w0, forcing, 2, SMALL, block=2, blocks={1})
    assert torch.isnan(first[2:]).all() and torch.isnan(second[:2]).all()  # left for others
    assert torch.equal(torch.cat([first[:2], second[2:]]), whole)
    one_at_a_time = synthetic_fields(w0, forcing, 2, SMALL, block=1)
    torch.testing.assert_close(one_at_a_time, whole, rtol=1e-6, atol=1e-3)


def test_generate_fields_lists_the_stacked_channels_by_name():
    from polydiff.physics.atmos_fields import FIELD_VARIABLES, initial_states, synthetic_fields

    ds = generate_fields(4, SMALL, make_generator(2), trajectories=2)
    w0, forcing = initial_states(2, SMALL, make_generator(2))
    stacked = synthetic_fields(w0, forcing, 2, SMALL).reshape(4, 4, 8, 8)
    for k, name in enumerate(FIELD_VARIABLES):
        assert np.array_equal(ds[name].values, stacked[:, k].numpy())


@pytest.mark.parametrize("change, word", [
    ({"size": 0}, "size"), ({"size": 1}, "size"), ({"resolution": 0.0}, "resolution"),
    ({"resolution": float("nan")}, "resolution"), ({"dt": -1.0}, "dt"),
    ({"sample_every": 0}, "sample_every"), ({"nu": -1.0}, "nu"),
    ({"size": 64, "resolution": 1.0, "lat_south": 60.0}, "-90..90"),
    ({"start": "yesterday-ish"}, "start")])
def test_field_config_refuses_what_cannot_be_simulated(change, word):
    with pytest.raises(UserError, match=word):
        FieldConfig(**change)


def test_a_simulation_too_large_for_memory_is_refused_before_it_starts():
    from polydiff.physics.atmos_fields import initial_states, synthetic_fields

    w0, forcing = initial_states(1, SMALL, make_generator(0))
    with pytest.raises(UserError, match="memory"):
        synthetic_fields(w0, forcing, 10**9, SMALL)


# ------------------------------------------------------------------ the turbulence case
TURB = FieldConfig(kind="turbulence", size=16, resolution=2.0, sim_factor=2, spinup_steps=300,
                   sample_every=30, nu=4e-4, kappa=1e-3, precip_threshold=1.5)


@pytest.fixture(scope="module")
def turbulence():
    return generate_fields(6, TURB, make_generator(0), trajectories=2)


def test_turbulence_fields_are_vorticity_and_a_positive_intermittent_rain(turbulence):
    ds = turbulence
    assert list(ds.data_vars) == ["vo", "tprate"] and TURB.variables == ("vo", "tprate")
    assert ds.vo.attrs["units"] == "s-1" and ds.tprate.attrs["units"] == "kg m-2 s-1"
    vo, rain = ds.vo.values.astype(np.float64), ds.tprate.values.astype(np.float64)
    # vorticity is the curl of a periodic flow: its integral over the box vanishes
    assert np.abs(vo.mean((1, 2))).max() < 1e-3 * vo.std()
    assert 1e-6 < vo.std() < 1e-3  # s-1: synoptic vorticity magnitudes
    assert rain.min() >= 0 and 0.05 < (rain > 0).mean() < 0.8  # dry over much of the box
    from scipy.stats import skew

    assert skew(rain.ravel()) > 1.5  # a heavy tail of intense rain


def test_turbulence_fields_from_given_flows_follow_their_definitions():
    from polydiff.physics.atmos_fields import turbulence_fields

    g = make_generator(3)
    n = TURB.size * TURB.sim_factor
    w = torch.randn(2, n, n, generator=g, dtype=torch.float64)
    c = 2 * torch.randn(2, n, n, generator=g, dtype=torch.float64)
    out = turbulence_fields(w, c, TURB)
    assert out.shape == (2, 2, TURB.size, TURB.size)
    rain = TURB.precip_scale * np.maximum(c.numpy() - TURB.precip_threshold, 0.0)
    coarse = rain.reshape(2, 16, 2, 16, 2).mean((2, 4))
    np.testing.assert_allclose(out[:, 1].numpy(), coarse, rtol=1e-12)
    np.testing.assert_allclose(out[:, 0].numpy() * TURB.time_unit,
                               w.numpy().reshape(2, 16, 2, 16, 2).mean((2, 4)), rtol=1e-12)
    dry = (c.numpy() < TURB.precip_threshold).reshape(2, 16, 2, 16, 2).all((2, 4))
    assert dry.any() and np.all(out[:, 1].numpy()[dry] == 0)


def test_field_kinds_are_checked():
    with pytest.raises(UserError, match="kind"):
        FieldConfig(kind="snow")
    with pytest.raises(UserError, match="precip_scale"):
        FieldConfig(kind="turbulence", precip_scale=float("inf"))
