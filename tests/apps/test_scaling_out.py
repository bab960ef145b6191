"""Inference over many inputs under torchrun: two CPU processes write the same files as one,
each process its own share; --resume then has nothing left to do."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polydiff.cli import main

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "POLYDIFF_DEBUG": "1"}
for _name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID",
              "SLURM_ARRAY_TASK_COUNT"):
    ENV.pop(_name, None)


def polydiff(*args, procs: int = 1) -> str:
    """``polydiff ARGS`` in fresh processes: plain, or ``torchrun --nproc_per_node procs``."""
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
              f"--nproc_per_node={procs}"] if procs > 1 else [sys.executable]
    done = subprocess.run([*launch, "-m", "polydiff.cli", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def contents(folder: Path, volatile: tuple[str, ...] = ()) -> dict[str, object]:
    """name -> bytes (or, for JSON files, the parsed data without ``volatile`` keys)."""
    out = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            out[path.name] = {k: v for k, v in data.items() if k not in volatile}
        else:
            out[path.name] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def rooms(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rooms")
    assert main(["mono", "scenes", "--n", "3", "-o", str(folder)]) == 0
    return folder


@pytest.mark.slow
def test_mono_folder_split_over_two_processes_gives_the_same_files(rooms, tmp_path):
    args = ["mono", "estimate", rooms, "--device", "cpu", "--tasks", "depth,camera"]
    polydiff(*args, "-o", tmp_path / "one")
    two = polydiff(*args, "-o", tmp_path / "two", procs=2)
    assert "[share 1 of 2: 2 input(s)]" in two and "[share 2 of 2: 1 input(s)]" in two
    one = contents(tmp_path / "one", volatile=("seconds",))
    assert len(one) == 3 * 6 and one == contents(tmp_path / "two", volatile=("seconds",))
    again = polydiff(*args, "-o", tmp_path / "two", "--resume", procs=2)
    assert again.count("wrote nothing; skipped") == 2


@pytest.mark.slow
def test_mri_volumes_split_over_two_processes_give_the_same_files(tmp_path):
    from polydiff.apps.mri.model import load_model

    size = load_model(None, "cpu").size
    volumes = tmp_path / "volumes"
    for seed in range(3):
        assert main(["mri", "phantoms", "--n", "1", "--size", str(size), "--seed", str(seed),
                     "-o", str(volumes / f"v{seed}.h5")]) == 0
    args = ["mri", "reconstruct", volumes, "--members", "2", "--steps", "3", "--device", "cpu"]
    polydiff(*args, "-o", tmp_path / "one")
    polydiff(*args, "-o", tmp_path / "two", procs=2)
    one = contents(tmp_path / "one")
    assert sorted(one) == ["v0.h5", "v0.png", "v1.h5", "v1.png", "v2.h5", "v2.png"]
    assert one == contents(tmp_path / "two")


@pytest.fixture(scope="module")
def tiny_triplane(tmp_path_factory) -> Path:
    """A small untrained triplane generator that takes the bundled prompt encoder's 384-d
    embeddings (the files only need to be a function of the prompt and the seed)."""
    from polydiff.apps.contract import checkpoint_meta
    from polydiff.apps.mesh.triplane_model import (
        TriplaneConfig,
        build_triplane_model,
        save_triplane,
    )

    cfg = TriplaneConfig(latent_channels=4, plane_size=8, resolution=24)
    model = build_triplane_model(cfg, channels=(16, 32), heads=4, norm_groups=8,
                                 decoder={"features": 8, "hidden": 16}, seed=0)
    folder = tmp_path_factory.mktemp("triplane") / "ckpt"
    meta = checkpoint_meta("mesh", {"latent_channels": 4, "plane_size": 8, "resolution": 24},
                           kind="triplane")
    return save_triplane(folder, model, meta)


@pytest.mark.slow
def test_mesh_prompts_split_over_two_processes_give_the_same_files(tiny_triplane, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red mug\n\na blue box\na green cone\n")
    args = ["mesh", "generate", "--prompts", prompts, "--model", tiny_triplane,
            "--device", "cpu"]
    polydiff(*args, "-o", tmp_path / "one")
    polydiff(*args, "-o", tmp_path / "two", procs=2)
    one = contents(tmp_path / "one")
    assert sorted(one) == ["0000_a_red_mug.glb", "0000_a_red_mug.png", "0001_a_blue_box.glb",
                           "0001_a_blue_box.png", "0002_a_green_cone.glb",
                           "0002_a_green_cone.png"]
    assert one == contents(tmp_path / "two")


@pytest.mark.slow
def test_atmos_time_steps_split_over_two_processes_give_the_same_fields(tmp_path):
    import numpy as np
    import xarray as xr

    from tests.apps.atmos.test_atmos_steps import FAST, coarse_record

    record = coarse_record(tmp_path / "coarse.nc", 3)
    args = ["atmos", "superres", record, *FAST, "--per-step"]
    polydiff(*args, "-o", tmp_path / "one")
    polydiff(*args, "-o", tmp_path / "two", procs=2)
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir()) and len(names) == 3
    for name in names:  # the files differ only in the time stamp of their history line
        with xr.open_dataset(tmp_path / "one" / name) as a, \
                xr.open_dataset(tmp_path / "two" / name) as b:
            for var in a.data_vars:
                np.testing.assert_array_equal(a[var].values, b[var].values)
