"""``polydiff mri reconstruct | phantoms | train | evaluate`` and the app's demo.

Argument handling only: the work is in reconstruct.py, phantoms.py, train.py and evaluate.py,
imported inside the commands, so that ``polydiff mri --help`` answers without torch.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from polydiff.apps.contract import (
    DemoResult,
    Outputs,
    PerInput,
    add_eval_args,
    add_number,
    add_output,
    add_resume,
    add_runtime_args,
    add_steps,
    add_train_args,
    apply_train_args,
    default_json,
    progress_enabled,
    report,
    write_json,
)
from polydiff.apps.mri.config import FITS, KERNEL_NAMES, POLICIES, STARTS, ReconConfig
from polydiff.runtime import UserError

if TYPE_CHECKING:
    import torch

DEVNULL = Path(os.devnull)  # what Outputs hands to ranks other than 0 under torchrun


def register(subparsers, name: str, help_text: str) -> None:
    """Add ``polydiff mri`` and its sub-commands."""
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    sub = p.add_subparsers(dest="mri_command", metavar="COMMAND", required=True)

    q = sub.add_parser("reconstruct", help="reconstruct every slice of a fastMRI k-space file",
                       description="Active Diffusion Subsampling: particles choose k-space "
                       "columns during the reverse diffusion; writes an HDF5 reconstruction "
                       "and a PNG beside it. The bundled prior is 64x64 (grid64); --model "
                       "grid128 picks the bundled 128x128 prior (the ADS paper's knee grid, "
                       "trained on a GPU), --model DIR a checkpoint folder.")
    q.add_argument("input", type=Path, help="fastMRI-layout HDF5 with 'kspace', or a folder "
                                            "of them")
    add_output(q, "output HDF5 (its PNG picture is written beside it, .png); for a folder of "
                  "volumes, a folder: OUTPUT/<name>.h5 and .png each")
    add_resume(q)
    add_number(q, "--acceleration", lo=1, hi=64, lo_open=True, default=4.0,
               help="k-space columns / acquired columns (fastMRI: 4 or 8)")
    add_number(q, "--center-fraction", lo=0, hi=1, lo_open=True, hi_open=True,
               help="fully sampled centre fraction with --start block (default: fastMRI's "
                    "0.08 at 4x, 0.04 at 8x)")
    q.add_argument("--policy", choices=POLICIES, default="ads",
                   help="ads: acquire columns during sampling; random/equispaced: a fixed "
                        "mask with the same budget (default: ads)")
    q.add_argument("--start", choices=STARTS, default="block",
                   help="the lines every acquisition starts from. block (default): fastMRI's "
                        "fully sampled centre block (--center-fraction), then the rest "
                        "chosen by --policy; it is what scanners acquire for calibration, "
                        "multi-coil coil maps are estimated from it, it makes results "
                        "comparable with fastMRI masks, and ADS scored higher from it in "
                        "benchmarks/mri_ads (64x64, 32 slices: SSIM 0.861 vs 0.820 at 4x, "
                        "0.707 vs 0.638 at 8x). line: the ADS paper's setting, one centre "
                        "line and every other line chosen (single-coil only)")
    q.add_argument("--fit", choices=FITS, default=None,
                   help="how k-space larger than the model's grid is brought to it (the rule "
                        "is printed and stored in the output's attributes). fov: centre-crop "
                        "the image to the square of its smaller side (fastMRI's 640x368 -> "
                        "368x368), then keep the central k-space block of the grid's size: "
                        "the whole field of view at the model's (lower) resolution, as the "
                        "prior was trained. crop: the central grid-sized pixels of the image "
                        "at full resolution (a smaller field of view). Default: the rule of "
                        "the model's training data (fov for the bundled prior)")
    q.add_argument("--kernel", choices=KERNEL_NAMES, default="ads",
                   help="ADS acquisition score (default: ads)")
    add_number(q, "--members", "--particles", kind=int, lo=2, hi=256, default=16,
               dest="members", help="particles B sampled together")
    add_steps(q, 50)
    add_number(q, "--guidance", lo=0, hi=1000, default=ReconConfig.guidance_weight,
               help="DPS weight on ||y - A x0||")
    add_runtime_args(q)
    q.set_defaults(func=cmd_reconstruct)

    q = sub.add_parser("evaluate", help="NMSE / PSNR / SSIM (fastMRI definitions)")
    add_eval_args(q, truth="fastMRI file with kspace or reconstruction_esc/_rss",
                  pred="output of reconstruct")
    q.set_defaults(func=cmd_evaluate)

    q = sub.add_parser("phantoms", help="random ellipse phantoms as a fastMRI-layout HDF5 file")
    add_output(q, "output HDF5")
    add_number(q, "--n", kind=int, lo=1, default=16, help="number of slices")
    add_number(q, "--size", kind=int, lo=8, hi=4096, default=128, help="image size in pixels")
    add_number(q, "--coils", kind=int, lo=1, default=1,
               help="1: single-coil; more: multi-coil with synthetic sensitivities")
    add_runtime_args(q, model=False, device=False)
    q.set_defaults(func=cmd_phantoms)

    q = sub.add_parser("train", help="train a prior (torchrun-ready)")
    add_train_args(q, "mri")
    q.set_defaults(func=cmd_train)


def picture_path(output: Path) -> Path:
    """The PNG written beside an HDF5 output (``recon.h5`` -> ``recon.png``)."""
    return output.with_suffix(".png")


HDF5_SUFFIXES = (".h5", ".hdf5")


def _volumes(folder: Path) -> list[Path]:
    """The HDF5 files directly inside ``folder`` (sorted by name), or a UserError."""
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in HDF5_SUFFIXES)
    if not found:
        raise UserError(f"no HDF5 files (.h5, .hdf5) in folder {folder}")
    return found


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from polydiff.apps.mri.model import load_model
    from polydiff.apps.mri.reconstruct import reconstruct_file
    from polydiff.runtime import pick_device

    cfg = ReconConfig(acceleration=args.acceleration, policy=args.policy,
                      particles=args.members, steps=args.steps, kernel=args.kernel,
                      guidance_weight=args.guidance, center_fraction=args.center_fraction,
                      start=args.start, fit=args.fit)
    device = pick_device(args.device)
    if args.input.is_dir():
        return _reconstruct_folder(args, cfg, device)
    if args.resume:
        raise UserError("--resume goes with a folder of volumes (a single -o is replaced)")
    with Outputs(inputs=[args.input], overwrite=args.overwrite) as out:
        h5 = out.file(args.output, named=True)
        png = out.file(picture_path(args.output))
        model = load_model(args.model, device)
        report(reconstruct_file(args.input, h5, png, cfg, model, seed=args.seed,
                                progress=progress_enabled(), write=h5 != DEVNULL,
                                announce=report))
    report(out.summary())
    return 0


def _reconstruct_folder(args: argparse.Namespace, cfg: ReconConfig, device) -> int:
    """Every volume of a folder into ``-o`` (a folder): ``OUT/<name>.h5`` and ``.png`` each,
    split between torchrun processes, skipped with --resume when both exist."""
    from polydiff.apps.mri.model import load_model
    from polydiff.apps.mri.reconstruct import reconstruct_file

    if args.output.exists() and not args.output.is_dir():
        raise UserError(f"-o {args.output} is an existing file; with a folder of volumes -o "
                        "names a folder")
    volumes = _volumes(args.input)
    work = PerInput(volumes, lambda p: [args.output / p.name, picture_path(args.output / p.name)],
                    inputs=volumes, overwrite=args.overwrite, resume=args.resume)
    model = load_model(args.model, device) if work.todo else None
    for path in work.todo:
        with work.outputs(path) as (h5, png):
            line = reconstruct_file(path, h5, png, cfg, model, seed=args.seed,
                                    progress=progress_enabled(),
                                    announce=lambda note, p=path: print(f"{p.name}: {note}",
                                                                        flush=True))
        print(f"{path.name}: {line}", flush=True)
    work.print_summary()
    return 0


def cmd_phantoms(args: argparse.Namespace) -> int:
    from polydiff.apps.mri.phantoms import check_phantom_cost, write_phantoms

    check_phantom_cost(args.n, args.size, args.coils, args.output.parent)
    with Outputs(overwrite=args.overwrite) as out:
        tmp = out.file(args.output, named=True)
        if tmp != DEVNULL:
            report(write_phantoms(tmp, args.n, args.size, args.coils, args.seed,
                                  progress=progress_enabled()))
    report(out.summary())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from polydiff.apps.mri.train import load_train_config, run_training

    cfg = load_train_config(args.config)
    apply_train_args(cfg.train, args)
    folder = run_training(cfg)
    report("wrote " + ", ".join(str(folder / n) for n in ("unet", "scheduler", "polydiff.json")))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from polydiff.apps.mri.evaluate import evaluate_files

    json_path = args.json or default_json(args.pred, args.truth)
    with Outputs(inputs=[args.truth, args.pred], overwrite=args.overwrite) as out:
        out.check(json_path, named=args.json is not None)  # before the work
        metrics = evaluate_files(args.truth, args.pred)
        report("  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        write_json(json_path, metrics, out, named=args.json is not None)
    report(out.summary())
    return 0


def demo(out_dir: Path, *, device: torch.device, seed: int) -> DemoResult:
    """One phantom slice, reconstructed at 8x by ADS with the bundled prior (< 1 min on CPU),
    scored against zero-filling with the same mask.

    ``out_dir`` belongs to the demo: its files are replaced on every run.
    """
    from polydiff.apps.mri.evaluate import evaluate_files
    from polydiff.apps.mri.model import load_model
    from polydiff.apps.mri.phantoms import write_phantoms
    from polydiff.apps.mri.reconstruct import reconstruct_file

    model = load_model(None, device)
    truth, recon = out_dir / "phantoms.h5", out_dir / "recon.h5"
    with Outputs() as out:
        write_phantoms(out.file(truth, named=True), 1, model.size, 1, seed, progress=False)
    cfg = ReconConfig(acceleration=8, policy="ads", particles=8, steps=25)
    with Outputs(inputs=[truth]) as out2:
        reconstruct_file(truth, out2.file(recon, named=True),
                         out2.file(picture_path(recon), named=True), cfg, model, seed=seed,
                         progress=progress_enabled())
    m = evaluate_files(truth, recon, include_zero_filled=True)
    files = [*out.written, *out2.written]
    summary = (f"ADS 8x on a phantom slice ({model.size}x{model.size}): SSIM {m['SSIM']:.3f} "
               f"(zero-filled {m['SSIM_zero_filled']:.3f}), PSNR {m['PSNR']:.2f} dB; "
               f"wrote {', '.join(map(str, files))}")
    keys = ("SSIM", "PSNR")
    return DemoResult(summary, files, [picture_path(recon)], {k: m[k] for k in keys},
                      {k: m[f"{k}_zero_filled"] for k in keys}, higher_is_better=keys)
