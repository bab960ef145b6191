"""Shared atmos test data: a 16x16 synthetic dataset and a briefly trained tiny prior."""

from pathlib import Path

import pytest

from polydiff.apps.atmos.config import AtmosConfig, DataConfig
from polydiff.apps.atmos.train import run_training
from polydiff.cli import main
from polydiff.diffusion import TrainConfig
from polydiff.physics.atmos_fields import FieldConfig

FIELDS = FieldConfig(size=16, resolution=2.0, sim_factor=1, spinup_steps=200, sample_every=20)
NETWORK = {"type": "unet2d", "periodic": True, "sample_size": 16, "in_channels": 4,
           "out_channels": 4, "block_out_channels": [8, 16], "layers_per_block": 1,
           "down_block_types": ["DownBlock2D"] * 2, "up_block_types": ["UpBlock2D"] * 2,
           "norm_num_groups": 4}
# the turbulence case (vorticity and rain) on the same small grid, and a network whose
# channels follow from the variables (and the conditions, for a conditional one)
TURBULENCE_FIELDS = FieldConfig(kind="turbulence", size=16, resolution=2.0, sim_factor=1,
                                spinup_steps=100, sample_every=20, nu=4e-4, kappa=1e-3,
                                precip_threshold=1.5)
TURBULENCE_NETWORK = {"type": "unet2d", "periodic": True, "block_out_channels": [8, 16],
                      "layers_per_block": 1, "down_block_types": ["DownBlock2D"] * 2,
                      "up_block_types": ["UpBlock2D"] * 2, "norm_num_groups": 4}


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model")
    cfg = AtmosConfig(fields=FIELDS, data=DataConfig(trajectories=2, snapshots=8),
                      network=NETWORK, train=TrainConfig(steps=40, batch_size=8, lr=2e-3,
                                                         ema_decay=0.0, out_dir=str(out),
                                                         device="cpu", resume=False))
    run_training(cfg, progress=False)
    return out


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("data")
    truth = folder / "truth.nc"
    rc = main(["atmos", "generate", "--n", "2", "--size", "16", "--resolution", "2",
               "--spinup", "100", "--coarsen", "4", "--obs", "6", "-o", str(truth)])
    assert rc == 0
    return {"truth": truth, "coarse": folder / "truth_coarse.nc", "obs": folder / "truth_obs.csv"}


@pytest.fixture
def run_superres(data, model_dir):
    """``polydiff atmos superres`` of the test data (2 members, 4 steps, CPU) -> exit code."""
    def run(out: Path, *extra: str) -> int:
        return exit_code(["atmos", "superres", str(data["coarse"]), "--obs", str(data["obs"]),
                          "--factor", "4", "--members", "2", "--steps", "4", "--model",
                          str(model_dir), "--device", "cpu", "-o", str(out), *extra])

    return run


def exit_code(argv: list[str]) -> int:
    """The exit status of ``polydiff <argv>``, argument errors (SystemExit) included."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
