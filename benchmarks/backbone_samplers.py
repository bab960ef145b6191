"""Sampler error versus model evaluations on an exact Gaussian mixture, and the overhead of
polydiff's sampling loop against a bare diffusers scheduler loop on the same UNet."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from diffusers import UNet2DModel  # noqa: E402

from benchmarks.common import figure_path, interleaved_times, write_json  # noqa: E402
from polydiff.diffusion import Denoiser, make_scheduler, sample  # noqa: E402
from polydiff.diffusion.mixture import GaussianMixture, sliced_wasserstein  # noqa: E402
from polydiff.plotting import save_figure  # noqa: E402

SCHEDULERS = {"DDIM": "ddim", "DPM-Solver++ (2M)": "dpmsolver++", "UniPC": "unipc",
              "Euler": "euler"}


def mixture(dim: int = 4) -> GaussianMixture:
    g = torch.Generator().manual_seed(0)
    return GaussianMixture(torch.tensor([0.2, 0.3, 0.5]), 1.5 * torch.randn(3, dim, generator=g),
                           0.02 + 0.1 * torch.rand(3, dim, generator=g))


def error_vs_nfe(n: int, nfes: list[int]) -> dict:
    gm = mixture()
    ref = gm.sample(n, torch.Generator().manual_seed(1))
    proj = torch.Generator().manual_seed(2)
    floor = sliced_wasserstein(gm.sample(n, torch.Generator().manual_seed(3)), ref,
                               generator=torch.Generator().manual_seed(2))
    curves = {}
    for label, name in SCHEDULERS.items():
        curves[label] = []
        for nfe in nfes:
            sched = make_scheduler(name)
            out = sample(gm.model(sched), sched, (n, 4), steps=nfe,
                         generator=torch.Generator().manual_seed(4)).sample
            proj = torch.Generator().manual_seed(2)
            curves[label].append(sliced_wasserstein(out, ref, generator=proj))
    return {"nfe": nfes, "sliced_w2": curves, "noise_floor": floor, "samples": n}


def loop_overhead(repeats: int, steps: int) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    unet = UNet2DModel(sample_size=32, in_channels=3, out_channels=3,
                       block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D")).eval()
    sched = make_scheduler("ddim")
    noise = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def bare():
        sched.set_timesteps(steps)
        x = noise.clone()
        for t in sched.timesteps:
            x = sched.step(unet(x, t).sample, t, x).prev_sample
        return x

    def ours():
        return sample(Denoiser(unet), sched, noise.shape, steps=steps, x_T=noise.clone()).sample

    torch.testing.assert_close(bare(), ours(), rtol=1e-4, atol=1e-4)
    t_bare, t_ours = interleaved_times(bare, ours, repeats)
    return {"steps": steps, "bare_diffusers_s": t_bare, "polydiff_s": t_ours,
            "overhead_percent": 100 * (t_ours / t_bare - 1), "target_percent": 5.0}


def plot(result: dict, name: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, errs in result["error_vs_nfe"]["sliced_w2"].items():
        ax.loglog(result["error_vs_nfe"]["nfe"], errs, "o-", label=label)
    ax.axhline(result["error_vs_nfe"]["noise_floor"], color="gray", ls="--",
               label="two true sample sets")
    ov = result["loop_overhead"]
    ax.set(xlabel="model evaluations", ylabel="sliced W2 to the mixture",
           title=f"exact GMM denoiser; loop overhead {ov['overhead_percent']:+.1f} %")
    ax.legend()
    save_figure(fig, figure_path(name), dpi=120)


def main(quick: bool = True) -> dict:
    name = "backbone_samplers"
    result = {
        "error_vs_nfe": error_vs_nfe(5000 if quick else 20000, [3, 5, 10, 20, 50, 100]),
        "loop_overhead": loop_overhead(7 if quick else 15, 10 if quick else 50),
    }
    write_json(name, result)
    plot(result, name)
    print(f"loop overhead: {result['loop_overhead']['overhead_percent']:+.1f} %")
    return result


if __name__ == "__main__":
    main(quick=False)
