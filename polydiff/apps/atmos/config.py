"""Typed configs of the atmos app: training (YAML) and the checkpoint's ``config`` block.

Both are dataclasses; unknown keys are refused when they are read (``load_config`` for the
YAML, ``typed_config`` for ``polydiff.json``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from polydiff.diffusion import TrainConfig
from polydiff.physics.atmos_fields import KINDS, FieldConfig
from polydiff.runtime import UserError


@dataclass
class DataConfig:
    """How many synthetic fields to train on: trajectories × snapshots, plus shifted copies."""

    trajectories: int = 16
    snapshots: int = 96
    seed: int = 0
    shifted_copies: int = 1  # extra copies of each field rolled by a random periodic shift
    block: int = 32  # trajectories simulated together (memory; the data barely depend on it)

    def __post_init__(self) -> None:
        for name, low in (("trajectories", 1), ("snapshots", 1), ("seed", 0),
                          ("shifted_copies", 0), ("block", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise UserError(f"data.{name} must be an integer >= {low}, got {value!r}")


def _default_network() -> dict:
    return {  # channels and sample size follow the variables and the fields
        "type": "unet2d", "periodic": True, "block_out_channels": [16, 32, 64],
        "layers_per_block": 1,
        "down_block_types": ["DownBlock2D"] * 3, "up_block_types": ["UpBlock2D"] * 3,
        "norm_num_groups": 8,
    }


def check_variables(variables: list[str], known: tuple[str, ...] | None = None) -> None:
    """The variables must be a non-empty, duplicate-free subset of ``known`` (default: the
    variables of any kind of synthetic fields)."""
    known = known or tuple(v for kind in KINDS.values() for v in kind)
    unknown = [v for v in variables if v not in known]
    if unknown or not variables or len(set(variables)) != len(variables):
        raise UserError(f"variables {variables} must be distinct names out of "
                        f"{', '.join(known)}")


# the spread calibration's key for stations alone (the others are coarse-graining factors)
STATIONS_KEY = "obs"


@dataclass
class CalibrationConfig:
    """Spread calibration fitted after training on held-out validation fields (another
    seed than the training data): per coarse-graining factor and, with ``stations``, for
    stations alone; per variable."""

    factors: list[int] = field(default_factory=list)  # empty: no calibration
    stations: int = 0  # stations of a stations-only calibration (0: none)
    times: int = 6  # validation time steps (independent flows)
    members: int = 8
    steps: int = 50  # the sampling settings the factors hold for (superres' defaults)
    guidance: float = 0.3
    eta: float = 1.0
    constrain: bool = True
    seed: int = 4242

    def __post_init__(self) -> None:
        for name, low in (("times", 1), ("members", 2), ("steps", 1), ("seed", 0),
                          ("stations", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise UserError(f"calibration.{name} must be an integer >= {low}, got {value!r}")
        if not all(isinstance(f, int) and f >= 1 for f in self.factors):
            raise UserError(f"calibration.factors must be integers >= 1, got {self.factors}")


@dataclass
class ConditioningConfig:
    """A conditional network (:mod:`polydiff.apps.atmos.conditional`): the coarse field and
    the stations enter as input channels. Training draws one task per copy of every field:
    a factor alone, a factor with stations, or stations alone (equally likely)."""

    factors: list[int] = field(default_factory=lambda: [4, 8])  # coarse-graining factors
    stations: list[int] = field(default_factory=lambda: [5, 40])  # [min, max] per field
    copies: int = 3  # tasks drawn per training field (each a copy of the field)

    def __post_init__(self) -> None:
        if not self.factors or not all(isinstance(f, int) and not isinstance(f, bool)
                                       and f >= 2 for f in self.factors):
            raise UserError(f"conditioning.factors must be integers >= 2, got {self.factors}")
        lo_hi = self.stations
        if not (isinstance(lo_hi, list) and len(lo_hi) == 2
                and all(isinstance(n, int) and not isinstance(n, bool) for n in lo_hi)
                and 1 <= lo_hi[0] <= lo_hi[1]):
            raise UserError(f"conditioning.stations must be [min, max] with 1 <= min <= max, "
                            f"got {lo_hi}")
        if not isinstance(self.copies, int) or isinstance(self.copies, bool) or self.copies < 1:
            raise UserError(f"conditioning.copies must be an integer >= 1, got {self.copies!r}")


@dataclass
class AtmosConfig:
    """Everything ``polydiff atmos train`` needs: data, network, noise schedule, optimiser."""

    variables: list[str] | None = None  # default: all of the fields' variables
    fields: FieldConfig = field(default_factory=FieldConfig)
    data: DataConfig = field(default_factory=DataConfig)
    network: dict = field(default_factory=_default_network)
    scheduler: str = "ddpm"
    prediction_type: str = "epsilon"
    train: TrainConfig = field(default_factory=TrainConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    conditioning: ConditioningConfig | None = None  # None: the score prior (zero-shot DPS)

    def __post_init__(self) -> None:
        if self.variables is None:
            self.variables = list(self.fields.variables)
        check_variables(self.variables, self.fields.variables)
        channels = len(self.variables)
        inputs = network_inputs(channels, self.conditioning)
        # the channels and the grid follow from the variables and the fields when not given
        self.network = {"in_channels": inputs, "out_channels": channels,
                        "sample_size": self.fields.size, **self.network}
        for key, want in (("in_channels", inputs), ("out_channels", channels)):
            if self.network.get(key, want) != want:
                raise UserError(f"network.{key} must be {want} for {channels} variables"
                                + (" and the conditions" if key == "in_channels"
                                   and self.conditioning else ""))
        if self.network.get("sample_size", self.fields.size) != self.fields.size:
            raise UserError(f"network.sample_size must equal fields.size ({self.fields.size})")


@dataclass
class NormaliserConfig:
    """Per-pixel climatological mean (C, H, W) and per-variable std (C,), physical units."""

    variables: list[str]
    mean: list  # nested lists (C, H, W)
    std: list[float]

    def __post_init__(self) -> None:
        check_variables(self.variables)
        c = len(self.variables)
        if len(self.std) != c or not all(_finite(s) and s > 0 for s in self.std):
            raise ValueError(f"normaliser.std needs {c} finite positive numbers")
        rows = [len(r) for channel in self.mean for r in channel]
        if (len(self.mean) != c or not rows or len(set(rows)) != 1
                or len({len(ch) for ch in self.mean}) != 1):
            raise ValueError(f"normaliser.mean must be a ({c}, H, W) array")
        if not all(_finite(v) for channel in self.mean for r in channel for v in r):
            raise ValueError("normaliser.mean holds non-finite values")


@dataclass
class AtmosModelConfig:
    """The ``config`` block of an atmos checkpoint: the grid it was trained on, normalisation,
    and the ensemble spread calibration fitted on held-out validation fields.

    ``spread_calibration``: coarse-graining factor (as a string), or ``obs`` for stations
    alone -> one factor per variable that multiplies the members' deviations from the
    ensemble mean (for that input alone, the sampling settings in ``calibration_settings``);
    empty when never fitted.
    ``station_guidance``: the DPS weight for observations without a coarse file, tuned on
    validation fields (None: the general default).
    ``conditioning``: set for a conditional network (the data are its inputs; no guidance
    by default), None for the score prior.
    """

    fields: FieldConfig
    normaliser: NormaliserConfig
    spread_calibration: dict = field(default_factory=dict)
    calibration_settings: dict = field(default_factory=dict)
    station_guidance: float | None = None
    conditioning: ConditioningConfig | None = None

    def __post_init__(self) -> None:
        grid = (len(self.normaliser.mean[0]), len(self.normaliser.mean[0][0]))
        if grid != (self.fields.size, self.fields.size):
            raise ValueError(f"normaliser grid {grid} differs from fields.size "
                             f"{self.fields.size}")
        if self.station_guidance is not None and not (
                _finite(self.station_guidance) and self.station_guidance >= 0):
            raise ValueError("station_guidance must be a finite weight >= 0")
        c = len(self.normaliser.variables)
        for key, factors in self.spread_calibration.items():
            if not ((str(key).isdigit() or key == STATIONS_KEY) and isinstance(factors, list)
                    and len(factors) == c and all(_finite(f) and 0 < f <= 10 for f in factors)):
                raise ValueError(f"spread_calibration[{key!r}] must hold {c} finite factors "
                                 "in (0, 10]")


def network_inputs(channels: int, conditioning: ConditioningConfig | None) -> int:
    """Input channels of the network: the variables, and 3C + 1 conditions when conditional
    (coarse anomaly, 1/K, station values and weights per variable)."""
    return channels + (3 * channels + 1 if conditioning is not None else 0)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)
