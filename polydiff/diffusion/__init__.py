"""The shared diffusion backbone: networks, conversions, one sampling loop with hooks,
measurement operators, training and checkpoints — built on diffusers.

This package imports nothing from the domain packages (geometry, physics, medical).
"""

from polydiff.diffusion.checkpoint import (
    Checkpoint,
    load_checkpoint,
    load_network,
    load_scheduler,
    read_config,
    save_checkpoint,
)
from polydiff.diffusion.config import load_config
from polydiff.diffusion.guidance import (
    DataConsistency,
    MeasurementGuidance,
    ReplaceKnown,
    classifier_free,
)
from polydiff.diffusion.networks import Denoiser, build_network, count_parameters
from polydiff.diffusion.operators import (
    AvgPool,
    Operator,
    PointMask,
    SparseLinear,
    Stack,
)
from polydiff.diffusion.predictions import convert, from_x0, to_x0
from polydiff.diffusion.sampling import (
    ProgressBar,
    SampleOutput,
    SamplerHook,
    StepCallback,
    StepState,
    noise_to_step,
    sample,
)
from polydiff.diffusion.schedulers import make_scheduler, switch_scheduler
from polydiff.diffusion.training import TrainConfig, TrainResult, denoising_loss, train

__all__ = [
    "AvgPool", "Checkpoint", "DataConsistency", "Denoiser", "MeasurementGuidance",
    "Operator", "PointMask", "ProgressBar", "ReplaceKnown", "SampleOutput", "SamplerHook",
    "SparseLinear", "Stack", "StepCallback", "StepState", "TrainConfig", "TrainResult",
    "build_network", "classifier_free", "convert", "count_parameters", "denoising_loss",
    "from_x0", "load_checkpoint", "load_config", "load_network", "load_scheduler",
    "make_scheduler", "noise_to_step", "read_config", "sample", "save_checkpoint",
    "switch_scheduler", "to_x0", "train",
]
