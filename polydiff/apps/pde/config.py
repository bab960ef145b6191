"""Typed configs of the pde app (``configs/pde/*.yaml``), refused on unknown keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from polydiff.apps.pde.dataset import BurgersData
from polydiff.apps.pde.representation import Layout
from polydiff.diffusion.training import TrainConfig

KINDS = ("wdno", "superres")


@dataclass
class SchedulerConfig:
    """The diffusers noise schedule (WDNO: 1000-step cosine, epsilon prediction, DDIM)."""

    name: str = "ddim"
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"


@dataclass
class SamplingConfig:
    """Defaults of ``simulate``: DDIM steps and its eta (1: stochastic, WDNO's choice)."""

    steps: int = 50
    eta: float = 1.0


@dataclass
class PDEConfig:
    """One model of the pde app.

    Attributes:
        kind: ``wdno`` (whole trajectory from its conditions) or ``superres`` (a 2x finer
            trajectory conditioned on the coarse one's coefficients, repeated 2x).
        layout: sample representation (wavelet or physical domain, family, levels).
        data: the Burgers training set.
        network: backbone network block; channels and sample size are filled in.
        sr_levels: superres only: the fine levels trained on (0: base grid from a 2x
            coarser one; 1: the 2x grid from the base); finer levels are cropped to the
            base grid's sample size.
        crops: superres only: random crops per trajectory of each level above 0.
    """

    kind: str = "wdno"
    layout: Layout = field(default_factory=Layout)
    data: BurgersData = field(default_factory=BurgersData)
    network: dict = field(default_factory=dict)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sr_levels: list[int] = field(default_factory=lambda: [0, 1])
    crops: int = 2

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r} (choose from {KINDS})")

    def network_block(self) -> dict:
        """The network block with channels and sample size set from the layout."""
        channels, h, _ = self.layout.sample_shape(self.data.nt, self.data.nx + 1)
        cond = channels if self.kind == "superres" else 0
        block = {"type": "unet2d", **self.network}
        block.update(in_channels=channels + cond, out_channels=channels, sample_size=h)
        return block
