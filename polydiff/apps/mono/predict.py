"""Image -> depth, normals and intrinsics with the mono network, in three inference modes.

- ``one-step`` (default): one deterministic UNet pass at t = T-1 from x_t = 0, read as the
  clean estimate x0; the network was trained for it with a clean-target loss at that t
  (the E2E-FT recipe of Garcia et al., "Fine-tuning image-conditional diffusion models is
  easier than you think"). It is not PrimeDepth (which reads a frozen diffusion model's
  preimage features with a separate decoder).
- ``ensemble`` (Marigold v1.0): N members, each S DDIM steps from seeded noise; depth
  members are aligned to their median by least-squares scale and shift before the median,
  normals are averaged; the spread is returned as an uncertainty map.
- ``refine`` (SDEdit-style): the one-step estimate is noised to an intermediate level and
  denoised by the last few DDIM steps of an S-step schedule, by the same network (not
  StableNormal's separate, semantics-guided refinement network).

The network works at its processing resolution r x r; only the decoded results are
resampled to the input size, once per task, and copied to the host after the sampling.
The sampling is the backbone's (``polydiff.diffusion.sampling.sample``, ``start=`` for the
refinement) and the network's output is read as the scheduler's ``prediction_type``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from polydiff.apps.mono.config import TASKS, EstimateOptions
from polydiff.apps.mono.model import MonoModel
from polydiff.apps.mono.targets import TASK_ID, decode_depth, decode_normals, image_to_model
from polydiff.diffusion.networks import Denoiser
from polydiff.diffusion.predictions import to_x0
from polydiff.diffusion.sampling import noise_to_step, sample
from polydiff.geometry.camera_image import intrinsics_from_camera_image
from polydiff.geometry.cameras import Intrinsics


@dataclass
class MonoPrediction:
    """Results at the input size H x W (None for tasks not asked for).

    depth: (H, W) float32 relative depth in [0, 1] (0 near); depth_uncertainty: (H, W)
    spread of the aligned members in the same units; normals: (H, W, 3) float32 unit,
    OpenCV camera frame; normals_uncertainty: (H, W) mean angle of the members to their
    mean, degrees (the uncertainties only for more than one member); intrinsics: of the
    H x W image (None if the Camera Image allowed no fit, see notes).
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


class MonoPredictor:
    """The mono network wrapped for inference on one RGB image at a time."""

    tasks: tuple[str, ...] = TASKS

    def __init__(self, model: MonoModel, device: torch.device | str) -> None:
        self.model, self.device = model, torch.device(device)
        scheduler = model.scheduler
        self.prediction_type = scheduler.config.prediction_type
        self.t_last = scheduler.config.num_train_timesteps - 1
        self.alpha_last = scheduler.alphas_cumprod[self.t_last].to(self.device)

    def gives_uncertainty(self, options: EstimateOptions) -> bool:
        """Whether uncertainty maps come with these options (more than one member)."""
        return options.n_members > 1

    @torch.no_grad()
    def __call__(self, image: np.ndarray, options: EstimateOptions,
                 generator: torch.Generator) -> MonoPrediction:
        """(H, W, 3) RGB in [0, 1] -> MonoPrediction at H x W."""
        # 1. prepare: (1, 3, r, r) conditioning in [-1, 1] on the device
        h, w = image.shape[:2]
        cond = self.condition(image)
        out = MonoPrediction()
        for task in options.tasks:
            # 2. the clean target(s) x0: (N, 3, r, r) on the device
            x0 = self.estimate(cond, task, options, generator)
            # 3. decode at the input size
            if task == "depth":
                out.depth, out.depth_uncertainty = ensemble_depth(decode_depth(x0), h, w)
            elif task == "normals":
                out.normals, out.normals_uncertainty = ensemble_normals(decode_normals(x0), h, w)
            else:
                cam = x0.mean(0).cpu()
                rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,),
                                                              generator=generator)))
                # the two lines of the Camera Image; a focal channel (data.focal_channel) is an
                # auxiliary training target: its vote was measured worse than this fit
                try:
                    out.intrinsics = intrinsics_from_camera_image(
                        cam, rng, size=(w, h), square_pixels=options.square_pixels)
                except ValueError as err:
                    out.notes.append(f"no intrinsics from the Camera Image: {err}")
        return out

    def condition(self, image: np.ndarray) -> Tensor:
        """(H, W, 3) RGB in [0, 1] -> (1, 3, r, r) network conditioning on the device."""
        r = self.model.resolution
        rgb = torch.from_numpy(np.asarray(image, np.float32)).permute(2, 0, 1)[None]
        return image_to_model(resize(rgb, r, r)).to(self.device)

    def denoiser(self, cond: Tensor, task: str, n: int) -> Denoiser:
        """The model callable (x_t (n, 3, r, r), t) -> network output for one task."""
        labels = torch.full((n,), TASK_ID[task], device=self.device)
        return Denoiser(self.model.unet, cond, class_labels=labels)

    def estimate(self, cond: Tensor, task: str, options: EstimateOptions,
                 generator: torch.Generator) -> Tensor:
        """Clean target(s) x0 (N, 3, r, r) for one (1, 3, r, r) image by ``options.mode``."""
        if options.mode == "one-step":
            return self.one_step(cond, task)
        n, scheduler = options.members, self.model.scheduler
        model = self.denoiser(cond, task, n)
        shape = (n, 3, *cond.shape[-2:])
        if options.mode == "ensemble":
            return sample(model, scheduler, shape, steps=options.steps, generator=generator,
                          device=self.device, progress=options.progress).sample
        if options.mode == "refine":
            start = options.steps - max(1, min(options.refine_steps, options.steps))
            x0 = self.one_step(cond, task).expand(shape)
            x_start = noise_to_step(scheduler, x0, options.steps, start, generator)
            return sample(model, scheduler, shape, steps=options.steps, generator=generator,
                          x_T=x_start, device=self.device, progress=options.progress,
                          start=start).sample
        raise ValueError(f"unknown mode {options.mode!r}")

    def one_step(self, cond: Tensor, task: str) -> Tensor:
        """One UNet pass at t = T-1 from x_t = 0: the (1, 3, r, r) clean estimate."""
        x_t = torch.zeros((1, 3, *cond.shape[-2:]), device=self.device)
        t = torch.tensor(self.t_last, device=self.device)
        output = self.denoiser(cond, task, 1)(x_t, t)
        return to_x0(output, x_t, self.alpha_last, self.prediction_type)


def ensemble_depth(depth: Tensor, h: int, w: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, r, r) relative depths -> (H, W) median of the members aligned to their median by
    least-squares scale and shift, normalised to [0, 1]; and (H, W) standard deviation of
    the aligned members in the same units (None for N = 1). Float32, on the host."""
    ref = depth.median(0).values
    d, y = depth.flatten(1).double(), ref.flatten().double()
    dc, yc = d - d.mean(1, keepdim=True), y - y.mean()
    scale = (dc * yc).sum(1) / (dc * dc).sum(1).clamp(min=1e-300)
    shift = y.mean() - scale * d.mean(1)
    aligned = depth * scale.float()[:, None, None] + shift.float()[:, None, None]
    merged = aligned.median(0).values
    lo, hi = merged.min(), merged.max()
    span = (hi - lo).clamp(min=1e-6)
    maps = [(merged - lo) / span]
    if len(depth) > 1:
        maps.append(aligned.std(0, unbiased=False) / span)
    both = resize(torch.stack(maps)[None].float(), h, w)[0]
    spread = both[1].cpu().numpy() if len(depth) > 1 else None
    return both[0].clamp(0, 1).cpu().numpy(), spread


def ensemble_normals(normals: Tensor, h: int, w: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 3, r, r) unit normals -> (H, W, 3) unit mean and (H, W) mean angle to it in
    degrees (None for N = 1). Float32, on the host."""
    mean = torch.nn.functional.normalize(normals.mean(0), dim=0)
    maps = [mean]
    if len(normals) > 1:
        cos = (normals * mean).sum(1).clamp(-1, 1)
        maps.append(torch.rad2deg(torch.arccos(cos)).mean(0)[None])
    up = resize(torch.cat(maps)[None], h, w)[0]
    spread = up[3].cpu().numpy() if len(normals) > 1 else None
    n = up[:3]
    length = n[0].square().addcmul_(n[1], n[1]).addcmul_(n[2], n[2]).sqrt_().clamp_(min=1e-12)
    n.div_(length)  # unit again after resampling (in place: the input size may be large)
    return n.permute(1, 2, 0).contiguous().cpu().numpy(), spread
