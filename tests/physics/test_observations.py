"""Observations CSV round trip, validation, and the bilinear operator (exact on linear fields)."""

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from polydiff.diffusion import SparseLinear
from polydiff.physics.observations import (
    bilinear,
    interpolate,
    observation_matrix,
    read_observations,
    simulate_observations,
    write_observations,
)
from polydiff.runtime import UserError

LAT = np.linspace(40.0, 55.0, 16)
LON = np.linspace(-10.0, 5.0, 16)


def linear(a: float, b: float, c: float) -> np.ndarray:
    return a * LAT[:, None] + b * LON[None, :] + c


def test_bilinear_is_exact_on_linear_fields_and_matches_the_sparse_operator():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(40, 55, 50), rng.uniform(-10, 5, 50)
    f = np.stack([linear(2.0, -3.0, 1.0), linear(-0.5, 0.25, 300.0)])  # (C, H, W)
    b = bilinear(lat, lon, LAT, LON)
    np.testing.assert_allclose(b.weight.sum(1), 1.0)
    np.testing.assert_allclose(interpolate(f[0], b), 2 * lat - 3 * lon + 1, atol=1e-10)
    df = pd.DataFrame({"latitude": lat, "longitude": lon,
                       "variable": ["t2m"] * 25 + ["msl"] * 25})
    op = SparseLinear(observation_matrix(df, ("msl", "t2m"), LAT, LON).float(), (2, 16, 16))
    y = op.forward(torch.as_tensor(f, dtype=torch.float32)[None])[0].numpy()
    expected = np.where(df.variable == "msl", 2 * lat - 3 * lon + 1, -0.5 * lat + 0.25 * lon + 300)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    # the adjoint: <A x, y> = <x, A^T y>
    x, v = torch.randn(1, 2, 16, 16), torch.randn(1, 50)
    assert float((op.forward(x) * v).sum()) == pytest.approx(float((x * op.adjoint(v)).sum()),
                                                             rel=1e-5)


def test_longitudes_in_the_other_convention_and_grid_points_are_exact():
    b = bilinear(np.array([LAT[3]]), np.array([LON[5] + 360.0]), LAT, LON)
    assert interpolate(linear(1.0, 1.0, 0.0), b)[0] == pytest.approx(LAT[3] + LON[5])


def test_points_outside_the_domain_are_refused():
    with pytest.raises(UserError, match="outside the domain"):
        bilinear(np.array([39.0]), np.array([0.0]), LAT, LON)
    with pytest.raises(UserError, match="outside the domain"):
        bilinear(np.array([45.0]), np.array([5.5]), LAT, LON)


def _truth() -> xr.Dataset:
    times = pd.date_range("2000-01-01", periods=2, freq="12h")
    t2m = np.stack([linear(-0.5, 0.1, 300.0)] * 2)
    return xr.Dataset({"t2m": (("time", "latitude", "longitude"), t2m)},
                      coords={"time": times, "latitude": LAT, "longitude": LON})


def test_simulated_observations_round_trip_through_csv(tmp_path):
    obs = simulate_observations(_truth(), 5, np.random.default_rng(1), sigma={"t2m": 1e-9})
    assert len(obs) == 10 and set(obs.variable) == {"t2m"}
    exact = -0.5 * obs.latitude + 0.1 * obs.longitude + 300.0
    np.testing.assert_allclose(obs.value, exact, atol=1e-6)
    path = write_observations(obs, tmp_path / "obs.csv")
    back = read_observations(path)
    np.testing.assert_allclose(back.value, obs.value, rtol=1e-6)
    assert (back.time == obs.time).all()


@pytest.mark.parametrize("content, message", [
    ("time,latitude,longitude,variable,value\n2000-01-01,45,0,tp,1\n", "unknown variable"),
    ("time,latitude,longitude,variable,value\n2000-01-01,45,0,t2m,nan\n", "NaN"),
    ("time,latitude,variable,value\n2000-01-01,45,t2m,280\n", "missing column"),
    ("time,latitude,longitude,variable,value,sigma\n2000-01-01,45,0,t2m,280,-1\n", "sigma"),
    ("time,latitude,longitude,variable,value\n2000-01-01,45,0,t2m,warm\n", "warm"),
])
def test_bad_csv_is_a_user_error(tmp_path, content, message):
    path = tmp_path / "obs.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_observations(path)


def test_missing_sigma_takes_the_default_and_unknown_model_variables_are_refused(tmp_path):
    path = tmp_path / "obs.csv"
    path.write_text("time,latitude,longitude,variable,value\n2000-01-01,45,0,msl,101000\n")
    df = read_observations(path)
    assert df.sigma[0] == 50.0
    with pytest.raises(UserError, match="not known to the model"):
        observation_matrix(df, ("t2m", "u10"), LAT, LON)
