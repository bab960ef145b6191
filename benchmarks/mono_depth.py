"""mono benchmark: one-step vs ensemble vs refine on held-out procedural scenes and on a
real photograph with measured depth.

Reports, per mode, depth (AbsRel, delta1 after least-squares scale and shift), normals
(mean/median angle, % < 11.25 deg), intrinsics (e_f, e_b; and f_log_slope / f_log_corr:
how the estimated focal length follows the true one) and images per second with the
bundled checkpoint on CPU (1 thread), on two held-out sets: the rooms of the first bundled
checkpoint ("rooms") and the richer scenes of configs/mono/photo.yaml ("photo_like":
furniture, streets with sky, photo textures, 14-200 mm lenses; the sky is left out of the
depth and normal scores) rendered with square pixels; the estimated intrinsics against a
fixed 60-degree field-of-view guess; the network's normals against normals differentiated
from its (aligned) depth with the estimated intrinsics; metric depth (AbsRel without any
alignment) from the floor seen in the predicted normals and the true camera height.

The real photograph ("real_photo") is Middlebury 2014's motorcycle as scikit-image ships it
(741 x 500, measured depth from the documented calibration: polydiff/apps/mono/photos.py):
affine-aligned AbsRel and delta1 of each mode against the vertical-gradient prior ("depth
grows toward the top of the image"), and the focal length against the 60-degree guess.

Writes benchmarks/results/mono_depth.json and .png (image, depth, normals and error maps of
one scene; the photograph, its depth, the one-step depth and the prior); `mono estimate` end
to end against the network alone (images per second), and the peak memory of a
12-megapixel JPEG. ``python -m benchmarks.mono_depth [--quick] [--model DIR] [--name NAME]
[--no-speed]`` (--model: score another checkpoint; --no-speed: skip the timing parts).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import figure_path, write_json  # noqa: E402
from polydiff.apps.mono.config import EstimateOptions  # noqa: E402
from polydiff.apps.mono.estimate import FALLBACK_FOV_DEG, fixed_fov_intrinsics  # noqa: E402
from polydiff.apps.mono.metric_depth import metric_depth_from_floor  # noqa: E402
from polydiff.apps.mono.model import load_predictor  # noqa: E402
from polydiff.apps.mono.photos import middlebury_motorcycle, vertical_prior  # noqa: E402
from polydiff.apps.mono.testset import Sample  # noqa: E402
from polydiff.apps.mono.train import load_train_config, scene_config  # noqa: E402
from polydiff.geometry.metrics import (  # noqa: E402
    align_depth,
    depth_metrics,
    intrinsics_metrics,
    normal_metrics,
)
from polydiff.geometry.normals import normals_from_depth  # noqa: E402
from polydiff.geometry.scenes import SceneConfig, render_scene  # noqa: E402
from polydiff.plotting import save_figure  # noqa: E402

TEST_SEED = 20261125  # training scenes come from seed 0 at 48x48: these are unseen


def test_set(n: int, width: int = 128, height: int = 96, cfg: SceneConfig | None = None,
             seed: int = TEST_SEED) -> list[Sample]:
    """Held-out scenes (default: the rooms of the first bundled checkpoint); depth at the
    far limit (the sky) is NaN, so it is left out of every score, and views with less than
    a third of their pixels off the sky are drawn again."""
    rng = np.random.default_rng(seed)
    cfg = SceneConfig(height=height, width=width) if cfg is None else cfg
    out = []
    while len(out) < n:
        i = len(out)
        s = render_scene(rng, cfg)
        depth = s.depth.double().numpy()
        depth[depth >= cfg.far * (1 - 1e-6)] = np.nan
        if np.isfinite(depth).mean() < 1 / 3:
            continue
        out.append(Sample(f"{i:04d}.png", s.image.numpy(), depth, s.normals.numpy(),
                          s.intrinsics, s.camera_height))
    return out


def photo_like_set(n: int, width: int = 128, height: int = 96) -> list[Sample]:
    """Held-out scenes of configs/mono/photo.yaml's kind (another seed), square pixels."""
    data = load_train_config(Path(__file__).parents[1] / "configs/mono/photo.yaml").data
    base = scene_config(data, 8)
    cfg = SceneConfig(**{**base.__dict__, "height": height, "width": width,
                         "pixel_aspect": (1.0, 1.0)})
    return test_set(n, width, height, cfg, seed=TEST_SEED + 1)


def run_mode(pipeline, samples: list[Sample], options: EstimateOptions) -> tuple[dict, list]:
    rows, preds, seconds, focals = [], [], 0.0, []
    for s in samples:
        gen = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        p = pipeline(s.image, options, gen)
        seconds += time.perf_counter() - start
        preds.append(p)
        intr = p.intrinsics or fixed_fov_intrinsics(s.intrinsics.width, s.intrinsics.height)
        focals.append((s.intrinsics.fx, intr.fx))
        valid = np.isfinite(s.depth)  # not the sky
        row = {**depth_metrics(p.depth, s.depth)._asdict(),
               **{f"normal_{k}": v for k, v in normal_metrics(p.normals, s.normals, valid)
                  ._asdict().items()},
               **intrinsics_metrics(intr, s.intrinsics)._asdict()}
        # normals differentiated from the predicted depth, aligned to the truth in scale
        # and shift, unprojected with the estimated intrinsics
        aligned = align_depth(p.depth.astype(np.float64), s.depth, valid)
        n_d = normals_from_depth(torch.from_numpy(np.clip(aligned, 1e-3, None)),
                                 intr.matrix()).numpy()
        row.update({f"normal_from_depth_{k}": v
                    for k, v in normal_metrics(n_d, s.normals, valid)._asdict().items()})
        # metric depth: floor plane from the predicted normals + the true camera height
        fit = metric_depth_from_floor(p.depth, p.normals, intr, s.camera_height,
                                      np.random.default_rng(0))
        row["metric_found"] = float(fit is not None)
        row["metric_abs_rel"] = (depth_metrics(fit.depth, s.depth, align=False).abs_rel
                                 if fit is not None else np.nan)
        rows.append(row)
    summary = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
    summary["images_per_second"] = len(samples) / seconds
    summary.update(focal_response(np.array(focals)))
    return summary, preds


def focal_response(focals: np.ndarray) -> dict:
    """How much the estimated focal length follows the true one over a set, from (N, 2)
    [true, estimated] pairs: the slope and correlation of log estimated on log true (slope 0:
    one answer for every image, as a fixed guess; 1: follows it)."""
    t, e = np.log(focals[:, 0]), np.log(focals[:, 1])
    return {"f_log_slope": float(np.polyfit(t, e, 1)[0]),
            "f_log_corr": float(np.corrcoef(t, e)[0, 1]) if e.std() > 0 else 0.0}


MODES = {
    "one-step": EstimateOptions(mode="one-step", members=1),
    "refine": EstimateOptions(mode="refine", steps=10, refine_steps=3, members=1),
    "ensemble": EstimateOptions(mode="ensemble", steps=10, members=5),
}


def fixed_fov_guess(samples: list[Sample]) -> dict:
    guess = [intrinsics_metrics(fixed_fov_intrinsics(s.intrinsics.width, s.intrinsics.height),
                                s.intrinsics) for s in samples]
    return {"e_f": float(np.mean([g.e_f for g in guess])),
            "e_b": float(np.mean([g.e_b for g in guess]))}


def real_photo(pipeline, modes: dict[str, EstimateOptions]) -> tuple[dict, dict]:
    """Affine-aligned depth scores on the motorcycle (in depth and in disparity space) of
    each mode and of the vertical-gradient prior; focal length against the 60° guess."""
    bike = middlebury_motorcycle()
    h, w = bike.depth.shape
    rows, preds = {}, {}
    for name, options in modes.items():
        p = pipeline(bike.image, options, torch.Generator().manual_seed(0))
        preds[name] = p
        rows[name] = {**depth_metrics(p.depth, bike.depth)._asdict(),
                      "abs_rel_disparity_space": depth_metrics(p.depth, bike.depth,
                                                               space="disparity").abs_rel}
        if p.intrinsics is not None:
            rows[name].update(intrinsics_metrics(p.intrinsics, bike.intrinsics)._asdict(),
                              fy_over_fx=p.intrinsics.fy / p.intrinsics.fx,
                              fov_x_deg=p.intrinsics.fov_x_deg)
    prior = vertical_prior(h, w)
    rows["vertical_prior"] = {**depth_metrics(prior, bike.depth)._asdict(),
                              "abs_rel_disparity_space": depth_metrics(
                                  prior, bike.depth, space="disparity").abs_rel}
    rows["fixed_fov_60_guess"] = {**fixed_fov_guess([bike]),
                                  "fov_x_deg": FALLBACK_FOV_DEG}
    rows["truth"] = {"fov_x_deg": bike.intrinsics.fov_x_deg, "size": f"{w}x{h}",
                     "valid_pixels": float(np.isfinite(bike.depth).mean()),
                     "source": "skimage.data.stereo_motorcycle (Middlebury 2014 Motorcycle, "
                               "4x down-sampled), Z = B f / (d + doffs)"}
    preds["vertical_prior"] = prior
    return rows, {"sample": bike, **preds}


def main(quick: bool = False, model: Path | None = None, name: str = "mono_depth",
         speed: bool = True) -> dict:
    torch.set_num_threads(1)
    n = 4 if quick else 24
    sets = {"rooms": test_set(n), "photo_like": photo_like_set(n)}
    pipeline = load_predictor(model, torch.device("cpu"))
    modes = dict(MODES)
    if quick:
        modes["ensemble"] = EstimateOptions(mode="ensemble", steps=4, members=3)
    results, first = {}, {}
    for set_name, samples in sets.items():
        results[set_name] = {}
        for mode, opts in modes.items():
            results[set_name][mode], preds = run_mode(pipeline, samples, opts)
            results[set_name][mode].update(steps=opts.steps if mode != "one-step" else 1,
                                           members=opts.n_members)
            if set_name == "rooms":
                first[mode] = preds[0]
        results[set_name]["fixed_fov_60_guess"] = fixed_fov_guess(samples)
    results["real_photo"], photo = real_photo(pipeline, {k: modes[k]
                                                         for k in ("one-step", "ensemble")})
    results["speedup_one_step_vs_ensemble"] = (
        results["rooms"]["one-step"]["images_per_second"]
        / results["rooms"]["ensemble"]["images_per_second"])
    results["setup"] = {"n_images": n, "size": "128x96", "device": "cpu, 1 thread",
                        "model": str(model) if model else "bundled polydiff/weights/mono",
                        "quick": quick}
    if speed:
        results["end_to_end"] = end_to_end(pipeline, 8, 24 if quick else 48, model)
        results["large_image"] = large_image()
    write_json(name, results)
    _figure(sets["rooms"][0], first, photo, figure_path(name))
    return results


def end_to_end(predictor, n_small: int, n_large: int, model: Path | None = None) -> dict:
    """Images per second of `mono estimate` on a folder (in-process: reading, the network,
    metric scale, writing every file) from the difference of two folder sizes, against the
    network alone (the predictor's call) in the same run."""
    import tempfile

    from polydiff.apps.mono.images import read_image
    from polydiff.apps.mono.plots import rgb_to_uint8, save_png
    from polydiff.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for s in test_set(n_large):
            save_png(folder / s.name, rgb_to_uint8(s.image))
        names = sorted(folder.iterdir())
        small = Path(tmp) / "small"
        small.mkdir()
        for p in names[:n_small]:
            (small / p.name).write_bytes(p.read_bytes())
        seconds = {}
        for name, src in (("small", small), ("large", folder)):
            start = time.perf_counter()
            assert cli(["mono", "estimate", str(src), "-o", f"{tmp}/out_{name}",
                        "--device", "cpu", *(["--model", str(model)] if model else [])]) == 0
            seconds[name] = time.perf_counter() - start
        options = EstimateOptions()
        images = [read_image(p) for p in names]
        start = time.perf_counter()
        for image in images:
            predictor(image, options, torch.Generator().manual_seed(0))
        network = (time.perf_counter() - start) / len(images)
    per_image = (seconds["large"] - seconds["small"]) / (n_large - n_small)
    return {"seconds_per_image_end_to_end": per_image, "seconds_per_image_network": network,
            "images_per_second_end_to_end": 1 / per_image,
            "images_per_second_network": 1 / network, "ratio": per_image / network,
            "images": [n_small, n_large], "size": "128x96"}


def large_image(width: int = 4000, height: int = 3000) -> dict:
    """Peak memory and wall time of `polydiff mono estimate` on a generated 12-megapixel
    JPEG, in a fresh interpreter (as a user runs it). The peak is the child's own VmHWM: a
    child's ru_maxrss would include this (torch-laden) parent's memory at the fork."""
    import subprocess
    import sys
    import tempfile

    from PIL import Image

    from polydiff.geometry.scenes import SceneConfig

    with tempfile.TemporaryDirectory() as tmp:
        s = render_scene(np.random.default_rng(3), SceneConfig(height=300, width=400,
                                                               pitch_deg=(-35.0, -25.0)))
        photo = Path(tmp) / "photo.jpg"
        Image.fromarray((s.image.numpy() * 255).round().astype(np.uint8)).resize(
            (width, height), Image.BICUBIC).save(photo, quality=90)
        code = ("import time\nt = time.perf_counter()\nfrom polydiff.cli import main\n"
                f"assert main(['mono', 'estimate', {str(photo)!r}, '-o', {tmp + '/out'!r}, "
                "'--device', 'cpu']) == 0\n"
                "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
                "print(int(hwm.split()[1]) * 1024, time.perf_counter() - t)")
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        seconds = time.perf_counter() - start
        peak, in_process = out.stdout.split()[-2:]
    return {"size": f"{width}x{height}", "peak_rss_gib": int(peak) / 2**30,
            "seconds_with_start_up": seconds, "seconds_in_process": float(in_process),
            "target_gib": 2.0}


def _figure(s: Sample, preds: dict, photo: dict, path: Path) -> None:
    cols = ["input / truth"] + list(preds) + ["photo"]
    fig, ax = plt.subplots(4, len(cols), figsize=(3.2 * len(cols), 9.5))
    ax[0, 0].imshow(s.image)
    ax[1, 0].imshow(s.depth, cmap="Spectral")
    ax[2, 0].imshow(np.clip((s.normals * [1, -1, -1] + 1) / 2, 0, 1))
    ax[3, 0].axis("off")
    for j, name in enumerate(preds, start=1):
        p = preds[name]
        aligned = align_depth(p.depth.astype(np.float64), s.depth, np.ones_like(s.depth, bool))
        ax[0, j].imshow(np.abs(aligned - s.depth) / s.depth, cmap="magma", vmin=0, vmax=0.3)
        ax[0, j].set_title(f"{name}: |depth err| / depth")
        ax[1, j].imshow(aligned, cmap="Spectral")
        ax[1, j].set_title("depth (aligned)")
        ax[2, j].imshow(np.clip((p.normals * [1, -1, -1] + 1) / 2, 0, 1))
        ax[2, j].set_title("normals")
        cos = np.clip((p.normals * s.normals).sum(-1), -1, 1)
        ax[3, j].imshow(np.degrees(np.arccos(cos)), cmap="magma", vmin=0, vmax=45)
        ax[3, j].set_title("normal error (0-45 deg)")
    bike = photo["sample"]
    valid = np.isfinite(bike.depth)
    lo, hi = np.nanmin(bike.depth), np.nanmax(bike.depth)
    ax[0, -1].imshow(bike.image)
    ax[0, -1].set_title("photo (Middlebury)")
    ax[1, -1].imshow(bike.depth, cmap="Spectral", vmin=lo, vmax=hi)
    ax[1, -1].set_title("measured depth")
    for row, (label, depth) in ((2, ("one-step", photo["one-step"].depth)),
                                (3, ("vertical prior", photo["vertical_prior"]))):
        aligned = align_depth(np.asarray(depth, np.float64), bike.depth, valid)
        ax[row, -1].imshow(np.where(valid, aligned, np.nan), cmap="Spectral", vmin=lo, vmax=hi)
        ax[row, -1].set_title(f"{label} (aligned)")
    for a in ax.flat:
        a.set_xticks([])
        a.set_yticks([])
    save_figure(fig, path, dpi=80)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--name", default="mono_depth")
    parser.add_argument("--no-speed", action="store_true")
    a = parser.parse_args()
    print(json.dumps(main(a.quick, a.model, a.name, not a.no_speed), indent=2))
