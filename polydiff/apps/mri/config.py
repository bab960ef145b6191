"""The mri app's light-weight settings (no torch/diffusers import): policies, acquisition
kernels and the reconstruction config, so that the CLI parser is quick to build."""

from __future__ import annotations

from dataclasses import dataclass

# Names of the acquisition kernels in ``ads.KERNELS`` (same order).
KERNEL_NAMES = ("ads", "gmm", "variance")
POLICIES = ("ads", "random", "equispaced")


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
