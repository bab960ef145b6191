"""A user's Marigold depth or normals pipeline folder behind the mono predictor interface.

The folder is diffusers' layout (``model_index.json``, ``unet/``, ``vae/``, ``scheduler/``,
``text_encoder/``, ``tokenizer/``) and is loaded offline with ``from_pretrained`` of
``MarigoldDepthPipeline`` or ``MarigoldNormalsPipeline`` (safetensors only; needs the
optional ``transformers`` package: ``pip install 'polydiff[marigold]'``). Modes map to
Marigold's own arguments: one-step -> 1 step, 1 member; ensemble -> S steps, N members with
Marigold's ensembling and uncertainty; refine is not part of Marigold and runs as
``--refine-steps`` steps of one member. Marigold normals (x right, y up, z to the viewer)
are turned into the OpenCV camera frame (x right, y down, z forward).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from polydiff.apps.mono.config import EstimateOptions
from polydiff.apps.mono.predict import MonoPrediction
from polydiff.diffusion.checkpoint import check_folder
from polydiff.runtime import UserError

MARIGOLD_TASKS = {"MarigoldDepthPipeline": "depth", "MarigoldNormalsPipeline": "normals"}
OPENGL_TO_OPENCV = np.array([1.0, -1.0, -1.0], dtype=np.float32)


class MarigoldPredictor:
    """Wraps a diffusers Marigold pipeline; ``tasks`` is ("depth",) or ("normals",)."""

    def __init__(self, pipe, task: str) -> None:
        self.pipe, self.tasks = pipe, (task,)

    def gives_uncertainty(self, options: EstimateOptions) -> bool:
        """Whether uncertainty maps come with these options (Marigold's own ensembling)."""
        return options.mode == "ensemble" and options.members > 1

    @classmethod
    def load(cls, folder: Path, index: dict, device: torch.device) -> MarigoldPredictor:
        """Load ``folder`` whose ``model_index.json`` is ``index``."""
        name = index.get("_class_name")
        if name not in MARIGOLD_TASKS:
            raise UserError(f"{folder}: diffusers pipeline {name!r} is not supported "
                            f"(use {' or '.join(MARIGOLD_TASKS)})")
        check_folder(folder)
        try:
            import transformers  # noqa: F401  (Marigold's text encoder and tokenizer)
        except ModuleNotFoundError as err:
            raise UserError("loading a Marigold folder needs the `transformers` package: "
                            "pip install 'polydiff[marigold]'") from err
        import diffusers

        try:
            pipe = getattr(diffusers, name).from_pretrained(
                folder, local_files_only=True, use_safetensors=True)
        except (OSError, ValueError) as err:
            raise UserError(f"cannot load Marigold folder {folder}: "
                            f"{str(err).splitlines()[0]}") from err
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe.to(device), MARIGOLD_TASKS[name])

    def __call__(self, image: np.ndarray, options: EstimateOptions,
                 generator: torch.Generator) -> MonoPrediction:
        """(H, W, 3) RGB in [0, 1] -> MonoPrediction at H x W (only this folder's task)."""
        task = self.tasks[0]
        out = MonoPrediction()
        skipped = [t for t in options.tasks if t != task]
        if skipped:
            out.notes.append(f"the Marigold {task} model does not estimate {', '.join(skipped)}")
        if task not in options.tasks:
            return out
        steps, members = {"one-step": (1, 1), "ensemble": (options.steps, options.members),
                          "refine": (options.refine_steps, 1)}[options.mode]
        if options.mode == "refine":
            out.notes.append("Marigold has no refine mode: ran --refine-steps steps of one member")
        res = self.pipe(np.ascontiguousarray(image, np.float32)[None], num_inference_steps=steps,
                        ensemble_size=members, generator=generator, output_type="np",
                        output_uncertainty=members > 1)
        pred = res.prediction[0]  # (H, W, 1) depth in [0, 1] or (H, W, 3) normals
        unc = None if res.uncertainty is None else res.uncertainty[0, ..., 0]
        if task == "depth":
            out.depth, out.depth_uncertainty = pred[..., 0].astype(np.float32), unc
        else:
            n = pred * OPENGL_TO_OPENCV
            out.normals = n / np.linalg.norm(n, axis=-1, keepdims=True).clip(1e-8)
            out.normals_uncertainty = unc
        return out
