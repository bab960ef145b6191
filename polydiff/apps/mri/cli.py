"""``polydiff mri reconstruct | phantoms | train | evaluate`` and the app's demo."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from polydiff.apps.contract import add_runtime_args
from polydiff.apps.mri.config import KERNEL_NAMES, POLICIES, ReconConfig
from polydiff.runtime import UserError, pick_device


def register(subparsers, name: str, help_text: str) -> None:
    """Add ``polydiff mri`` and its sub-commands."""
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    sub = p.add_subparsers(dest="mri_command", metavar="COMMAND", required=True)

    q = sub.add_parser("reconstruct", help="reconstruct every slice of a fastMRI k-space file")
    q.add_argument("input", type=Path, help="fastMRI-layout HDF5 with 'kspace'")
    q.add_argument("--acceleration", type=float, default=4, help="4 or 8 (default: 4)")
    q.add_argument("--center-fraction", type=float, default=None,
                   help="fully sampled centre fraction (default: fastMRI's 0.08 / 0.04)")
    q.add_argument("--policy", choices=POLICIES, default="ads", help="default: ads")
    q.add_argument("--kernel", choices=KERNEL_NAMES, default="ads",
                   help="ADS acquisition score (default: ads)")
    q.add_argument("--particles", type=int, default=16, help="B (default: 16)")
    q.add_argument("--steps", type=int, default=50, help="reverse steps (default: 50)")
    q.add_argument("--guidance", type=float, default=ReconConfig.guidance_weight,
                   help=f"DPS weight (default: {ReconConfig.guidance_weight})")
    q.add_argument("-o", "--output", type=Path, required=True, help="output .h5 (+ .png)")
    add_runtime_args(q)
    q.set_defaults(func=cmd_reconstruct)

    q = sub.add_parser("evaluate", help="NMSE / PSNR / SSIM (fastMRI definitions)")
    q.add_argument("--truth", type=Path, required=True,
                   help="fastMRI file with kspace or reconstruction_esc/_rss")
    q.add_argument("--pred", type=Path, required=True, help="output of reconstruct")
    q.add_argument("--json", type=Path, default=None, help="also write the metrics as JSON")
    q.set_defaults(func=cmd_evaluate)

    q = sub.add_parser("phantoms", help="random ellipse phantoms as a fastMRI-layout HDF5 file")
    q.add_argument("--n", type=int, default=16, help="number of slices (default: 16)")
    q.add_argument("--size", type=int, default=128, help="image size in pixels (default: 128)")
    q.add_argument("--coils", type=int, default=1,
                   help="1: single-coil; more: multi-coil with synthetic sensitivities")
    q.add_argument("-o", "--output", type=Path, required=True, help="output .h5")
    add_runtime_args(q, model=False)
    q.set_defaults(func=cmd_phantoms)

    q = sub.add_parser("train", help="train a prior (torchrun-ready)")
    q.add_argument("--config", type=Path, required=True, help="configs/mri/<name>.yaml")
    q.add_argument("--out", type=Path, default=None, help="checkpoint folder (default: config)")
    q.add_argument("--steps", type=int, default=None, help="override train.steps")
    q.set_defaults(func=cmd_train)


def cmd_phantoms(args: argparse.Namespace) -> int:
    from polydiff.medical.fastmri_io import KspaceVolume, write_kspace
    from polydiff.medical.kspace import fft2c, ifft2c, rss
    from polydiff.medical.phantoms import coil_maps, phantom_volume

    if args.n < 1 or args.size < 8 or args.coils < 1:
        raise UserError("--n and --coils must be at least 1 and --size at least 8")
    kspace = torch.from_numpy(phantom_volume(args.n, args.size, args.seed))
    if args.coils == 1:
        truth, key = ifft2c(kspace).abs(), "reconstruction_esc"
    else:  # coil k-space of the sensitivity-weighted images; truth = RSS
        images = torch.from_numpy(coil_maps(args.coils, args.size))[None] * ifft2c(kspace)[:, None]
        kspace, truth, key = fft2c(images), rss(images, 1), "reconstruction_rss"
    write_kspace(args.output, KspaceVolume(kspace.numpy(), truth.numpy().astype(np.float32),
                                           {"seed": args.seed}), recon_key=key)
    print(f"wrote {args.n} phantom slices of {args.size}x{args.size} "
          f"({args.coils} coil{'s' if args.coils > 1 else ''}) to {args.output}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from polydiff.apps.mri.train import run_training

    folder = run_training(args.config, out_dir=args.out, steps=args.steps)
    print(f"checkpoint written to {folder}")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from polydiff.apps.mri.volume import reconstruct_file

    if args.particles < 2 or args.steps < 1:
        raise UserError("--particles must be at least 2 and --steps at least 1")
    cfg = ReconConfig(acceleration=args.acceleration, policy=args.policy,
                      particles=args.particles, steps=args.steps, kernel=args.kernel,
                      guidance_weight=args.guidance, center_fraction=args.center_fraction)
    summary = reconstruct_file(args.input, args.output, cfg, model=args.model,
                               device=pick_device(args.device), seed=args.seed)
    print(summary)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from polydiff.apps.mri.volume import evaluate_files
    from polydiff.runtime import atomic_output

    metrics = evaluate_files(args.truth, args.pred)
    print("  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if args.json:
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps(metrics, indent=2))
    return 0


def demo(out_dir: Path, *, device: torch.device, seed: int) -> str:
    """Two phantom slices, reconstructed at 4x by ADS with the bundled prior (< 1 min on CPU)."""
    from polydiff.apps.mri.volume import evaluate_files, reconstruct_file
    from polydiff.weights import bundled_path

    size = int(__import__("json").loads((bundled_path("mri") / "polydiff.json").read_text())
               ["size"])
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = out_dir / "phantoms.h5"
    cmd_phantoms(argparse.Namespace(n=2, size=size, seed=seed, coils=1, output=truth))
    cfg = ReconConfig(acceleration=4, policy="ads", particles=8, steps=25)
    reconstruct_file(truth, out_dir / "recon.h5", cfg, model=None, device=device, seed=seed)
    m = evaluate_files(truth, out_dir / "recon.h5", include_zero_filled=True)
    return (f"ADS 4x on 2 phantom slices ({size}x{size}): SSIM {m['SSIM']:.3f} "
            f"(zero-filled {m['SSIM_zero_filled']:.3f}), PSNR {m['PSNR']:.2f} dB; "
            f"{out_dir / 'recon.h5'}, {out_dir / 'recon.png'}")
