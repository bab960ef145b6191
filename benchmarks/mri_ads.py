"""mri benchmark: ADS against random and equispaced masks (all with the same DPS sampler),
zero-filling and BART pics, at 4x and 8x, in both acquisition settings, with confidence
intervals from per-slice paired differences.

Test set (32 slices by default): held-out phantoms (a seed the prior never saw),
scikit-image's Shepp-Logan phantom and a real EPI brain slice shipped in nibabel's wheel, on
the model's grid. Settings:
``block`` (fastMRI's fully sampled centre block fixed, the rest chosen) and ``line`` (the ADS
paper's: one centre line fixed, every other line chosen); where both give the same budget
(e.g. 8x at 32 columns: the block is one line) they are one run, reported under both keys.
Every policy of a setting gets the same line budget; the diffusion policies share the
sampler, particles, steps, guidance and (per slice) the generator seed, so their per-slice
differences are paired. BART's λ is tuned per (acceleration, setting) on separate
validation phantoms (random masks of that setting), then used on the ADS, random and
equispaced masks.

Statistics per slice (SSIM and PSNR, data range = the slice's maximum): mean, standard
deviation and 95 % t-interval of each method; for ADS minus each baseline, the mean paired
difference, its standard deviation over slices, the 95 % t-interval and a 95 % bootstrap
interval (10 000 resamples, seeded). Two goals are checked: the interval lies above 0, and
the mean difference exceeds the slice-to-slice spread (the standard deviation of the paired
differences). fastMRI's volume metrics (the set as one volume) are kept too.

Writes benchmarks/results/mri_ads.json, mri_ads.png (reconstructions) and mri_ads_ci.png
(the intervals); ``POLYDIFF_BENCH_RESULTS`` elsewhere.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.mri_ads [--quick] [--model DIR]
        [--slices N] [--particles B] [--steps S]

Defaults (32 slices, 5 particles, 8 DDIM steps) keep the 64x64 run under an hour on the
shared 2-core machine: 12 diffusion runs of 32 slices at ~6 s per slice, one thread.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch
from scipy import stats

from benchmarks.common import bench_device, figure_path, write_json
from polydiff.apps.mri.config import ReconConfig
from polydiff.apps.mri.model import MriModel, load_model
from polydiff.apps.mri.plots import order_image, save_figure
from polydiff.apps.mri.reconstruct import reconstruct_slice
from polydiff.medical import bart as bart_mod
from polydiff.medical.kspace import fft2c, ifft2c, zero_filled
from polydiff.medical.masks import STARTS, budget, fixed_mask
from polydiff.medical.metrics import evaluate_volume, psnr, ssim_slice
from polydiff.medical.phantoms import phantom_volume, real_slices, shepp_logan
from polydiff.plotting import pyplot
from polydiff.plotting import save_figure as write_png
from polydiff.runtime import make_generator

TEST_SEED, VALID_SEED, BOOT_SEED = 12345, 777, 2024
BART_LAMBDAS = (0.001, 0.003, 0.01, 0.03)
BART_WIDEN = 4  # more λ tried when the best lies on the grid's edge
BART_VALID = 8  # validation phantoms per (acceleration, setting)
POLICIES = {"ads": "ADS", "random": "random+DPS", "equispaced": "equispaced+DPS"}
MASK_NAMES = {"ads": "ADS", "random": "random", "equispaced": "equispaced"}
BASELINES = ("random+DPS", "equispaced+DPS", "BART pics (ADS masks)")


def test_set(n: int, size: int) -> tuple[torch.Tensor, list[str]]:
    """``n`` slices (n >= 3): Shepp-Logan, any real slice found offline, and held-out phantoms
    for the rest: k-space (n, size, size) complex64 and names."""
    extra = {"shepp_logan": shepp_logan(size), **real_slices(size)}
    k = [fft2c(torch.from_numpy(img).to(torch.complex64))[None] for img in extra.values()]
    n_ph = max(n - len(extra), 1)
    k.insert(0, torch.from_numpy(phantom_volume(n_ph, size, TEST_SEED)))
    return torch.cat(k), [f"phantom_{i}" for i in range(n_ph)] + list(extra)


def slice_metrics(truth: np.ndarray, rec: list[np.ndarray]) -> dict[str, list[float]]:
    """Per-slice SSIM and PSNR (data range: the slice's maximum)."""
    return {"SSIM": [ssim_slice(t, r, float(t.max())) for t, r in zip(truth, rec)],
            "PSNR": [psnr(t, r) for t, r in zip(truth, rec)]}


def mean_interval(x: list[float]) -> dict:
    """Mean, standard deviation over slices and the 95 % t-interval of the mean."""
    x = np.asarray(x, dtype=np.float64)
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return {"mean": x.mean(), "sd": x.std(ddof=1), "ci95": [x.mean() - half, x.mean() + half]}


def paired(a: list[float], b: list[float], rng: np.random.Generator) -> dict:
    """a − b per slice: mean, sd, 95 % t- and bootstrap intervals, and the two goals."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    out = mean_interval(d.tolist())
    boot = d[rng.integers(0, len(d), size=(10_000, len(d)))].mean(1)
    out["ci95_bootstrap"] = np.percentile(boot, [2.5, 97.5]).tolist()
    out["interval_above_zero"] = bool(out["ci95"][0] > 0 and out["ci95_bootstrap"][0] > 0)
    out["mean_above_spread"] = bool(out["mean"] > out["sd"])
    out["wins"] = int((d > 0).sum())
    return out


def ladder_neighbour(lam: float, down: bool) -> float:
    """The next value below (``down``) or above ``lam`` on the 1-3-10 ladder of λ."""
    e = math.floor(math.log10(lam) + 1e-9)
    m = round(lam / 10**e)          # 1 or 3
    if down:
        m, e = (3, e - 1) if m == 1 else (1, e)
    else:
        m, e = (3, e) if m == 1 else (1, e + 1)
    return float(f"{m}e{e}")


def tune_bart(size: int, acc: int, start: str) -> tuple[float, dict]:
    """λ of BART pics with the best mean SSIM on validation phantoms (random masks); the
    grid is widened along the 1-3-10 ladder while the best λ lies on its edge (at most
    :data:`BART_WIDEN` more values), so the peer is never held at a bound of the grid."""
    k = phantom_volume(BART_VALID, size, VALID_SEED)
    truth = np.abs(ifft2c(torch.from_numpy(k)).numpy())
    b = budget(size, acc, None, start)
    masks = [fixed_mask("random", b, 50_000 + i).mask for i in range(BART_VALID)]

    def mean_ssim(lam: float) -> float:
        return float(np.mean(slice_metrics(truth, [
            bart_mod.pics(ki, m, lam) for ki, m in zip(k, masks)])["SSIM"]))

    score = {lam: mean_ssim(lam) for lam in BART_LAMBDAS}
    for _ in range(BART_WIDEN):
        best, grid = max(score, key=score.get), sorted(score)
        if best not in (grid[0], grid[-1]):
            break
        new = ladder_neighbour(best, down=best == grid[0])
        score[new] = mean_ssim(new)
    return max(score, key=score.get), dict(sorted(score.items()))


def diffusion(model: MriModel, kspace: torch.Tensor, cfg: ReconConfig) -> tuple[list, float]:
    """Reconstruct every slice (slice i with generator seed i and mask seed 1000 + i);
    returns the SliceResults and seconds per slice."""
    device = next(model.net.parameters()).device
    t0 = time.perf_counter()
    out = [reconstruct_slice(model, k, cfg, make_generator(i, device), mask_seed=1000 + i)
           for i, k in enumerate(kspace)]
    return out, (time.perf_counter() - t0) / len(kspace)


def run_setting(model: MriModel, kspace: torch.Tensor, truth: np.ndarray, acc: int,
                start: str, particles: int, steps: int, lam: float | None) -> dict:
    """Every method at one (acceleration, setting): reconstructions and their metrics."""
    recs, secs, masks, extras = {}, {}, {}, {}
    for policy, name in POLICIES.items():
        cfg = ReconConfig(acceleration=acc, policy=policy, particles=particles, steps=steps,
                          start=start)
        out, secs[name] = diffusion(model, kspace, cfg)
        recs[name] = [o.reconstruction for o in out]
        masks[policy] = [torch.from_numpy(o.mask) for o in out]
        if policy == "ads":
            extras = {"order": [o.order for o in out], "std": [o.std for o in out]}
        print(f"  {acc}x {start} {name}: {secs[name]:.1f} s/slice", flush=True)
    for policy, ms in masks.items():
        tag = f"({MASK_NAMES[policy]} masks)"
        t0 = time.perf_counter()
        recs[f"zero-filled {tag}"] = [zero_filled(k, m).numpy() for k, m in zip(kspace, ms)]
        secs[f"zero-filled {tag}"] = (time.perf_counter() - t0) / len(kspace)
        if lam is not None:
            t0 = time.perf_counter()
            recs[f"BART pics {tag}"] = [bart_mod.pics(k.numpy(), m.numpy(), lam)
                                        for k, m in zip(kspace, ms)]
            secs[f"BART pics {tag}"] = (time.perf_counter() - t0) / len(kspace)
    return {"recs": recs, "secs": secs, "masks": masks, **extras}


def summarise(run: dict, truth: np.ndarray, names: list[str], rng) -> dict:
    """The JSON block of one setting: per-method statistics and ADS's paired differences."""
    per = {name: slice_metrics(truth, rec) for name, rec in run["recs"].items()}
    methods = {name: {**evaluate_volume(truth, np.stack(rec)),
                      "per_slice_SSIM": dict(zip(names, per[name]["SSIM"])),
                      "SSIM_slices": mean_interval(per[name]["SSIM"]),
                      "PSNR_slices": mean_interval(per[name]["PSNR"]),
                      "seconds_per_slice": run["secs"][name]}
               for name, rec in run["recs"].items()}
    diffs = {f"ADS - {base}": {metric: paired(per["ADS"][metric], per[base][metric], rng)
                                for metric in ("SSIM", "PSNR")}
             for base in BASELINES if base in per}
    return {"methods": methods, "ads_minus": diffs,
            "ads_acquisition_order": {n: o.tolist() for n, o in zip(names, run["order"])}}


def figure_rows(run: dict, truth: np.ndarray, names: list[str], acc: int, start: str,
                size: int) -> list:
    """Two rows (the first phantom and the last slice, a real one when found)."""
    rows = []
    for i in sorted({0, len(names) - 1}):
        row = [(f"truth {names[i]}\n{acc}x, start: {start}", truth[i], "image")]
        row += [(f"{name}\nSSIM {ssim_slice(truth[i], run['recs'][name][i], truth[i].max()):.3f}",
                 run["recs"][name][i], "image")
                for name in ("ADS", "random+DPS", "equispaced+DPS", "BART pics (ADS masks)")
                if name in run["recs"]]
        row += [("ADS particle std", run["std"][i], "std"),
                ("ADS acquisition order", order_image(run["order"][i], size), "order"),
                ("random mask", order_image(np.flatnonzero(run["masks"]["random"][i].numpy()),
                                            size), "order")]
        rows.append(row)
    return rows


def interval_figure(results: dict, path) -> None:
    """ADS minus each baseline, mean SSIM difference with its 95 % t-interval and ± the
    slice-to-slice standard deviation, one group per (acceleration, setting)."""
    fig, ax = pyplot().subplots(figsize=(8, 4.5))
    colours = dict(zip(BASELINES, ("tab:blue", "tab:orange", "tab:green")))
    labels, ticks, y = [], [], 0.0
    for key, block in results["settings"].items():
        for base in BASELINES:
            d = block["ads_minus"].get(f"ADS - {base}", {}).get("SSIM")
            if d is None:
                continue
            ax.plot([d["mean"] - d["sd"], d["mean"] + d["sd"]], [y, y], color=colours[base],
                    alpha=0.3, lw=6)
            ax.plot(d["ci95"], [y, y], color=colours[base], lw=2)
            ax.plot(d["mean"], y, "o", color=colours[base])
            labels.append(f"{key}: ADS − {base}")
            ticks.append(y)
            y += 1
        y += 0.5
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("per-slice SSIM difference (dot: mean; line: 95 % t-interval; band: ± sd)")
    write_png(fig, path, title=f"mri ADS paired differences ({results['size']}x"
              f"{results['size']}, {len(results['slices'])} slices, {results['particles']} "
              f"particles, {results['steps']} steps)", dpi=110, title_size=9)


def main(quick: bool = False, argv: list[str] | None = None) -> dict:
    """Run the comparison (``quick``: as --quick, for benchmarks.run); returns (and writes)
    the results dict."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="4 slices, 4 particles, 8 steps")
    p.add_argument("--model", default=None, help="checkpoint folder (default: bundled)")
    p.add_argument("--slices", type=int, default=32)
    p.add_argument("--particles", type=int, default=5)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--name", default="mri_ads", help="results file stem")
    args = p.parse_args(argv or [])
    if args.quick or quick:
        args.slices, args.particles, args.steps = 4, 4, 8
    torch.set_num_threads(1)
    model = load_model(args.model, bench_device())
    size = model.size
    kspace, names = test_set(args.slices, size)
    truth = ifft2c(kspace).abs().numpy()
    have_bart = bart_mod.bart_available()
    t_start = time.perf_counter()
    results: dict = {
        "size": size, "slices": names, "particles": args.particles, "steps": args.steps,
        "guidance_weight": ReconConfig.guidance_weight, "model": str(model.folder),
        "bart": "available" if have_bart else "not on PATH (skipped)",
        "goals": "ADS above each baseline: 95 % interval of the mean paired difference above "
                 "0 (interval_above_zero), and the mean difference above the slice-to-slice "
                 "standard deviation of the differences (mean_above_spread)",
        "settings": {}}
    rng = np.random.default_rng(BOOT_SEED)
    figure, done = [], {}
    for acc in (4, 8):
        for start in STARTS:
            b = budget(size, acc, None, start)
            key = f"{acc}x {start}"
            if (acc, b.total, b.center) in done:  # the same acquisition as another setting
                results["settings"][key] = {**results["settings"][done[acc, b.total, b.center]],
                                            "same_as": done[acc, b.total, b.center]}
                continue
            done[acc, b.total, b.center] = key
            lam, lam_scores = tune_bart(size, acc, start) if have_bart else (None, {})
            run = run_setting(model, kspace, truth, acc, start, args.particles, args.steps, lam)
            results["settings"][key] = {"lines": b.total, "fixed_centre_lines": b.center,
                                        "bart_lambda": lam, "bart_validation_SSIM": lam_scores,
                                        **summarise(run, truth, names, rng)}
            figure += figure_rows(run, truth, names, acc, start, size)
            write_json(args.name, {**results, "complete": False})  # what is done so far
    results["wall_seconds"] = time.perf_counter() - t_start
    write_json(args.name, {**results, "complete": True})
    save_figure(figure_path(args.name), figure, title=f"mri ADS benchmark ({size}x{size}, "
                f"{args.particles} particles, {args.steps} steps; rows: 4x block, 4x line, "
                "8x ..., a phantom and a real slice each)")
    interval_figure(results, figure_path(f"{args.name}_ci"))
    return results


def print_summary(res: dict) -> None:
    for key, block in res["settings"].items():
        print(f"{key} ({block['lines']} lines, {block['fixed_centre_lines']} fixed; BART λ "
              f"{block['bart_lambda']}){' = ' + block['same_as'] if 'same_as' in block else ''}")
        for name, m in block["methods"].items():
            s = m["SSIM_slices"]
            print(f"  {name:30s} SSIM {s['mean']:.4f} ± {s['sd']:.4f}  "
                  f"PSNR {m['PSNR_slices']['mean']:6.2f}  {m['seconds_per_slice']:.2f} s/slice")
        for name, d in block["ads_minus"].items():
            s = d["SSIM"]
            print(f"  {name:30s} ΔSSIM {s['mean']:+.4f} (95% [{s['ci95'][0]:+.4f}, "
                  f"{s['ci95'][1]:+.4f}], sd {s['sd']:.4f}, wins {s['wins']}/"
                  f"{len(res['slices'])})  ΔPSNR {d['PSNR']['mean']:+.2f}")


if __name__ == "__main__":
    print_summary(main(argv=sys.argv[1:]))
