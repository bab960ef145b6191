"""The mri app's typed settings (no torch import, so the CLI parser is quick to build).

- ``MriConfig``: the app's block of ``polydiff.json`` (the model's grid and normalisation);
- ``DataConfig``: how a training set is made;
- ``ReconConfig``: one reconstruction's sampling and acquisition settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Names of the acquisition kernels in ``ads.KERNELS`` (same order).
KERNEL_NAMES = ("ads", "gmm", "variance")
POLICIES = ("ads", "random", "equispaced")
# What an acquisition starts from (``polydiff.medical.masks.STARTS``): the fastMRI centre
# block (default: the calibration lines that multi-coil SENSE maps are estimated from), or
# the ADS paper's single centre line with every other line chosen.
STARTS = ("block", "line")
# How a user's k-space is brought to the model's square grid (``data.grid_fit``): the whole
# field of view at the model's resolution, or the central pixels at full resolution.
FITS = ("fov", "crop")
# The one normalisation statistic implemented (``data.reference_scale``).
CENTRE_COLUMN_RMS = "centre_column_rms"


@dataclass
class Normalisation:
    """Model units: image / (``statistic`` of the k-space × ``factor``)."""

    statistic: str = CENTRE_COLUMN_RMS
    factor: float = 1.0

    def __post_init__(self) -> None:
        if self.statistic != CENTRE_COLUMN_RMS:
            raise ValueError(f"unknown normalisation statistic {self.statistic!r} "
                             f"(this polydiff knows {CENTRE_COLUMN_RMS})")
        if not (math.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"normalisation factor must be finite and > 0, got {self.factor}")


@dataclass
class DataConfig:
    """Training data: ``n`` random phantoms of ``size`` (``file`` None), or a fastMRI file's
    single-coil slices brought to ``size`` by the rule ``fit`` (``data.grid_fit``; the rule
    reconstruction uses by default for this model)."""

    size: int = 32
    n: int = 2000
    seed: int = 0
    file: str | None = None
    fit: str = "fov"

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise ValueError(f"unknown fit rule {self.fit!r} (use {', '.join(FITS)})")


@dataclass
class MriConfig:
    """The ``config`` block of an mri checkpoint's ``polydiff.json``.

    ``size``: the model's square grid (pixels); ``normalisation``: how k-space becomes model
    units; ``data``: how the training set was made (a record, not used for sampling).
    """

    size: int
    normalisation: Normalisation
    data: DataConfig | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 8:
            raise ValueError(f"size must be an integer >= 8, got {self.size!r}")


@dataclass
class ReconConfig:
    """Sampling settings (defaults follow ADS: 16 particles, DDIM, DPS weight ω)."""

    acceleration: float = 4
    policy: str = "ads"
    particles: int = 16
    steps: int = 50
    guidance_weight: float = 4.0  # ω of the DPS step on ‖y − A x̂₀‖ (tuned on validation phantoms)
    kernel: str = "ads"  # ads | gmm | variance
    sigma: float = 0.1  # measurement noise std in model units (ADS kernel)
    window: tuple[float, float] = (0.0, 0.6)  # part of the reverse process that acquires
    center_fraction: float | None = None  # fastMRI default for 4x / 8x when None
    start: str = "block"  # block: fastMRI centre block fixed | line: one centre line fixed
    fit: str | None = None  # fov | crop (data.grid_fit); None: the model's training rule
