"""mri benchmark: ADS against fixed masks with DPS, zero-filling, ℓ1-wavelet CS and BART pics.

Held-out phantoms (a seed the bundled prior never saw) and scikit-image's Shepp-Logan
phantom, at 4x and 8x with equal line budgets. Metrics as fastMRI defines them (the held-out
set treated as one volume), seconds per slice on this machine. BART's λ is tuned on a separate
validation split. Writes benchmarks/results/mri_ads.json and .png (``POLYDIFF_BENCH_RESULTS``
elsewhere; the diffusion runs on ``--device`` of benchmarks.run).

    .venv/bin/python -m benchmarks.mri_ads [--quick]
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from benchmarks.common import bench_device, figure_path, write_json
from polydiff.apps.mri.config import ReconConfig
from polydiff.apps.mri.model import MriModel, load_model
from polydiff.apps.mri.plots import order_image, save_figure
from polydiff.apps.mri.reconstruct import reconstruct_slice
from polydiff.medical import bart as bart_mod
from polydiff.medical.cs import CSConfig, fista_l1_wavelet
from polydiff.medical.kspace import fft2c, ifft2c, zero_filled
from polydiff.medical.masks import budget, fixed_mask
from polydiff.medical.metrics import evaluate_volume, ssim
from polydiff.medical.phantoms import phantom_volume, real_slices, shepp_logan
from polydiff.runtime import make_generator

TEST_SEED, VALID_SEED = 12345, 777
BART_LAMBDAS = (0.001, 0.003, 0.01, 0.03)


def _test_set(n: int, size: int) -> tuple[torch.Tensor, list[str]]:
    """Held-out phantoms, Shepp-Logan, and any real slice found offline: (N, size, size)."""
    k = [torch.from_numpy(phantom_volume(n, size, TEST_SEED))]
    names = [f"phantom_{i}" for i in range(n)]
    extra = {"shepp_logan": shepp_logan(size), **real_slices(size)}
    for name, img in extra.items():
        k.append(fft2c(torch.from_numpy(img).to(torch.complex64))[None])
        names.append(name)
    return torch.cat(k), names


def _tune_bart(size: int, acc: int, n: int) -> float:
    """λ of BART pics with the best mean SSIM on the validation phantoms (random masks)."""
    k = phantom_volume(n, size, VALID_SEED)
    truth = np.abs(ifft2c(torch.from_numpy(k)).numpy())
    masks = [fixed_mask("random", budget(size, acc), 1000 + i).mask for i in range(n)]
    score = {lam: ssim(truth, np.stack([bart_mod.pics(ki, m, lam) for ki, m in zip(k, masks)]))
             for lam in BART_LAMBDAS}
    return max(score, key=score.get)


def _timed(fn) -> tuple[list[np.ndarray], float]:
    """fn() and the seconds it took."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


class Runs:
    """Reconstructions (per method, per slice), seconds per slice, and ADS extras."""

    def __init__(self) -> None:
        self.recs: dict[str, list[np.ndarray]] = {}
        self.secs: dict[str, float] = {}
        self.masks: dict[str, list[torch.Tensor]] = {}
        self.order: list[np.ndarray] = []
        self.std: list[np.ndarray] = []

    def add(self, name: str, fn, n: int) -> None:
        self.recs[name], t = _timed(fn)
        self.secs[name] = t / n


def _diffusion_policies(runs: Runs, model: MriModel, kspace: torch.Tensor, acc: int,
                        particles: int, steps: int, weight: float) -> None:
    """ADS, random+DPS and equispaced+DPS through the same sampling loop."""
    for policy in ("ads", "random", "equispaced"):
        cfg = ReconConfig(acceleration=acc, policy=policy, particles=particles, steps=steps,
                          guidance_weight=weight)
        gen = make_generator(0, next(model.net.parameters()).device)
        outs, t = _timed(lambda cfg=cfg, gen=gen: [
            reconstruct_slice(model, k, cfg, gen, mask_seed=1000 + i)
            for i, k in enumerate(kspace)])
        name = "ADS" if policy == "ads" else f"{policy}+DPS"
        runs.recs[name], runs.secs[name] = [o.reconstruction for o in outs], t / len(kspace)
        runs.masks[name] = [torch.from_numpy(o.mask) for o in outs]
        if policy == "ads":
            runs.order, runs.std = [o.order for o in outs], [o.std for o in outs]


def _classical(runs: Runs, kspace: torch.Tensor, lam: float | None) -> None:
    """Zero-filled, ℓ1-wavelet CS and BART pics, on the random masks and on ADS's masks."""
    n = len(kspace)
    for tag, masks in (("", runs.masks["random+DPS"]), (" (ADS mask)", runs.masks["ADS"])):
        runs.add(f"zero-filled{tag}", lambda masks=masks: [
            zero_filled(k, m).numpy() for k, m in zip(kspace, masks)], n)
        runs.add(f"l1-wavelet CS{tag}", lambda masks=masks: [
            fista_l1_wavelet(k, m, CSConfig()).abs().numpy() for k, m in zip(kspace, masks)], n)
        if lam is not None:
            runs.add(f"BART pics{tag}", lambda masks=masks: [
                bart_mod.pics(k.numpy(), m.numpy(), lam) for k, m in zip(kspace, masks)], n)


def _table(runs: Runs, truth: np.ndarray, names: list[str]) -> dict:
    """fastMRI metrics of every method over the whole set, SSIM per slice, seconds."""
    table = {}
    for name, rec in runs.recs.items():
        per_slice = [evaluate_volume(truth[i:i + 1], rec[i][None])["SSIM"]
                     for i in range(len(names))]
        table[name] = {**evaluate_volume(truth, np.stack(rec)),
                       "SSIM_per_slice": dict(zip(names, per_slice)),
                       "seconds_per_slice": runs.secs[name]}
    return table


def _figure_row(runs: Runs, truth: np.ndarray, i: int, size: int, acc: int) -> list:
    row = [(f"truth ({acc}x)", truth[i], "image")]
    row += [(f"{name}\nSSIM {ssim(truth[i:i + 1], runs.recs[name][i][None]):.3f}",
             runs.recs[name][i], "image")
            for name in ("ADS", "random+DPS", "equispaced+DPS", "zero-filled", "l1-wavelet CS",
                         "BART pics") if name in runs.recs]
    random_order = np.flatnonzero(runs.masks["random+DPS"][i].numpy())
    return row + [("ADS particle std", runs.std[i], "std"),
                  ("ADS acquisition order", order_image(runs.order[i], size), "order"),
                  ("random mask", order_image(random_order, size), "order")]


def main(quick: bool = False) -> dict:
    """Run the comparison; returns (and writes) the results dict."""
    torch.set_num_threads(1)
    model = load_model(None, bench_device())
    size = model.size
    n_phantoms, particles, steps = (2, 8, 20) if quick else (4, 16, 30)
    weight = ReconConfig.guidance_weight
    kspace, names = _test_set(n_phantoms, size)
    truth = ifft2c(kspace).abs().numpy()
    have_bart = bart_mod.bart_available()
    results: dict = {
        "size": size, "slices": names, "particles": particles, "steps": steps,
        "guidance_weight": weight, "model": str(model.folder),
        "real_slices_found": [s for s in names if s != "shepp_logan"
                              and not s.startswith("phantom")],
        "bart": "available" if have_bart else "not on PATH (skipped)", "accelerations": {}}
    figure = []
    for acc in (4, 8):
        runs = Runs()
        _diffusion_policies(runs, model, kspace, acc, particles, steps, weight)
        lam = _tune_bart(size, acc, 2 if quick else 4) if have_bart else None
        _classical(runs, kspace, lam)
        b = budget(size, acc)
        results["accelerations"][f"{acc}x"] = {
            "lines": b.total, "centre_lines": b.center, "bart_lambda": lam,
            "methods": _table(runs, truth, names),
            "ads_acquisition_order": {n: o.tolist() for n, o in zip(names, runs.order)}}
        figure += [_figure_row(runs, truth, i, size, acc) for i in sorted({0, len(names) - 1})]
    write_json("mri_ads", results)
    save_figure(figure_path("mri_ads"), figure, title=f"mri ADS benchmark ({size}x{size}, "
                f"{particles} particles, {steps} steps; rows: 4x then 8x, a phantom and "
                f"{names[-1]})")
    return results


if __name__ == "__main__":
    res = main(quick="--quick" in sys.argv)
    for acc, block in res["accelerations"].items():
        print(f"{acc} ({block['lines']} lines, BART λ {block['bart_lambda']})")
        for name, m in block["methods"].items():
            print(f"  {name:26s} SSIM {m['SSIM']:.4f}  PSNR {m['PSNR']:6.2f}  "
                  f"NMSE {m['NMSE']:.4f}  {m['seconds_per_slice']:.2f} s/slice")
