"""The atmos demo on the bundled checkpoint (slow: it simulates a flow and samples)."""

import pytest
import torch
import xarray as xr

from polydiff.apps.atmos.cli import demo


@pytest.mark.slow
def test_demo_writes_an_ensemble_close_to_the_truth(tmp_path):
    result = demo(tmp_path, device=torch.device("cpu"), seed=0)
    assert "RMSE" in result.summary and tmp_path / "superres.nc" in result.files
    for key, rmse in result.metrics.items():  # the ensemble mean beats bilinear interpolation
        assert rmse < result.baseline[key], key
    pred, truth = xr.open_dataset(tmp_path / "superres.nc"), xr.open_dataset(tmp_path / "truth.nc")
    assert pred["t2m"].shape == (4, 1, 32, 32) and (tmp_path / "superres.png").is_file()
    # 4x coarse field + 8 stations: the mean is far closer to the truth than its variability
    for v in ("t2m", "u10", "v10", "msl"):
        err = float(((pred[f"{v}_mean"] - truth[v]) ** 2).mean() ** 0.5)
        assert err < 0.5 * float(truth[v].std())
