"""``polydiff mono``: estimate, calibrate, evaluate, scenes, train; and the demo."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from polydiff.apps.contract import add_runtime_args
from polydiff.runtime import (
    UserError,
    atomic_directory,
    atomic_output,
    make_generator,
    pick_device,
)

DEFAULT_CAMERA_HEIGHT = 1.6  # metres: a hand-held camera at eye level


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    sub = p.add_subparsers(dest="mono_command", metavar="COMMAND", required=True)

    e = sub.add_parser("estimate", help="depth, normals, intrinsics and a point cloud per image")
    e.add_argument("input", type=Path, help="an image or a folder of images")
    e.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    e.add_argument("--tasks", default="depth,normals,camera",
                   help="comma-separated subset of depth,normals,camera (default: all)")
    e.add_argument("--camera-height", type=float, default=DEFAULT_CAMERA_HEIGHT,
                   help="camera height above the floor in metres, for metric depth "
                        f"(default: {DEFAULT_CAMERA_HEIGHT})")
    e.add_argument("--relative", action="store_true",
                   help="keep depth affine-invariant (no metric scale from the floor)")
    _add_mode_args(e)
    e.set_defaults(func=run_estimate)

    c = sub.add_parser("calibrate", help="print the intrinsics JSON of an image")
    c.add_argument("input", type=Path, help="an image")
    _add_mode_args(c)
    c.set_defaults(func=run_calibrate)

    v = sub.add_parser("evaluate", help="metrics on a test set with ground truth")
    v.add_argument("--data", type=Path, required=True,
                   help="folder written by `polydiff mono scenes` (or the same layout)")
    v.add_argument("--space", choices=("depth", "disparity"), default="depth",
                   help="space of the least-squares scale-and-shift alignment")
    v.add_argument("--limit", type=int, default=None, help="evaluate the first N samples")
    v.add_argument("-o", "--out", type=Path, default=None, help="also write the JSON here")
    _add_mode_args(v)
    v.set_defaults(func=run_evaluate)

    s = sub.add_parser("scenes", help="write a procedural test set with ground truth")
    s.add_argument("--n", type=int, default=16, help="number of scenes (default: 16)")
    s.add_argument("--size", default="128x96", help="WIDTHxHEIGHT in pixels (default 128x96)")
    s.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    s.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    s.set_defaults(func=run_scenes)

    t = sub.add_parser("train", help="train the mono network on procedural scenes")
    t.add_argument("--config", type=Path, required=True, help="YAML config (configs/mono/)")
    t.add_argument("-o", "--out", type=Path, default=None,
                   help="checkpoint folder (default: train.out_dir of the config); training "
                        "resumes from its train_state/ if present")
    t.add_argument("--device", default="auto", help="auto|cpu|cuda (default: auto)")
    t.set_defaults(func=run_train)


def _add_mode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=("one-step", "ensemble", "refine"), default="one-step",
                   help="one deterministic step (default), an ensemble of DDIM runs, or "
                        "one step refined by the last DDIM steps")
    p.add_argument("--steps", type=int, default=10, help="DDIM steps (ensemble/refine)")
    p.add_argument("--ensemble", type=int, default=5, help="members (ensemble/refine)")
    p.add_argument("--refine-steps", type=int, default=3,
                   help="how many of the last --steps steps refine runs (default 3)")
    add_runtime_args(p)


def _options(args: argparse.Namespace, tasks: tuple[str, ...]):
    from polydiff.apps.mono.pipeline import EstimateOptions

    if not 1 <= args.steps <= 1000:
        raise UserError(f"--steps must lie in [1, 1000], got {args.steps}")
    if not 1 <= args.ensemble <= 64:
        raise UserError(f"--ensemble must lie in [1, 64], got {args.ensemble}")
    if args.mode == "refine" and not 1 <= args.refine_steps <= args.steps:
        raise UserError(f"--refine-steps must lie in [1, --steps], got {args.refine_steps}")
    n = 1 if args.mode == "one-step" else args.ensemble
    return EstimateOptions(tasks, args.mode, args.steps, n, min(args.refine_steps, args.steps),
                           progress=True)


def _tasks(text: str) -> tuple[str, ...]:
    from polydiff.apps.mono.targets import TASKS

    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise UserError(f"--tasks takes a comma-separated subset of {','.join(TASKS)}, "
                        f"got {text!r}")
    return tuple(t for t in TASKS if t in tasks)


def run_estimate(args: argparse.Namespace) -> int:
    from polydiff.apps.mono.estimate import estimate_image, load_pipeline
    from polydiff.apps.mono.outputs import find_images, read_image, write_result

    options = _options(args, _tasks(args.tasks))
    height = None if args.relative else args.camera_height
    if height is not None and not (math.isfinite(height) and height > 0):
        raise UserError(f"--camera-height must be a positive number of metres, got {height}")
    paths = find_images(args.input)
    images = [read_image(p) for p in paths]  # every input checked before any work
    pipeline = load_pipeline(args.model, pick_device(args.device))
    single = not args.input.is_dir()
    with atomic_directory(args.out) as tmp:
        for path, image in zip(paths, images):
            result = estimate_image(pipeline, image, options, make_generator(args.seed),
                                    height)
            folder = tmp if single else tmp / path.stem
            names = write_result(folder, result)
            depth = "metric" if result.metric else "relative"
            print(f"{path.name}: {image.shape[1]}x{image.shape[0]}, {depth} depth, "
                  f"{result.info['seconds']:.2f} s -> {', '.join(names)}")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from polydiff.apps.mono.estimate import load_pipeline
    from polydiff.apps.mono.outputs import read_image
    from polydiff.apps.mono.pipeline import MonoPipeline

    options = _options(args, ("camera",))
    image = read_image(args.input) if args.input.is_file() else None
    if image is None:
        raise UserError(f"image not found: {args.input}")
    pipeline = load_pipeline(args.model, pick_device(args.device))
    if not isinstance(pipeline, MonoPipeline):
        raise UserError("calibrate needs a polydiff mono model (Marigold has no camera head)")
    pred = pipeline(image, options, make_generator(args.seed))
    if pred.intrinsics is None:
        raise UserError(f"{args.input}: {'; '.join(pred.notes)}")
    print(json.dumps(pred.intrinsics.to_dict(), indent=2))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from polydiff.apps.mono.estimate import load_pipeline
    from polydiff.apps.mono.evaluation import evaluate, load_samples
    from polydiff.apps.mono.pipeline import MonoPipeline

    samples = load_samples(args.data, args.limit)
    pipeline = load_pipeline(args.model, pick_device(args.device))
    tasks = pipeline.tasks if not isinstance(pipeline, MonoPipeline) else \
        ("depth", "normals", "camera")
    options = dataclasses.replace(_options(args, tasks), progress=False)
    result = evaluate(pipeline, samples, options, args.seed, args.space)
    text = json.dumps(result, indent=2)
    if args.out is not None:
        with atomic_output(args.out) as tmp:
            tmp.write_text(text)
    print(text)
    return 0


def run_scenes(args: argparse.Namespace) -> int:
    from polydiff.apps.mono.evaluation import write_scenes

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError as err:
        raise UserError(f"--size takes WIDTHxHEIGHT, got {args.size!r}") from err
    if not (8 <= width <= 4096 and 8 <= height <= 4096):
        raise UserError(f"--size sides must lie in [8, 4096], got {args.size}")
    if not 1 <= args.n <= 100000:
        raise UserError(f"--n must lie in [1, 100000], got {args.n}")
    with atomic_directory(args.out) as tmp:
        write_scenes(tmp, args.n, width, height, args.seed)
    print(f"{args.n} scenes of {width}x{height} written to {args.out}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from polydiff.apps.mono.training import load_train_config, train_mono

    cfg = load_train_config(args.config)
    pick_device(args.device)  # refuse cuda without a GPU before rendering anything
    cfg.train.device = args.device
    if args.out is not None:
        cfg.train.out_dir = str(args.out)
    result = train_mono(cfg)
    if os.environ.get("RANK", "0") == "0":  # one line under torchrun, not one per process
        print(f"checkpoint written to {cfg.train.out_dir} after {result.step} steps "
              f"(final loss {result.losses[-1]:.4f})")
    return 0


def demo(out_dir: Path, *, device: torch.device, seed: int) -> str:
    """Render a procedural room, estimate everything in one step, compare with the truth."""
    from polydiff.apps.mono.estimate import estimate_image, load_pipeline
    from polydiff.apps.mono.outputs import save_rgb, write_result
    from polydiff.apps.mono.pipeline import EstimateOptions
    from polydiff.geometry.metrics import depth_metrics, intrinsics_metrics, normal_metrics
    from polydiff.geometry.scenes import SceneConfig, render_scene

    scene = render_scene(np.random.default_rng(seed), SceneConfig(height=96, width=128))
    image = scene.image.numpy()
    pipeline = load_pipeline(None, device)
    result = estimate_image(pipeline, image, EstimateOptions(), make_generator(seed),
                            scene.camera_height)
    with atomic_directory(out_dir) as tmp:
        save_rgb(tmp / "input.png", image)
        write_result(tmp, result)
    gt_depth = scene.depth.numpy().astype(np.float64)
    d = depth_metrics(result.depth, gt_depth)
    n = normal_metrics(result.normals, scene.normals.numpy())
    k = intrinsics_metrics(result.intrinsics, scene.intrinsics)
    metric = ""
    if result.metric:
        raw = depth_metrics(result.depth, gt_depth, align=False)
        metric = f", metric depth AbsRel {raw.abs_rel:.3f} (no alignment)"
    return (f"procedural room 128x96 -> {out_dir}: depth AbsRel {d.abs_rel:.3f} "
            f"delta1 {d.delta1:.2f} (aligned){metric}; normals mean {n.mean:.1f} deg; "
            f"intrinsics e_f {k.e_f:.3f} e_b {k.e_b:.3f}; {result.info['seconds']:.2f} s")
