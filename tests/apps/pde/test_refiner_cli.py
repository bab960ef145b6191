"""``polydiff pde train`` with a refiner config and ``polydiff pde simulate --method refiner``
end to end on a tiny Kuramoto–Sivashinsky model trained here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from tests.apps.pde.pde_testing import cli

TINY_YAML = """\
kind: refiner
equation: ks
ks: {n: 3, nx: 32, length: 22.0, dt: 0.2, nt: 12, substeps: 2, burn_in: 10.0, seed: 0}
stride: 4
refinement_steps: 2
network: {block_out_channels: [8, 16]}
train: {steps: 2, batch_size: 8, lr: 1.0e-3, ema_decay: 0.0, log_every: 1, device: cpu,
        out_dir: unused}
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("refiner_cli")
    config = folder / "tiny.yaml"
    config.write_text(TINY_YAML)
    out = folder / "model"
    assert cli("train", "--config", config, "-o", out, "--train-steps", 3, "--seed", 1) == 0
    return out


def test_train_writes_a_refiner_checkpoint(model_dir: Path) -> None:
    meta = json.loads((model_dir / "polydiff.json").read_text())
    assert (meta["format"], meta["app"], meta["kind"]) == (1, "pde", "refiner")
    assert meta["config"]["refinement_steps"] == 2 and meta["train"]["steps"] == 3
    assert meta["train"]["seed"] == 1 and (model_dir / "unet").is_dir()


def test_simulate_refiner_rolls_out_and_is_seeded(model_dir: Path, tmp_path: Path,
                                                  capsys) -> None:
    out = tmp_path / "ks.nc"
    args = ("simulate", "--method", "refiner", "--equation", "ks", "--model", model_dir,
            "--t-final", 2.0, "--members", 2, "--seed", 4, "--device", "cpu")
    assert cli(*args, "-o", out) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {out}, {out.with_suffix('.png')}"
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        u, t = ds["u"].values, ds["t"].values
        assert u.shape == (2, 4, 32) and np.isfinite(u).all()  # ceil(2.0 / 0.8) = 3 steps
        np.testing.assert_allclose(t, [0, 0.8, 1.6, 2.4], atol=1e-6)
        np.testing.assert_array_equal(u[:, 0], np.broadcast_to(ds["u0"].values, (2, 32)))
        assert "Kuramoto" in ds["u"].attrs["long_name"] and ds.attrs["equation"] == \
            "kuramoto-sivashinsky"
        assert not np.array_equal(u[0, 1:], u[1, 1:])  # members draw their own noise
    again = tmp_path / "again.nc"
    assert cli(*args, "-o", again) == 0
    with xr.open_dataset(out, engine="h5netcdf") as a, \
            xr.open_dataset(again, engine="h5netcdf") as b:
        np.testing.assert_array_equal(a["u"].values, b["u"].values)


@pytest.mark.parametrize("extra, message", [
    (("--steps", 5), "--steps does not apply"),
    (("--forcing", "f.npy"), "no forcing"),
    (("--nx", 64), "--nx 64"),
    (("--superres-model", "."), "--superres-model is for WDNO"),
])
def test_simulate_refiner_refuses_what_does_not_apply(model_dir, tmp_path, capsys, extra,
                                                       message) -> None:
    np.save(tmp_path / "f.npy", np.zeros((13, 32), np.float32))
    extra = tuple(str(tmp_path / e) if e == "f.npy" else e for e in extra)
    out = tmp_path / "x.nc"
    rc = cli("simulate", "--method", "refiner", "--equation", "ks", "--model", model_dir,
             "--t-final", 1, "--device", "cpu", "-o", out, *extra)
    assert rc == 2 and not out.exists() and not out.with_suffix(".png").exists()
    assert message in capsys.readouterr().err


def test_simulate_ks_needs_the_refiner_and_bad_inits_are_refused(model_dir, tmp_path,
                                                                  capsys) -> None:
    assert cli("simulate", "--equation", "ks", "-o", tmp_path / "a.nc") == 2
    assert "--method refiner" in capsys.readouterr().err
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full(32, np.nan, np.float32))
    assert cli("simulate", "--method", "refiner", "--equation", "ks", "--model", model_dir,
               "--init", bad, "-o", tmp_path / "b.nc") == 2
    assert "NaN" in capsys.readouterr().err
    np.save(bad, np.full(32, 1e3, np.float32))
    assert cli("simulate", "--method", "refiner", "--equation", "ks", "--model", model_dir,
               "--init", bad, "-o", tmp_path / "b.nc") == 2
    assert "RMS" in capsys.readouterr().err


def test_train_refuses_a_data_cache_and_a_bad_refiner_config(tmp_path, capsys) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(TINY_YAML.replace("equation: ks", "equation: heat"))
    assert cli("train", "--config", config, "-o", tmp_path / "m") == 2
    assert "unknown equation" in capsys.readouterr().err
    config.write_text(TINY_YAML)
    assert cli("train", "--config", config, "--data-cache", tmp_path / "c.safetensors") == 2
    assert "--data-cache" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_simulate_refiner_on_burgers_takes_the_forcing(tmp_path, capsys) -> None:
    from polydiff.apps.pde.config import RefinerConfig
    from polydiff.apps.pde.dataset import BurgersData
    from polydiff.apps.pde.train import run_refiner_training
    from polydiff.diffusion.training import TrainConfig

    model = tmp_path / "burgers"
    run_refiner_training(RefinerConfig(
        equation="burgers", stride=1, refinement_steps=1,
        burgers=BurgersData(n=2, nx=15, nt=8, refine=1), network={"block_out_channels": [8, 16]},
        train=TrainConfig(steps=2, batch_size=8, ema_decay=0.0, device="cpu",
                          out_dir=str(model))), progress=False)
    forcing = tmp_path / "f.npy"
    np.save(forcing, np.full((9, 15), 0.5, np.float32))
    out = tmp_path / "b.nc"
    assert cli("simulate", "--method", "refiner", "--model", model, "--forcing", forcing,
               "--device", "cpu", "-o", out) == 0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds["u"].shape == (1, 9, 15) and np.all(ds["forcing"].values == 0.5)
        assert ds.attrs["equation"] == "burgers"
    assert cli("simulate", "--method", "refiner", "--model", model, "--t-final", 2,
               "-o", tmp_path / "c.nc") == 2
    assert "--t-final applies to ks" in capsys.readouterr().err
    assert cli("simulate", "--method", "refiner", "--model", model, "-o", tmp_path / "d.nc") == 0


def test_evaluate_refiner_scores_the_rollout_at_its_steps(model_dir: Path, tmp_path: Path,
                                                         capsys) -> None:
    """A KS test file on the tiny model's grid (L = 22, 32 points, 0.2 apart): the JSON holds
    the model's steps (stride 4 x 0.2) and the metrics of its rollout; another grid or
    options of WDNO are refused without output."""
    truth = tmp_path / "ks.h5"
    # the tiny model's L = 22 is not generate's default: write the file from the solver
    import torch

    from polydiff.physics.kuramoto_sivashinsky import KSGrid, sample_ks_trajectories
    from polydiff.physics.pde_data import Trajectories, write_trajectories

    grid = KSGrid(nx=32, length=22.0, dt=0.2, nt=12, substeps=2, burn_in=10.0)
    u = sample_ks_trajectories(2, grid, torch.Generator().manual_seed(7))
    write_trajectories(Trajectories(u.float(), grid.x(), grid.t(),
                                    equation="kuramoto-sivashinsky", params={"L": 22.0}), truth)
    out = tmp_path / "m.json"
    args = ("evaluate", "--truth", truth, "--method", "refiner", "--model", model_dir,
            "--device", "cpu")
    assert cli(*args, "--json", out) == 0
    metrics = json.loads(out.read_text())
    assert metrics["times"] == pytest.approx([0.8, 1.6, 2.4]) and metrics["method"] == "refiner"
    assert len(metrics["nrmse_per_time"]) == 3 and np.isfinite(metrics["nrmse"])
    assert (tmp_path / "m.metrics.png").is_file()
    capsys.readouterr()
    for extra, message in ((("--steps", 5), "--steps is for WDNO"),
                           (("--superres-model", model_dir), "--superres-model is for WDNO")):
        bad = tmp_path / "bad.json"
        assert cli(*args, *extra, "--json", bad) == 2 and not bad.exists()
        assert message in capsys.readouterr().err
    short = tmp_path / "short.h5"
    write_trajectories(Trajectories(u[:, :3].float(), grid.x(), grid.t()[:3],
                                    equation="kuramoto-sivashinsky"), short)
    bad = tmp_path / "bad.json"
    assert cli("evaluate", "--truth", short, "--method", "refiner", "--model", model_dir,
               "--json", bad) == 2 and not bad.exists()
    assert "one model step needs 5" in capsys.readouterr().err
