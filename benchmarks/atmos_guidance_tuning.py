"""atmos: the stations-only guidance weight of each bundled prior, tuned on validation fields.

For observations without a coarse file, ``superres`` uses the checkpoint's
``config.station_guidance`` (see ``superres.resolved_guidance``). This sweep chose it: for
each weight, the ensemble-mean RMSE and CRPS (in units of each variable's std, averaged)
from 20 stations on 6 fields of the validation seed 4242 (the benchmark's test fields are
seed 1234), 8 members, 50 DDIM steps, η = 1, one thread.

    python -m benchmarks.atmos_guidance_tuning [--full]

Writes results/atmos_guidance_tuning.json. Measured (session 4): weather 0.1 / 0.3 / 0.5 /
1.0 → RMSE 0.874 / 0.630 / **0.590** / 0.652; turbulence 0.03 / 0.1 / 0.2 / 0.3 → 1.009 /
**0.927** / 0.936 / 0.958.
"""

from __future__ import annotations

import torch

from benchmarks.atmos_superres import _scores, held_out_fields, polydiff_members
from benchmarks.common import write_json
from polydiff.apps.atmos.model import load_model
from polydiff.apps.atmos.superres import SuperresOptions

VALIDATION_SEED = 4242
WEIGHTS = {"weather": (0.1, 0.3, 0.5, 1.0), "turbulence": (0.03, 0.1, 0.2, 0.3)}


def sweep(name: str, weights, *, n_times: int = 6, members: int = 8, steps: int = 50,
          n_obs: int = 20) -> dict:
    """RMSE and CRPS of stations-only ensembles of the bundled prior ``name`` per weight."""
    model = load_model(name, torch.device("cpu"))
    norm = model.normaliser
    truth_ds, truth, obs = held_out_fields(model, n_times, n_obs, seed=VALIDATION_SEED)
    out = {}
    for weight in weights:
        opts = SuperresOptions(factor=None, members=members, steps=steps, guidance=weight)
        ens = polydiff_members(model, opts, truth_ds, coarse=None, obs=obs)
        s = _scores(ens, truth, truth_ds.latitude.values, list(norm.variables), norm.std)
        out[str(weight)] = {"rmse_norm": s["rmse_norm"], "crps_norm": s["crps_norm"]}
        print(f"{name} guidance {weight:g}: RMSE {s['rmse_norm']:.4f} CRPS "
              f"{s['crps_norm']:.4f}", flush=True)
    best = min(out, key=lambda w: out[w]["rmse_norm"])
    return {"weights": out, "best": float(best),
            "bundled": model.config.station_guidance}


def main(quick: bool = True) -> dict:
    torch.set_num_threads(1)
    sizes = {"n_times": 2, "members": 4, "steps": 25} if quick else {}
    result = {"validation_seed": VALIDATION_SEED, "quick": quick,
              **{name: sweep(name, weights, **sizes) for name, weights in WEIGHTS.items()}}
    write_json("atmos_guidance_tuning", result)
    return result


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="6 fields, 8 members, 50 steps")
    main(quick=not parser.parse_args().full)
