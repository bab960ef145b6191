"""Typed configs of the pde app (``configs/pde/*.yaml``), refused on unknown keys.

:class:`PDEConfig` serves the WDNO and super-resolution models; :class:`RefinerConfig`
PDE-Refiner and its MSE one-step twin (``kind: refiner``; ``refinement_steps: 0`` is the
MSE model: the same network, one call per step, plain MSE on the next state).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from polydiff.apps.pde.dataset import BurgersData
from polydiff.apps.pde.representation import Layout
from polydiff.diffusion.training import TrainConfig
from polydiff.physics.kuramoto_sivashinsky import KSGrid

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
        band_weight_power: loss weight of each sample channel, ``scale ** power`` normalised
            to mean 1 within its field (u, f). 0: every normalised band counts the same
            (WDNO); 2: the loss is the physical-domain MSE (an orthonormal wavelet keeps
            sums of squares), so the network's capacity goes where the physical error is.
        unforced_repeat: WDNO only: how many times each unforced trajectory of the data
            appears in the training set (1: once, as solved). More weight on the unforced
            problems without solving new data or changing the fitted scales.
        timestep_snr_cap: draw the training timesteps with probability ∝ min(1, cap /
            (1 + SNR_t)) instead of uniformly (``snr_capped_timestep_weights``): fewer of the
            nearly clean steps, which barely change a trajectory. None: uniform.
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
    band_weight_power: float = 0.0
    unforced_repeat: int = 1
    timestep_snr_cap: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r} (choose from {KINDS})")
        if self.kind == "superres" and self.layout.time_pad:
            raise ValueError("layout.time_pad is for wdno models; superres pairs levels of "
                             "different lengths and takes none")
        if not 0.0 <= self.band_weight_power <= 4.0:
            raise ValueError(f"band_weight_power must lie in [0, 4], got "
                             f"{self.band_weight_power}")
        if not 1 <= self.unforced_repeat <= 100:
            raise ValueError(f"unforced_repeat must lie in [1, 100], got {self.unforced_repeat}")
        if self.timestep_snr_cap is not None and not 0 < self.timestep_snr_cap <= 1e4:
            raise ValueError(f"timestep_snr_cap must lie in (0, 1e4] or be null, got "
                             f"{self.timestep_snr_cap}")

    def network_block(self) -> dict:
        """The network block with channels and sample size set from the layout."""
        channels, h, _ = self.layout.sample_shape(self.data.nt, self.data.nx + 1)
        cond = channels if self.kind == "superres" else 0
        block = {"type": "unet2d", **self.network}
        block.update(in_channels=channels + cond, out_channels=channels, sample_size=h)
        return block


# ============================================================ PDE-Refiner
REFINER_EQUATIONS = ("ks", "burgers")

# diffusers' UNet1DModel in its temporal-ResNet form (time embedding added in every block)
UNET1D_BLOCKS = {"mid_block_type": "MidResTemporalBlock1D", "out_block_type": "OutConv1DBlock",
                 "act_fn": "mish", "use_timestep_embedding": True,
                 "time_embedding_type": "positional", "layers_per_block": 1,
                 "norm_num_groups": 8}


@dataclass
class KSData:
    """Kuramoto–Sivashinsky trajectories (PDE-Refiner: L = 64, 256 points, saved every 0.2,
    140 saved intervals for training after a burn-in, the neural solver stepping 0.8).

    ``refine``: the solver runs on ``refine`` x ``nx`` points and every ``refine``-th point
    is kept (coarse CPU models see a state resolved on a finer grid).
    """

    n: int = 2048
    nx: int = 256
    refine: int = 1
    length: float = 64.0
    dt: float = 0.2
    nt: int = 140
    substeps: int = 4
    burn_in: float = 72.0
    seed: int = 0

    def grid(self, nt: int | None = None) -> KSGrid:
        """The solver grid (``nt`` saved intervals instead of the training length if given)."""
        if self.refine < 1:
            raise ValueError(f"ks.refine must be at least 1, got {self.refine}")
        return KSGrid(nx=self.nx * self.refine, length=self.length, dt=self.dt,
                      nt=nt or self.nt, substeps=self.substeps, burn_in=self.burn_in)


@dataclass
class Scales:
    """Normalisation fitted on the training set: the network sees u / ``u`` and forcing / ``f``
    and predicts the next state's change (or the state) divided by ``out``."""

    u: float = 1.0
    f: float = 1.0
    out: float = 1.0


@dataclass
class RefinerConfig:
    """A PDE-Refiner model (Lippe et al. 2023) of one equation.

    Attributes:
        kind: ``refiner`` (what ``polydiff pde train`` reads to pick this config).
        equation: ``ks`` (periodic Kuramoto–Sivashinsky) or ``burgers`` (WDNO's forced
            Burgers, zero Dirichlet, the pde app's training data).
        ks, burgers: the data block of that equation (the other stays empty).
        stride: saved intervals per model step (KS: 4 x 0.2 = 0.8, as in the paper).
        refinement_steps: K; 0 makes the MSE-trained one-step model.
        min_noise_std: the paper's σ_min. As in the reference code it enters as the variance
            β of the last refinement step: step k of K adds noise of variance
            ``min_noise_std ** (k / K)`` (the last one std √4e-7 ≈ 6e-4, relative to the
            normalised target).
        first_step_share: the share of training items drawn at k = K (the first call, the
            one-step prediction); None draws k uniformly from 0..K as the paper does (a share
            of 1 / (K + 1)); the other levels share the rest equally.
        predict_difference: predict u(t + Δt) − u(t) (the paper's choice for KS) or u(t + Δt).
        conserve_mean: KS only, at inference: give each predicted state the mean of the one
            before (KS conserves ∫u exactly; a drifting mean would advect the pattern). Not
            in the paper; off by default.
        network: backbone block (``unet1d``); channels, size and periodicity are filled in.
        scales: normalisation, fitted by training.
        train: optimisation settings of the backbone's ``train``.
    """

    kind: str = "refiner"
    equation: str = "ks"
    ks: KSData | None = None
    burgers: BurgersData | None = None
    stride: int = 4
    refinement_steps: int = 3
    min_noise_std: float = 4e-7
    first_step_share: float | None = None
    predict_difference: bool = True
    conserve_mean: bool = False
    network: dict = field(default_factory=dict)
    scales: Scales = field(default_factory=Scales)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.kind != "refiner":
            raise ValueError(f"a refiner config has kind: refiner, not {self.kind!r}")
        if self.equation not in REFINER_EQUATIONS:
            raise ValueError(f"unknown equation {self.equation!r} (choose from "
                             f"{REFINER_EQUATIONS})")
        if self.equation == "ks":
            self.ks = self.ks or KSData()
            self.burgers = None
        else:
            self.burgers = self.burgers or BurgersData()
            self.ks = None
        if self.conserve_mean and self.equation != "ks":
            raise ValueError("conserve_mean applies to ks (a forced Burgers state changes its "
                             "mean)")
        if self.stride < 1 or self.refinement_steps < 0 or not 0 < self.min_noise_std < 1:
            raise ValueError("need stride >= 1, refinement_steps >= 0 and 0 < min_noise_std < 1")
        if self.first_step_share is not None and not (
                self.refinement_steps > 0 and 0 < self.first_step_share < 1):
            raise ValueError("first_step_share needs refinement_steps > 0 and a value in (0, 1)")

    def timestep_weights(self) -> list[float] | None:
        """Training probabilities of k = 0..K (None: uniform, the paper's)."""
        if self.first_step_share is None:
            return None
        k = self.refinement_steps
        return [(1 - self.first_step_share) / k] * k + [self.first_step_share]

    @property
    def periodic(self) -> bool:
        return self.equation == "ks"

    @property
    def points(self) -> int:
        """Points the network sees: KS's grid, or Burgers' interior nodes plus the left wall."""
        return self.ks.nx if self.ks is not None else self.burgers.nx + 1

    @property
    def cond_channels(self) -> int:
        """u(t), plus for Burgers the forcing at t and t + Δt."""
        return 1 if self.equation == "ks" else 3

    @property
    def saved_dt(self) -> float:
        """Interval between saved states of the data."""
        return self.ks.dt if self.ks is not None else self.burgers.t_final / self.burgers.nt

    @property
    def step_dt(self) -> float:
        """Time advanced by one model step."""
        return self.stride * self.saved_dt

    def network_block(self) -> dict:
        """The backbone block: a temporal-ResNet UNet1DModel with channels, size, periodicity."""
        chans = list(self.network.get("block_out_channels", [32, 64, 64]))
        block = {"type": "unet1d", **UNET1D_BLOCKS,
                 "down_block_types": ["DownResnetBlock1D"] * len(chans),
                 "up_block_types": ["UpResnetBlock1D"] * (len(chans) - 1), **self.network}
        block.update(in_channels=1 + self.cond_channels, out_channels=1,
                     sample_size=self.points, periodic=self.periodic)
        if self.points % 2 ** (len(chans) - 1):
            raise ValueError(f"{self.points} points are not divisible by 2^{len(chans) - 1} "
                             "(the network's down-sampling)")
        return block
