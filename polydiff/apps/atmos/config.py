"""Typed training config of the atmos prior (YAML → dataclasses, unknown keys refused)."""

from __future__ import annotations

from dataclasses import dataclass, field

from polydiff.diffusion import TrainConfig
from polydiff.physics.atmos_fields import FIELD_VARIABLES, FieldConfig
from polydiff.runtime import UserError


@dataclass
class DataConfig:
    """How many synthetic fields to train on: trajectories × snapshots, plus shifted copies."""

    trajectories: int = 16
    snapshots: int = 96
    seed: int = 0
    shifted_copies: int = 1  # extra copies of each field rolled by a random periodic shift


def _default_network() -> dict:
    return {
        "type": "unet2d", "periodic": True, "sample_size": 32, "in_channels": 4,
        "out_channels": 4, "block_out_channels": [16, 32, 64], "layers_per_block": 1,
        "down_block_types": ["DownBlock2D"] * 3, "up_block_types": ["UpBlock2D"] * 3,
        "norm_num_groups": 8,
    }


@dataclass
class AtmosConfig:
    """Everything ``polydiff atmos train`` needs: data, network, noise schedule, optimiser."""

    variables: list[str] = field(default_factory=lambda: list(FIELD_VARIABLES))
    fields: FieldConfig = field(default_factory=FieldConfig)
    data: DataConfig = field(default_factory=DataConfig)
    network: dict = field(default_factory=_default_network)
    scheduler: str = "ddpm"
    prediction_type: str = "epsilon"
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        unknown = [v for v in self.variables if v not in FIELD_VARIABLES]
        if unknown or not self.variables:
            raise UserError(f"unknown variable(s) {unknown}: the synthetic fields have "
                            f"{', '.join(FIELD_VARIABLES)}")
        channels = len(self.variables)
        for key in ("in_channels", "out_channels"):
            if self.network.get(key, channels) != channels:
                raise UserError(f"network.{key} must equal the number of variables ({channels})")
