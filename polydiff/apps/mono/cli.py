"""``polydiff mono``: estimate, calibrate, evaluate, scenes, train; and the demo.

Argument handling only; the work is in the modules named after the commands. Nothing
heavy (torch, numpy, PIL) is imported until a command runs, so ``--help`` and argument
errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from polydiff.apps.contract import (
    DemoResult,
    Outputs,
    PerInput,
    add_eval_args,
    add_members,
    add_number,
    add_output,
    add_resume,
    add_runtime_args,
    add_steps,
    add_train_args,
    apply_train_args,
    default_json,
    report,
)
from polydiff.apps.mono.config import MODES, TASKS, EstimateOptions
from polydiff.runtime import UserError

if TYPE_CHECKING:
    import torch

DEFAULT_CAMERA_HEIGHT = 1.6  # metres: a hand-held camera at eye level
MIN_FLOOR_FRACTION = 0.02  # = polydiff.apps.mono.estimate.MIN_FLOOR_FRACTION (no torch here)


def register(subparsers, name: str, help_text: str) -> None:
    """Add ``polydiff mono`` and its commands."""
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    sub = p.add_subparsers(dest="mono_command", metavar="COMMAND", required=True)

    e = sub.add_parser(
        "estimate", help="depth, normals, intrinsics and a point cloud per image",
        description="Depth, normals, intrinsics and a point cloud per image. The results of "
                    "INPUT/photo.jpg are OUTPUT/photo.jpg.depth.npy, .depth.png, "
                    ".depth_vis.png, .points.ply, .normals.npy, .normals.png, "
                    ".intrinsics.json and .estimate.json.")
    e.add_argument("input", type=Path, help="an image, or a folder of images")
    add_output(e, "output folder (created if missing; not the input folder)")
    add_resume(e)
    _add_tasks(e)
    add_number(e, "--camera-height", lo=0, lo_open=True, hi=100, default=DEFAULT_CAMERA_HEIGHT,
               help="camera height above the floor in metres, for metric depth")
    e.add_argument("--relative", action="store_true",
                   help="keep depth affine-invariant (no metric scale from the floor)")
    add_number(e, "--min-floor-fraction", lo=0, hi=1, default=MIN_FLOOR_FRACTION,
               help="metric depth only when the fitted floor covers at least this share of "
                    "the pixels (else relative depth and a note)")
    _add_mode_args(e)
    e.set_defaults(func=run_estimate)

    c = sub.add_parser("calibrate", help="the intrinsics JSON of an image",
                       description="Estimate the intrinsics of an image and print them as JSON.")
    c.add_argument("input", type=Path, help="an image")
    add_output(c, "also write the JSON to this file", required=False)
    _add_mode_args(c)
    c.set_defaults(func=run_calibrate)

    v = sub.add_parser("evaluate", help="metrics against a test set with ground truth",
                       description="Metrics against a test set written by `polydiff mono "
                                   "scenes`: of the model (it runs) or of results written "
                                   "by `polydiff mono estimate TRUTH -o PRED` (--pred).")
    add_eval_args(v, truth="test set folder (written by `polydiff mono scenes`)",
                  pred="folder written by `polydiff mono estimate` on the test set "
                       "(default: run the model)", pred_required=False)
    v.add_argument("--space", choices=("depth", "disparity"), default="depth",
                   help="space of the least-squares scale-and-shift alignment (default: depth)")
    add_number(v, "--limit", kind=int, lo=1, hi=10**6, help="evaluate the first N samples")
    _add_tasks(v)
    _add_mode_args(v)
    v.set_defaults(func=run_evaluate)

    s = sub.add_parser("scenes", help="write a procedural test set with ground truth",
                       description="Write procedural rooms with exact depth, normals and "
                                   "intrinsics: OUTPUT/0000.png, 0000.depth.npy, "
                                   "0000.normals.npy, 0000.intrinsics.json, 0000.scene.json, ...")
    add_output(s, "output folder")
    add_number(s, "--n", kind=int, lo=1, hi=10000, default=16, help="number of scenes")
    add_number(s, "--width", kind=int, lo=8, hi=4096, default=128, help="image width in pixels")
    add_number(s, "--height", kind=int, lo=8, hi=4096, default=96,
               help="image height in pixels")
    add_runtime_args(s, model=False, device=False)
    s.set_defaults(func=run_scenes)

    t = sub.add_parser("train", help="train the mono network on procedural scenes")
    add_train_args(t, "mono")
    t.set_defaults(func=run_train)


def _add_tasks(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", default=",".join(TASKS),
                   help=f"comma-separated subset of {','.join(TASKS)} (default: all)")


def _add_mode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=MODES, default="one-step",
                   help="one-step (default): one deterministic network pass from t=T, "
                        "trained with a clean-target loss (E2E-FT style); ensemble: "
                        "--members DDIM runs of --steps steps from seeded noise, aligned "
                        "and merged (Marigold style), with uncertainty maps; refine: "
                        "SDEdit-style, the one-step result noised to the last "
                        "--refine-steps of --steps and denoised by them")
    add_steps(p, 10, help="DDIM sampling steps of the ensemble and refine modes")
    add_members(p, 5, "members of the ensemble and refine modes", hi=64)
    add_number(p, "--refine-steps", kind=int, lo=1, hi=1000, default=3,
               help="how many of the last --steps steps refine runs")
    p.add_argument("--two-focal-lengths", action="store_true",
                   help="estimate fx and fy separately (default: one focal length, fx = fy, "
                        "as cameras have square pixels)")
    add_runtime_args(p)


def _options(args: argparse.Namespace, tasks: tuple[str, ...],
             progress: bool = True) -> EstimateOptions:
    if args.mode == "refine" and args.refine_steps > args.steps:
        raise UserError(f"--refine-steps ({args.refine_steps}) must not exceed --steps "
                        f"({args.steps})")
    return EstimateOptions(tasks, args.mode, args.steps, args.members, args.refine_steps,
                           progress=progress, square_pixels=not args.two_focal_lengths)


def _tasks(text: str) -> tuple[str, ...]:
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise UserError(f"--tasks takes a comma-separated subset of {','.join(TASKS)}, "
                        f"got {text!r}")
    return tuple(t for t in TASKS if t in tasks)


def _output_folder(path: Path, source: Path | None = None) -> Path:
    """Refuse an output folder that is an existing file, or the input folder itself."""
    if path.exists() and not path.is_dir():
        raise UserError(f"-o {path} is an existing file; the command writes a folder of "
                        "results: name a folder")
    if source is not None and source.is_dir() and path.is_dir() and os.path.samefile(path,
                                                                                       source):
        raise UserError(f"-o {path} is the input folder: the results would mix with the "
                        "images (and be read as images by the next run); name another folder")
    return path


def _image_line(path: Path, width: int, height: int, res) -> str:
    depth = "metric" if res.metric else "relative" if res.depth is not None else "no"
    support = res.info.get("floor_support")
    if support is not None:
        need = 100 * res.info["metric_fit"]["min_floor_fraction"]
        depth += (f" depth (floor: {100 * support:.2g} % of the pixels"
                  f"{'' if res.metric else f', under {need:g} %: no metric scale'})")
    else:
        depth += " depth"
    return f"{path.name}: {width}x{height}, {depth}, {res.info['seconds']:.2f} s"


def run_estimate(args: argparse.Namespace) -> int:
    from polydiff.apps.mono.images import find_images, image_size

    # 1. check everything cheap before any work (and before importing torch): options,
    # the output folder, the image headers
    options = _options(args, _tasks(args.tasks))
    height = None if args.relative else args.camera_height
    folder = _output_folder(args.output, args.input)
    paths = find_images(args.input)
    sizes = [image_size(p) for p in paths]

    from tqdm.auto import tqdm

    from polydiff.apps.contract import progress_enabled
    from polydiff.apps.mono.estimate import estimate_image
    from polydiff.apps.mono.images import read_image
    from polydiff.apps.mono.model import load_predictor
    from polydiff.apps.mono.results import result_kinds, result_path, write_result
    from polydiff.runtime import make_generator, pick_device

    device = pick_device(args.device)
    # 2. the model, then every output of this process's share checked before the first image
    predictor = load_predictor(args.model, device)
    tasks = tuple(t for t in options.tasks if t in predictor.tasks)
    kinds = result_kinds(tasks, predictor.gives_uncertainty(options))
    batch = PerInput(paths, lambda p: [result_path(folder, p.name, k) for k in kinds],
                     inputs=paths, overwrite=args.overwrite, resume=args.resume)
    size = dict(zip(paths, sizes))
    # 3. one image at a time: read, estimate, write (its files appear when it is done)
    bar = tqdm(batch.todo, desc="images", unit="image",
               disable=len(batch.todo) <= 1 or not progress_enabled())
    for path in bar:
        with batch.outputs(path) as files:
            image = read_image(path)
            result = estimate_image(predictor, image, options, make_generator(args.seed),
                                    height, args.min_floor_fraction)
            write_result(dict(zip(kinds, files)), result, path.name)
        if progress_enabled():
            bar.write(_image_line(path, *size[path], result))
    batch.print_summary()
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from polydiff.apps.mono.images import read_image
    from polydiff.apps.mono.model import load_predictor
    from polydiff.apps.mono.predict import MonoPredictor
    from polydiff.runtime import make_generator, pick_device, require_file

    options = _options(args, ("camera",))
    image = read_image(require_file(args.input, "image"))
    device = pick_device(args.device)
    with Outputs(inputs=[args.input], overwrite=args.overwrite) as out:
        target = out.file(args.output, named=True) if args.output is not None else None
        predictor = load_predictor(args.model, device)
        if not isinstance(predictor, MonoPredictor):
            raise UserError("calibrate needs a polydiff mono model (Marigold has no camera "
                            "head)")
        pred = predictor(image, options, make_generator(args.seed))
        if pred.intrinsics is None:
            raise UserError(f"{args.input}: {'; '.join(pred.notes)}")
        text = json.dumps(pred.intrinsics.to_dict(), indent=2)
        if target is not None:
            target.write_text(text)
        report(text)
    if args.output is not None:
        report(out.summary())
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from polydiff.apps.contract import progress_enabled
    from polydiff.apps.mono.evaluate import evaluate_folder, evaluate_model
    from polydiff.apps.mono.model import load_predictor
    from polydiff.apps.mono.testset import load_samples, sample_names
    from polydiff.runtime import pick_device

    sample_names(args.truth)  # a missing or empty test set is refused before any work
    if args.pred is not None and not args.pred.is_dir():
        raise UserError(f"--pred folder not found: {args.pred}")
    json_path = args.json if args.json is not None else default_json(args.pred, args.truth)
    device = pick_device(args.device) if args.pred is None else None
    with Outputs(inputs=[args.truth, args.pred], overwrite=args.overwrite) as out:
        target = out.file(json_path, named=args.json is not None)
        samples = load_samples(args.truth, args.limit)
        if args.pred is not None:
            result = evaluate_folder(args.pred, samples, args.space)
        else:
            predictor = load_predictor(args.model, device)
            tasks = tuple(t for t in _tasks(args.tasks) if t in predictor.tasks)
            options = _options(args, tasks, progress=False)
            result = evaluate_model(predictor, samples, options, args.seed, args.space,
                                    progress=progress_enabled())
        text = json.dumps(result, indent=2)
        target.write_text(text)
        report(text)
    report(out.summary())
    return 0


def run_scenes(args: argparse.Namespace) -> int:
    from polydiff.apps.contract import progress_enabled
    from polydiff.apps.mono.testset import RENDER_BYTES_PER_PIXEL, declare_scenes, write_scenes
    from polydiff.runtime import check_memory

    folder = _output_folder(args.output)
    check_memory(RENDER_BYTES_PER_PIXEL * args.width * args.height,
                 f"rendering a {args.width}x{args.height} scene")
    with Outputs(overwrite=args.overwrite) as out:
        targets = declare_scenes(out, folder, args.n)
        write_scenes(targets, args.width, args.height, args.seed, progress=progress_enabled())
    report(out.summary())
    return 0


def run_train(args: argparse.Namespace) -> int:
    from polydiff.apps.mono.train import load_train_config, run_training

    cfg = load_train_config(args.config)
    apply_train_args(cfg.train, args)
    result = run_training(cfg)
    out = Path(cfg.train.out_dir)
    report(f"trained {result.step} steps (final loss {result.losses[-1]:.4f}); wrote "
           f"{out / 'polydiff.json'}, {out / 'unet'}, {out / 'scheduler'}")
    return 0


def demo(out_dir: Path, *, device: torch.device, seed: int) -> DemoResult:
    """A procedural room (truth known) and a real photograph (measured depth known), one
    deterministic step each; depth, normals and intrinsics scored against simple guesses."""
    import numpy as np

    from polydiff.apps.mono.estimate import estimate_image, fixed_fov_intrinsics
    from polydiff.apps.mono.model import load_predictor
    from polydiff.apps.mono.photos import middlebury_motorcycle, vertical_prior
    from polydiff.apps.mono.plots import rgb_to_uint8, save_png
    from polydiff.apps.mono.results import result_kinds, write_result
    from polydiff.geometry.metrics import depth_metrics, intrinsics_metrics, normal_metrics
    from polydiff.geometry.scenes import SceneConfig, render_scene
    from polydiff.runtime import make_generator

    scene = render_scene(np.random.default_rng(seed), SceneConfig(height=96, width=128))
    bike_sample = middlebury_motorcycle(192)
    photo, photo_depth = bike_sample.image, bike_sample.depth
    inputs = {"room.png": (scene.image.numpy(), scene.camera_height),
              "motorcycle.png": (photo, None)}
    options = EstimateOptions()
    kinds = result_kinds(options.tasks, False)
    results = {}
    with Outputs() as out:  # the demo's own files in the folder named by `polydiff demo -o`
        plan = {name: (out.file(out_dir / name, named=True),
                       {k: out.file(out_dir / f"{name}.{k}", named=True) for k in kinds})
                for name in inputs}
        predictor = load_predictor(None, device)
        for name, (image, height) in inputs.items():
            picture, targets = plan[name]
            results[name] = estimate_image(predictor, image, options, make_generator(seed),
                                           height)
            save_png(picture, rgb_to_uint8(image))
            write_result(targets, results[name], name)
    room, bike = results["room.png"], results["motorcycle.png"]
    gt_depth = scene.depth.numpy().astype(np.float64)
    h, w = gt_depth.shape
    d = depth_metrics(room.depth, gt_depth)
    n = normal_metrics(room.normals, scene.normals.numpy())
    k = intrinsics_metrics(room.intrinsics, scene.intrinsics)
    p = depth_metrics(bike.depth, photo_depth)
    facing = np.broadcast_to(np.array([0.0, 0.0, -1.0]), scene.normals.shape)
    metrics = {"room depth AbsRel": d.abs_rel, "room normals mean error (deg)": n.mean,
               "room focal error e_f": k.e_f, "photo depth AbsRel": p.abs_rel}
    baseline = {"room depth AbsRel": depth_metrics(vertical_prior(h, w), gt_depth).abs_rel,
                "room normals mean error (deg)": normal_metrics(facing,
                                                                scene.normals.numpy()).mean,
                "room focal error e_f": intrinsics_metrics(fixed_fov_intrinsics(w, h),
                                                           scene.intrinsics).e_f,
                "photo depth AbsRel": depth_metrics(vertical_prior(*photo_depth.shape),
                                                    photo_depth).abs_rel}
    summary = (f"procedural room 128x96: depth AbsRel {d.abs_rel:.3f} (aligned), normals "
               f"{n.mean:.1f} deg, e_f {k.e_f:.3f}; photograph (skimage's motorcycle) "
               f"{photo.shape[1]}x{photo.shape[0]}: depth AbsRel {p.abs_rel:.3f} against its "
               f"measured depth; {out.summary()}")
    images = [out_dir / f"{name}{tail}" for name in inputs
              for tail in ("", ".depth_vis.png", ".normals.png")]
    return DemoResult(summary, list(out.written), images, metrics, baseline)
