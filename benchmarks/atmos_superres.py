"""atmos: polydiff super-resolution vs bicubic and optimal interpolation on held-out fields.

Two cases, each on held-out synthetic fields its prior never saw (another seed):

* the near-Gaussian weather case (bundled prior: t2m, u10, v10, msl);
* the non-Gaussian turbulence case (polydiff/weights/atmos/turbulence: vorticity with
  filaments and a positive, intermittent precipitation rate), rows ``turbulence/...``,
  where a learned prior should beat OI (the goal: by >= 10 % in RMSE and CRPS at x8 and
  from stations alone).

At coarse-graining factors 4 and 8 (conservative, area-weighted):
  * coarse only: polydiff (guided ensemble) vs bicubic (cubic splines) vs OI;
  * observations only (radiosonde-like stations): polydiff vs OI;
  * coarse + observations (multimodal): polydiff vs OI.
OI is Gaussian-process regression with the field's own multivariate stationary covariance,
estimated from other synthetic fields; its RMSE is that of its analysis (the exact posterior
mean), and its posterior samples form an ensemble for CRPS and spread.
Scores: latitude-weighted RMSE of the point estimate (OI's analysis; polydiff's ensemble
mean, and its estimate for infinitely many members) and fair CRPS (per variable and averaged
in units of each variable's climatological std), spread/skill, and radial power spectra.
The weather case uses 6 held-out times, the turbulence case 24 (each from its own flow), and
the turbulence gains over OI come with paired 95 % bootstrap intervals over those times.

Also (issue 9) the throughput: time steps per second of ``superres`` end to end against
the network alone, in the same run (``--throughput`` runs only that).

Run: ``python -m benchmarks.atmos_superres [--quick | --throughput]`` (writes
benchmarks/results/).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import bench_device, figure_path, write_json
from polydiff.apps.atmos.conditional import normalised_observations
from polydiff.apps.atmos.evaluate import ensemble_metrics
from polydiff.apps.atmos.generate import coarsen_dataset
from polydiff.apps.atmos.model import load_model
from polydiff.apps.atmos.plots import extent_of
from polydiff.apps.atmos.superres import (
    SuperresOptions,
    coarse_operator,
    point_operator,
    resolved_guidance,
    superres,
)
from polydiff.apps.atmos.train import fields_array
from polydiff.physics.atmos_fields import FieldConfig, generate_fields
from polydiff.physics.atmos_metrics import (
    crps_ensemble,
    lat_weighted_rmse,
    mean_mse_members_inf,
    weighted_mean,
)
from polydiff.physics.era5 import VARIABLES
from polydiff.physics.interpolation import (
    StationaryGaussian,
    bicubic_upsample,
    conservative_coarsen,
    optimal_interpolation,
)
from polydiff.physics.observations import bilinear, interpolate, simulate_observations
from polydiff.plotting import save_figure
from polydiff.runtime import make_generator
from polydiff.weights import bundled_path

TURBULENCE = bundled_path("atmos") / "turbulence"  # the non-Gaussian case's checkpoint
# its conditional network (coarse field and stations as inputs)
TURBULENCE_CONDITIONAL = bundled_path("atmos") / "turbulence_conditional"


def _scores(members: np.ndarray, truth: np.ndarray, lat, variables, std,
            point: np.ndarray | None = None) -> dict:
    """Per-variable metrics and their std-normalised averages; members (M, T, C, H, W).

    RMSE scores ``point`` (T, C, H, W), the point estimate: OI's analysis (its exact
    posterior mean; the mean of a few of its samples would be ~sqrt(1 + 1/M) worse), or by
    default the ensemble mean, as a user of ``superres`` gets it. For an ensemble,
    ``rmse_norm_members_inf`` estimates what the mean of infinitely many members would score:
    :func:`~polydiff.physics.atmos_metrics.mean_mse_members_inf`.

    ``per_time`` holds each variable's squared error of the point estimate and CRPS per time
    step in units of its std (V, T): the pieces :func:`gain_interval` resamples.
    """
    own_mean = point is None
    point = members.mean(0) if own_mean else point
    per_var = {v: ensemble_metrics(members[:, :, c], truth[:, c], lat, point=point[:, c])
               for c, v in enumerate(variables)}
    scale = np.asarray(std, dtype=np.float64)[:, None]
    mse = np.stack([lat_weighted_rmse(point[:, c], truth[:, c], lat) ** 2
                    for c in range(len(variables))]) / scale**2
    crps = np.stack([weighted_mean(crps_ensemble(members[:, :, c], truth[:, c]), lat)
                     for c in range(len(variables))]) / scale
    out = {
        "rmse_norm": float(np.mean([per_var[v]["rmse"] / s for v, s in zip(variables, std)])),
        "crps_norm": float(np.mean([per_var[v]["crps"] / s for v, s in zip(variables, std)])),
        "spread_skill": _mean_or_none([per_var[v]["spread_skill"] for v in variables]),
        "point_estimate": "ensemble mean" if own_mean else "analysis mean",
    }
    if own_mean and len(members) > 1:
        inf = np.stack([mean_mse_members_inf(members[:, :, c], truth[:, c], lat)
                        for c in range(len(variables))]) / scale**2
        out["rmse_norm_members_inf"] = float(np.sqrt(np.maximum(inf.mean(1), 0.0)).mean())
    return {**out, "variables": per_var,
            "per_time": {"mse_norm": mse.tolist(), "crps_norm": crps.tolist()}}


def _resampled(per_time: dict, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RMSE/std and CRPS/std (averaged over variables) over each row of time steps
    ``times`` (draws, T): two arrays (draws,)."""
    mse, crps = np.asarray(per_time["mse_norm"]), np.asarray(per_time["crps_norm"])
    return np.sqrt(mse[:, times].mean(-1)).mean(0), crps[:, times].mean((0, -1))


def gain_interval(ours: dict, base: dict, *, draws: int = 4000, seed: int = 0) -> dict:
    """95 % bootstrap intervals over time steps (paired) of 1 − ours/base in RMSE and CRPS."""
    n = len(ours["per_time"]["mse_norm"][0])
    times = np.random.default_rng(seed).integers(0, n, (draws, n))
    (r1, c1), (r0, c0) = _resampled(ours["per_time"], times), _resampled(base["per_time"], times)
    gains = np.stack([1 - r1 / r0, 1 - c1 / c0], axis=1)
    lo, hi = np.percentile(gains, [2.5, 97.5], axis=0)
    return {"rmse_norm_ci95": [float(lo[0]), float(hi[0])],
            "crps_norm_ci95": [float(lo[1]), float(hi[1])], "time_steps": n}


def _mean_or_none(values: list) -> float | None:
    """The mean, or None when a value is undefined (a one-member 'ensemble')."""
    return None if any(v is None for v in values) else float(np.mean(values))


def throughput(device: torch.device, *, times: int = 4, members: int = 4,
               steps: int = 20) -> dict:
    """Time steps per second of ``superres`` end to end against the network alone, same run.

    End to end: operators, guided sampling, decoding and the finiteness check for ``times``
    coarse time steps (x4). Network alone: the same number of guided network calls (forward
    and the backward through x_t that DPS needs) on the same batch of ``members``.
    """
    model = load_model(None, device)
    cfg = FieldConfig(spinup_steps=300)
    truth = generate_fields(times, cfg, make_generator(9), trajectories=1)
    coarse = coarsen_dataset(truth[list(model.normaliser.variables)], 4)
    opts = SuperresOptions(factor=4, members=members, steps=steps)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def run_superres(n: int) -> float:
        sync()
        start = time.perf_counter()
        superres(model, opts, coarse=coarse.isel(time=slice(0, n)), obs=None, grid=None,
                 generator=make_generator(0, device), device=device, progress=False)
        sync()
        return time.perf_counter() - start

    def run_network(n: int) -> float:
        x = torch.randn(members, *model.normaliser.shape, device=device, requires_grad=True)
        t = torch.tensor(500, device=device)
        sync()
        start = time.perf_counter()
        for _ in range(n * steps):
            torch.autograd.grad(model.net(x, t).sample.sum(), x)
        sync()
        return time.perf_counter() - start

    run_superres(1), run_network(1)  # warm-up
    end_to_end, network = run_superres(times), run_network(times)
    return {"device": str(device), "times": times, "members": members, "steps": steps,
            "time_steps_per_s": times / end_to_end,
            "network_only_time_steps_per_s": times / network,
            "seconds_per_extra_time_step": end_to_end / times,
            "network_seconds_per_time_step": network / times,
            "end_to_end_over_network": end_to_end / network}


def _oi(model, prior, truth_ds, coarse, obs, factor, members, seed
        ) -> tuple[np.ndarray, np.ndarray]:
    """OI's analysis (its posterior mean, (T, C, H, W)) and its posterior samples
    (M, T, C, H, W), in physical units."""
    norm = model.normaliser
    lat, lon = truth_ds.latitude.values, truth_ds.longitude.values
    means, out = [], []
    for k, t in enumerate(truth_ds.time.values):
        ops, ys = [], []
        if coarse is not None:
            field = fields_array(coarse.isel(time=[k]), norm.variables)[0]
            op, y = coarse_operator(model, field, factor, 0.02, lat)
            ops.append(op)
            ys.append(y)
        if obs is not None:
            op, y = point_operator(model, normalised_observations(norm, obs[obs.time == t],
                                                                  lat, lon))
            ops.append(op)
            ys.append(y)
        mean, samples = optimal_interpolation(prior, ops, ys, members=members,
                                              generator=make_generator(seed + k))
        means.append(norm.decode(mean)[0])
        out.append(norm.decode(samples))
    return torch.stack(means).numpy(), torch.stack(out, dim=1).numpy()


def _data_residual(mean: np.ndarray, truth_ds, variables, std, coarse, factor, obs,
                   coarse_sigma: float = 0.02) -> dict:
    """RMS misfit of a point estimate (T, C, H, W) against the data it was given, in units
    of the data's stated noise: the conservative means (noise ``coarse_sigma`` · std) and
    the stations (their ``sigma``); ~1 or below is consistent."""
    lat, lon = truth_ds.latitude.values, truth_ds.longitude.values
    out = {}
    if coarse is not None:
        data = fields_array(coarse, variables)
        pooled = conservative_coarsen(mean, lat, factor)
        out["coarse"] = {v: float(np.sqrt(np.mean((pooled[:, c] - data[:, c]) ** 2))
                                  / (coarse_sigma * std[c])) for c, v in enumerate(variables)}
    if obs is not None:
        stations = {}
        for c, v in enumerate(variables):
            res = []
            for k, t in enumerate(truth_ds.time.values):
                rows = obs[(obs.variable == v) & (obs.time == t)]
                b = bilinear(rows.latitude.values, rows.longitude.values, lat, lon)
                res.append((rows.value.values - interpolate(mean[k, c], b)) / rows.sigma.values)
            stations[v] = float(np.sqrt(np.mean(np.concatenate(res) ** 2)))
        out["stations"] = stations
    return out


def held_out_fields(model, n_times: int, n_obs: int, seed: int = 1234):
    """Fields of ``model``'s kind from ``n_times`` unseen flows (seed 1234: the test set;
    training used 0, calibration and tuning 4242), their array (T, C, H, W) and ``n_obs``
    stations reporting every variable."""
    variables = list(model.normaliser.variables)
    truth_ds = generate_fields(n_times, model.config.fields, make_generator(seed),
                               trajectories=n_times)
    obs = simulate_observations(truth_ds[variables], n_obs, np.random.default_rng(5))
    return truth_ds, fields_array(truth_ds, variables), obs


def polydiff_members(model, opts: SuperresOptions, truth_ds, *, coarse, obs) -> np.ndarray:
    """``superres`` on the CPU (seed 0) from a coarse dataset and/or stations on the grid of
    ``truth_ds``: the members (M, T, C, H, W), physical, float64."""
    grid = None if coarse is not None else (truth_ds.time.values, truth_ds.latitude.values,
                                            truth_ds.longitude.values)
    ds = superres(model, opts, coarse=coarse, obs=obs, grid=grid, generator=make_generator(0),
                  device=torch.device("cpu"), progress=False)
    return np.stack([ds[v].values for v in model.normaliser.variables],
                    axis=2).astype(np.float64)


def _bicubic(model, coarse, factor, lat) -> np.ndarray:
    """Bicubic interpolation of the coarse anomalies, (1, T, C, H, W) physical."""
    norm = model.normaliser
    c = fields_array(coarse, norm.variables)
    mean_c = conservative_coarsen(norm.mean, lat, factor)
    anomaly = bicubic_upsample(c - mean_c, factor)
    return (anomaly + norm.mean)[None]


def _case(models: dict, results: dict, prefix: str, rows: list[tuple[str, int | None, bool]],
          *, n_times: int, members: int, steps: int, n_cov: int, n_obs: int) -> dict:
    """Score each of ``models`` (label -> checkpoint: ``polydiff`` first, e.g. the guided
    prior and a conditional network), OI (and bicubic for each factor) on held-out fields of
    their kind; rows are (name, factor or None, with stations). Returns the pictures' data:
    ``name`` -> (first model's members, OI's analysis (1, T, C, H, W)), ``<label> <name>``
    -> another's members."""
    model = next(iter(models.values()))
    norm = model.normaliser
    variables = list(norm.variables)
    truth_ds, truth, obs = held_out_fields(model, n_times, n_obs)
    # the OI covariance, from other fields (seed 77)
    cov_ds = generate_fields(n_cov, model.config.fields, make_generator(77),
                             trajectories=max(n_cov // 24, 1))
    prior = StationaryGaussian.fit(norm.encode(torch.as_tensor(fields_array(cov_ds, variables))))
    lat = truth_ds.latitude.values
    pictures: dict = {"truth": truth, "truth_ds": truth_ds}
    runs = results["runs"]

    for name, factor, with_obs in rows:
        coarse = coarsen_dataset(truth_ds[variables], factor) if factor else None
        if factor and f"{prefix}bicubic/x{factor}" not in runs:
            bic = _bicubic(model, coarse, factor, lat)
            runs[f"{prefix}bicubic/x{factor}"] = _scores(bic, truth, lat, variables, norm.std)
            pictures[f"bicubic x{factor}"] = bic
        observations = obs if with_obs else None
        ensembles = {}
        for label, each in models.items():
            start = time.perf_counter()
            opts = SuperresOptions(factor=factor, members=members, steps=steps)
            ens = ensembles[label] = polydiff_members(each, opts, truth_ds, coarse=coarse,
                                                      obs=observations)
            runs[f"{prefix}{label}/{name}"] = {
                **_scores(ens, truth, lat, variables, norm.std),
                "seconds_per_time_step": (time.perf_counter() - start) / n_times,
                "settings": {"guidance": resolved_guidance(each, opts, coarse is not None),
                             "eta": opts.eta, "constrain": opts.constrain,
                             "steps": opts.steps,
                             "conditional": each.config.conditioning is not None},
                "data_residual": _data_residual(ens.mean(0), truth_ds, variables, norm.std,
                                                coarse, factor, observations)}
            if label != "polydiff":
                pictures[f"{label} {name}"] = ens
        ens = ensembles["polydiff"]
        oi_mean, oi = _oi(model, prior, truth_ds, coarse, observations, factor, members,
                          seed=11)
        runs[f"{prefix}oi/{name}"] = {
            **_scores(oi, truth, lat, variables, norm.std, point=oi_mean),
            "data_residual": _data_residual(oi_mean, truth_ds, variables, norm.std, coarse,
                                            factor, observations)}
        positive = [c for c, v in enumerate(variables) if VARIABLES[v].nonnegative]
        if positive:  # a stronger baseline: OI members clipped at 0 where values cannot be < 0
            clipped, clipped_mean = oi.copy(), oi_mean.copy()
            clipped[:, :, positive] = np.maximum(clipped[:, :, positive], 0.0)
            clipped_mean[:, positive] = np.maximum(clipped_mean[:, positive], 0.0)
            runs[f"{prefix}oi_clipped/{name}"] = _scores(clipped, truth, lat, variables,
                                                         norm.std, point=clipped_mean)
        pictures[name] = (ens, oi_mean[None])  # OI's panels show its analysis
    return pictures


def _gain(runs: dict, prefix: str, names: list[str], variables: list[str],
          label: str = "polydiff") -> dict:
    """The relative improvement of the rows of ``label`` over OI (1 − ours/OI) in RMSE and
    CRPS, and over OI with its rain clipped at 0 (``<row> vs oi_clipped``)."""
    out = {}
    pairs = [(name, f"{prefix}oi/{name}") for name in names]
    pairs += [(f"{name} vs oi_clipped", f"{prefix}oi_clipped/{name}") for name in names
              if f"{prefix}oi_clipped/{name}" in runs]
    for name, base in pairs:
        ours, oi = runs[f"{prefix}{label}/{name.split()[0]}"], runs[base]
        out[name] = {"rmse_norm": 1 - ours["rmse_norm"] / oi["rmse_norm"],
                     "crps_norm": 1 - ours["crps_norm"] / oi["crps_norm"],
                     **gain_interval(ours, oi),
                     **({"rmse_norm_members_inf": 1 - ours["rmse_norm_members_inf"]
                         / oi["rmse_norm"]} if "rmse_norm_members_inf" in ours else {}),
                     **{f"{key} {v}": 1 - ours["variables"][v][key] / oi["variables"][v][key]
                        for v in variables for key in ("rmse", "crps")}}
    return out


def main(quick: bool = False, turbulence: Path | None = TURBULENCE, gaussian: bool = True,
         with_throughput: bool = True, name: str = "atmos_superres",
         conditional: Path | None = TURBULENCE_CONDITIONAL) -> dict:
    """Run the comparison; write ``<name>.json`` and ``.png`` (the weather case) and
    ``<name>_turbulence.png`` under results/. ``conditional``: a conditional network of the
    turbulence case scored beside the guided prior (rows ``turbulence/conditional/...``;
    skipped when absent)."""
    torch.set_num_threads(1)
    n_times, members, steps, n_cov = (2, 4, 25, 48) if quick else (6, 8, 50, 192)
    turbulence_times = 2 if quick else 24  # the goal's case: enough flows for an interval
    n_obs = 20
    sizes = {"n_times": n_times, "members": members, "steps": steps, "n_cov": n_cov,
             "n_obs": n_obs}
    results: dict = {"quick": quick, "times": n_times, "members": members, "steps": steps,
                     "stations": n_obs, "runs": {}}
    pictures = {}
    if gaussian:  # the near-Gaussian weather case of the bundled prior
        model = load_model(None, torch.device("cpu"))
        results.update(variables=list(model.normaliser.variables),
                       std=model.normaliser.std.tolist(),
                       spread_calibration=model.config.spread_calibration)
        rows = [("x4", 4, False), ("x4+obs", 4, True), ("x8", 8, False), ("x8+obs", 8, True),
                ("obs", None, True)]
        pictures = _case({"polydiff": model}, results, "", rows, **sizes)
        runs = results["runs"]
        results["multimodal_gain"] = {
            f"x{k}": {"rmse_norm coarse only": runs[f"polydiff/x{k}"]["rmse_norm"],
                      "rmse_norm obs only": runs["polydiff/obs"]["rmse_norm"],
                      "rmse_norm coarse+obs": runs[f"polydiff/x{k}+obs"]["rmse_norm"]}
            for k in (4, 8)}
    if turbulence is not None and (Path(turbulence) / "polydiff.json").is_file():
        model = load_model(turbulence, torch.device("cpu"))
        models = {"polydiff": model}
        if conditional is not None and (Path(conditional) / "polydiff.json").is_file():
            models["conditional"] = load_model(conditional, torch.device("cpu"))
            if models["conditional"].config.fields != model.config.fields:
                raise ValueError(f"{conditional} was trained on other fields than {turbulence}")
        variables = list(model.normaliser.variables)
        prefix = "turbulence/"
        names = ["x8", "obs", "x4"]
        turb = _case(models, results, prefix, [("x8", 8, False), ("obs", None, True),
                                              ("x4", 4, False)],
                     **{**sizes, "n_times": turbulence_times})
        results["turbulence"] = {
            "model": str(turbulence), "times": turbulence_times, "variables": variables,
            "std": model.normaliser.std.tolist(), "fields": vars(model.config.fields),
            "spread_calibration": model.config.spread_calibration,
            "gain_over_oi": _gain(results["runs"], prefix, names, variables),
            "goal": "polydiff beats OI by >= 10 % in RMSE and CRPS at x8 and from stations"}
        if "conditional" in models:
            results["turbulence"].update(
                conditional_model=str(conditional),
                conditional_spread_calibration=models["conditional"].config.spread_calibration,
                gain_over_oi_conditional=_gain(results["runs"], prefix, names, variables,
                                               label="conditional"))
        _plot_turbulence(figure_path(f"{name}_turbulence"), turb, results, variables)
    if with_throughput:
        results["throughput"] = throughput(bench_device())
    write_json(name, results)
    if pictures:
        _plot(figure_path(name), pictures["truth"], pictures["truth_ds"], pictures,
              results, results["variables"])
    return results


def _plot_turbulence(path: Path, pictures: dict, results: dict, variables: list[str]) -> None:
    """Turbulence case: truth, coarse x8, OI mean, polydiff mean and one member (x8 and
    stations only), and the scores against OI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth, truth_ds = pictures["truth"], pictures["truth_ds"]
    ext = extent_of(truth_ds.latitude.values, truth_ds.longitude.values)
    lat = truth_ds.latitude.values
    k, t = 8, 0
    coarse = conservative_coarsen(truth[t], lat, k)
    (ens8, oi8), (ens_o, oi_o) = pictures["x8"], pictures["obs"]
    panels = {"truth": truth[t], "coarse x8": np.kron(coarse, np.ones((1, k, k))),
              "OI mean x8": oi8[:, t].mean(0), "polydiff mean x8": ens8[:, t].mean(0),
              "polydiff member x8": ens8[0, t], "OI mean stations": oi_o[:, t].mean(0),
              "polydiff mean stations": ens_o[:, t].mean(0)}
    if "conditional x8" in pictures:
        panels.update({"conditional mean x8": pictures["conditional x8"][:, t].mean(0),
                       "conditional member x8": pictures["conditional x8"][0, t],
                       "conditional mean stations": pictures["conditional obs"][:, t].mean(0)})
    fig = plt.figure(figsize=(2.3 * len(panels), 2.1 * (len(variables) + 1)))
    grid = fig.add_gridspec(len(variables) + 1, len(panels))  # one grid: tight_layout applies
    axes = np.array([[fig.add_subplot(grid[r, c]) for c in range(len(panels))]
                     for r in range(len(variables))])
    for r, var in enumerate(variables):
        lo, hi = float(truth[t, r].min()), float(truth[t, r].max())
        for c, (name, field) in enumerate(panels.items()):
            im = axes[r, c].imshow(field[r], origin="lower", extent=ext, vmin=lo, vmax=hi,
                                   cmap="RdBu_r" if var == "vo" else "Blues")
            fig.colorbar(im, ax=axes[r, c], shrink=0.7, format="%.1g")  # no offset text
            axes[r, c].set_title(f"{name}: {var}", fontsize=7)
            axes[r, c].tick_params(labelsize=5)
    runs = results["runs"]
    ax = fig.add_subplot(grid[-1, :len(panels) // 2])
    names = ["x4", "x8", "obs"]
    methods = ["oi", "polydiff"] + (["conditional"] if "conditional x8" in pictures else [])
    bars = [(m, metric) for metric in ("rmse_norm", "crps_norm") for m in methods]
    width = 0.8 / len(bars)
    for j, (method, metric) in enumerate(bars):
        values = [runs[f"turbulence/{method}/{n}"][metric] for n in names]
        ax.bar(np.arange(3) + (j - (len(bars) - 1) / 2) * width, values, width,
               label=f"{method} {metric}")
    ax.set_xticks(np.arange(3), names)
    ax.set_title("turbulence: RMSE and CRPS / std (lower is better)", fontsize=7)
    ax.legend(fontsize=5)
    save_figure(fig, path, dpi=90)


def _plot(path: Path, truth, truth_ds, pictures, results, variables) -> None:
    """Truth, coarse x8, bicubic, polydiff mean and spread, OI mean; spectra of t2m."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ext = extent_of(truth_ds.latitude.values, truth_ds.longitude.values)
    ens, oi = pictures["x8+obs"]
    k, (h, w) = 8, truth.shape[-2:]
    coarse = truth[0].reshape(len(variables), h // k, k, w // k, k).mean((2, 4))
    panels = {"truth": truth[0], "coarse x8": np.kron(coarse, np.ones((1, k, k))),
              "bicubic x8": pictures["bicubic x8"][0, 0],
              "polydiff mean x8+obs": ens[:, 0].mean(0), "OI mean x8+obs": oi[:, 0].mean(0),
              "polydiff spread": ens[:, 0].std(0)}
    fig, axes = plt.subplots(len(variables), len(panels) + 1,
                             figsize=(2.4 * (len(panels) + 1), 2.1 * len(variables)))
    for r, var in enumerate(variables):
        lo, hi = float(truth[0, r].min()), float(truth[0, r].max())
        for c, (name, field) in enumerate(panels.items()):
            spread = name.endswith("spread")
            im = axes[r, c].imshow(field[r], origin="lower", extent=ext,
                                   cmap="magma" if spread else "viridis",
                                   vmin=None if spread else lo, vmax=None if spread else hi)
            fig.colorbar(im, ax=axes[r, c], shrink=0.7)
            axes[r, c].set_title(f"{name}: {var}", fontsize=7)
            axes[r, c].tick_params(labelsize=5)
        ax = axes[r, -1]
        spec = results["runs"]["polydiff/x8+obs"]["variables"][var]["spectrum"]
        ax.loglog(spec["wavenumber"][1:], spec["truth"][1:], "k", label="truth")
        ax.loglog(spec["wavenumber"][1:], spec["members"][1:], label="polydiff members")
        for name in ("bicubic/x8", "oi/x8+obs"):
            s = results["runs"][name]["variables"][var]["spectrum"]
            ax.loglog(s["wavenumber"][1:], s["members"][1:], label=name)
        ax.set_title(f"spectra {var} (x8)", fontsize=7)
        ax.tick_params(labelsize=5)
        if r == 0:
            ax.legend(fontsize=5)
    save_figure(fig, path, dpi=90)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--turbulence", type=Path, default=TURBULENCE,
                        help="checkpoint of the turbulence case (skipped when absent)")
    parser.add_argument("--conditional", type=Path, default=TURBULENCE_CONDITIONAL,
                        help="conditional network of the turbulence case, scored beside the "
                             "guided prior (skipped when absent)")
    parser.add_argument("--no-weather", action="store_true",
                        help="only the turbulence case (e.g. to measure another checkpoint)")
    parser.add_argument("--name", default="atmos_superres",
                        help="results/<name>.json and the pictures' names")
    parser.add_argument("--no-throughput", action="store_true",
                        help="skip the throughput part (benchmarks/results/atmos_throughput.json "
                             "keeps its last measurement)")
    parser.add_argument("--throughput", action="store_true",
                        help="only the end-to-end vs network-only time steps per second "
                             "(writes results/atmos_throughput.json)")
    args = parser.parse_args()
    if args.throughput:
        torch.set_num_threads(1)
        tp = throughput(bench_device())
        write_json("atmos_throughput", tp)
        print(json.dumps(tp, indent=2))
    else:
        out = main(quick=args.quick, turbulence=args.turbulence, gaussian=not args.no_weather,
                   name=args.name, conditional=args.conditional,
                   with_throughput=not args.no_throughput)
        for name, r in out["runs"].items():
            ratio = "-" if r["spread_skill"] is None else f"{r['spread_skill']:.2f}"
            print(f"{name:>22}: RMSE/std {r['rmse_norm']:.3f}  CRPS/std {r['crps_norm']:.3f}  "
                  f"spread/skill {ratio}")
