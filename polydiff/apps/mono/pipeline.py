"""Image -> depth, normals, intrinsics with the mono network, in three inference modes.

- ``one-step`` (default; PrimeDepth / StableNormal-YOSO): one deterministic UNet pass at
  t = T-1 from x_t = 0, read as the clean estimate x0.
- ``ensemble`` (Marigold v1.0): N members, each S DDIM steps from seeded noise; depth
  members are aligned to their median by least-squares scale and shift before the median,
  normals are averaged; the spread is returned as an uncertainty map.
- ``refine`` (StableNormal): the one-step estimate is noised to an intermediate level and
  denoised by the last few DDIM steps of an S-step schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from polydiff.apps.mono.model import MonoModel, denoiser
from polydiff.apps.mono.targets import (
    TASK_ID,
    decode_depth,
    decode_normals,
    image_to_model,
)
from polydiff.diffusion.predictions import to_x0
from polydiff.diffusion.sampling import noise_to_level, sample
from polydiff.geometry.camera_image import intrinsics_from_camera_image
from polydiff.geometry.cameras import Intrinsics
from polydiff.geometry.metrics import fit_scale_shift

Mode = Literal["one-step", "ensemble", "refine"]
MODES: tuple[str, ...] = ("one-step", "ensemble", "refine")


@dataclass(frozen=True)
class EstimateOptions:
    """What to estimate and how.

    tasks: subset of ("depth", "normals", "camera"); mode: see the module docstring;
    steps: DDIM steps of the ensemble/refine schedule; ensemble: members (ensemble and
    refine modes); refine_steps: how many of the last ``steps`` steps refine runs.
    """

    tasks: tuple[str, ...] = ("depth", "normals", "camera")
    mode: Mode = "one-step"
    steps: int = 10
    ensemble: int = 5
    refine_steps: int = 3
    progress: bool = False


@dataclass
class MonoPrediction:
    """Results at the input size H x W (None for tasks not asked for).

    depth: (H, W) relative depth in [0, 1] (0 near); depth_uncertainty: (H, W) spread of the
    aligned ensemble in the same units; normals: (H, W, 3) unit, OpenCV camera frame;
    normals_uncertainty: (H, W) mean angle of the members to their mean, degrees (the
    uncertainties only for more than one member);
    intrinsics: of the H x W image (None if the Camera Image allowed no fit, see notes).
    """

    depth: np.ndarray | None = None
    depth_uncertainty: np.ndarray | None = None
    normals: np.ndarray | None = None
    normals_uncertainty: np.ndarray | None = None
    intrinsics: Intrinsics | None = None
    notes: list[str] = field(default_factory=list)


def resize(x: Tensor, height: int, width: int) -> Tensor:
    """(B, C, h, w) -> (B, C, height, width), bilinear (antialiased when shrinking)."""
    if x.shape[-2:] == (height, width):
        return x
    shrink = height < x.shape[-2] or width < x.shape[-1]
    return torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear",
                                           align_corners=False, antialias=shrink)


class MonoPipeline:
    """The mono network wrapped for inference on one RGB image at a time."""

    def __init__(self, model: MonoModel, device: torch.device) -> None:
        self.model, self.device = model, device

    def __call__(self, image: np.ndarray, options: EstimateOptions,
                 generator: torch.Generator) -> MonoPrediction:
        """(H, W, 3) RGB in [0, 1] -> MonoPrediction at H x W."""
        # 1. prepare: resize to the processing resolution, scale to [-1, 1]
        h, w = image.shape[:2]
        r = self.model.resolution
        rgb = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
        cond = image_to_model(resize(rgb, r, r)).to(self.device)  # (1, 3, r, r)
        out = MonoPrediction()
        # 2. estimate each task's clean target x0: (N, 3, r, r)
        for task in options.tasks:
            x0 = self.estimate(cond, task, options, generator).cpu()
            # 3. decode at the input size
            several = x0.shape[0] > 1
            if task == "depth":
                out.depth, unc = ensemble_depth(decode_depth(x0), h, w)
                out.depth_uncertainty = unc if several else None
            elif task == "normals":
                out.normals, unc = ensemble_normals(decode_normals(x0), h, w)
                out.normals_uncertainty = unc if several else None
            else:
                cam = x0.mean(0)
                rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,),
                                                              generator=generator)))
                try:
                    out.intrinsics = intrinsics_from_camera_image(cam, rng).resized(w, h)
                except ValueError as err:
                    out.notes.append(f"no intrinsics from the Camera Image: {err}")
        return out

    @torch.no_grad()
    def estimate(self, cond: Tensor, task: str, options: EstimateOptions,
                 generator: torch.Generator) -> Tensor:
        """Clean target(s) x0 (N, 3, r, r) for one (1, 3, r, r) image by ``options.mode``."""
        if options.mode == "one-step":
            return self.one_step(cond, task)
        n = options.ensemble
        model = denoiser(self.model.unet, cond.expand(n, -1, -1, -1),
                         torch.full((n,), TASK_ID[task], device=self.device))
        scheduler = self.model.scheduler
        shape = (n, 3, *cond.shape[-2:])
        if options.mode == "ensemble":
            return sample(model, scheduler, shape, steps=options.steps, generator=generator,
                          device=self.device, progress=options.progress).sample
        if options.mode == "refine":
            return self.refine(model, self.one_step(cond, task).expand(shape), options,
                               generator)
        raise ValueError(f"unknown mode {options.mode!r}; choose from {', '.join(MODES)}")

    def one_step(self, cond: Tensor, task: str) -> Tensor:
        """One UNet pass at t = T-1 from x_t = 0: (1, 3, r, r) clean estimate."""
        scheduler = self.model.scheduler
        t = scheduler.config.num_train_timesteps - 1
        model = denoiser(self.model.unet, cond, torch.tensor([TASK_ID[task]], device=self.device))
        x_t = torch.zeros_like(cond)
        v = model(x_t, torch.tensor(t, device=self.device))
        return to_x0(v, x_t, scheduler.alphas_cumprod[t].to(self.device), "v_prediction")

    def refine(self, model, x0: Tensor, options: EstimateOptions,
               generator: torch.Generator) -> Tensor:
        """Noise ``x0`` to the level of the last ``refine_steps`` of an S-step DDIM schedule
        and run those steps (SDEdit-style refinement of the one-step estimate)."""
        scheduler = self.model.scheduler
        scheduler.set_timesteps(options.steps, device=self.device)
        timesteps = scheduler.timesteps[-max(1, min(options.refine_steps, options.steps)):]
        noise = torch.randn(x0.shape, generator=generator).to(self.device)
        x = noise_to_level(scheduler, x0, noise, scheduler.alphas_cumprod[timesteps[0]])
        for t in tqdm(timesteps, desc="refining", disable=not options.progress):
            x = scheduler.step(model(x, t), t, x).prev_sample
        return x


def ensemble_depth(depth: Tensor, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, r, r) relative depths -> (H, W) median of the affine-aligned members in [0, 1]
    and (H, W) standard deviation of the aligned members (zeros for N = 1)."""
    ref = depth.median(0).values
    aligned = []
    for d in depth:
        s, b = fit_scale_shift(d.flatten().double().numpy(), ref.flatten().double().numpy())
        aligned.append(d * s + b)
    stack = torch.stack(aligned)
    merged = stack.median(0).values
    lo, hi = merged.min(), merged.max()
    scale = (hi - lo).clamp(min=1e-6)
    merged, spread = (merged - lo) / scale, stack.std(0, unbiased=False) / scale
    both = resize(torch.stack([merged, spread])[None].float(), h, w)[0]
    return both[0].clamp(0, 1).numpy(), both[1].numpy()


def ensemble_normals(normals: Tensor, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, r, r) unit normals -> (H, W, 3) unit mean and (H, W) mean angle to it (deg)."""
    mean = torch.nn.functional.normalize(normals.mean(0), dim=0)
    cos = (normals * mean).sum(1).clamp(-1, 1)
    spread = torch.rad2deg(torch.arccos(cos)).mean(0)
    up = resize(torch.cat([mean, spread[None]])[None], h, w)[0]
    n = torch.nn.functional.normalize(up[:3], dim=0).permute(1, 2, 0)
    return n.numpy(), up[3].numpy()


def fixed_fov_intrinsics(width: int, height: int, fov_x_deg: float = 60.0) -> Intrinsics:
    """The fixed-field-of-view guess (centred principal point, square pixels)."""
    return Intrinsics.from_fov(fov_x_deg, width, height)

