"""The pde app on the app contract: loading, training, rank-0 output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from polydiff.apps.pde.model import bundled_folder, load_model
from polydiff.weights import bundled_path
from tests.apps.pde.pde_testing import cli

pytestmark = pytest.mark.skipif(not (bundled_folder() / "polydiff.json").is_file(),
                                reason="bundled pde checkpoint missing")

TINY = {
    "kind": "wdno",
    "layout": {"domain": "wavelet", "family": "haar", "levels": 1},
    "data": {"n": 6, "nx": 31, "nt": 32, "finer": 1, "seed": 0},
    "network": {"block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4,
                "down_block_types": ["DownBlock2D", "DownBlock2D"],
                "up_block_types": ["UpBlock2D", "UpBlock2D"]},
    "sampling": {"steps": 3},
    "train": {"steps": 50, "batch_size": 4, "lr": 1e-3, "log_every": 1,
              "out_dir": "unused", "device": "cpu"},
}


def test_bundled_checkpoints_are_format_1() -> None:
    for kind, folder in (("wdno", bundled_folder()), ("superres", bundled_folder("superres"))):
        meta = json.loads((folder / "polydiff.json").read_text())
        assert (meta["format"], meta["app"], meta["kind"]) == (1, "pde", kind)
        assert meta["config"]["kind"] == kind and len(meta["config"]["layout"]["scale"]) == 12
        model = load_model(None, "cpu", kind=kind)
        assert model.folder == folder and model.config.layout.scale == \
            meta["config"]["layout"]["scale"]


def test_other_apps_kinds_and_formats_are_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.nc"
    assert cli("simulate", "--model", bundled_folder("superres"), "-o", out) == 2
    assert "holds a superres model of pde, where a wdno model is needed" in \
        capsys.readouterr().err
    other = next(p for name, p in ((n, bundled_path(n)) for n in ("mri", "atmos", "mono"))
                 if (p / "polydiff.json").is_file())
    assert cli("simulate", "--model", other, "-o", out) == 2
    assert "not of pde" in capsys.readouterr().err
    old = tmp_path / "old"  # the layout before format 1: {"app": "pde", "pde": {...}}
    shutil.copytree(bundled_folder(), old, ignore=shutil.ignore_patterns("superres"))
    meta = json.loads((old / "polydiff.json").read_text())
    (old / "polydiff.json").write_text(json.dumps({
        "app": "pde", "pde": meta["config"], "networks": meta["networks"]}))
    assert cli("simulate", "--model", old, "-o", out) == 2
    assert "format None" in capsys.readouterr().err
    assert not out.exists()


def test_a_plain_diffusers_folder_loads_with_the_bundled_config(tmp_path: Path) -> None:
    """unet/ + scheduler/ without polydiff.json: the same network gives the same numbers."""
    plain = tmp_path / "plain"
    for sub in ("unet", "scheduler"):
        shutil.copytree(bundled_folder() / sub, plain / sub)
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    args = ["simulate", "--steps", 3, "--seed", 4, "--device", "cpu"]
    assert cli(*args, "-o", a) == 0 and cli(*args, "--model", plain, "-o", b) == 0
    with xr.open_dataset(a, engine="h5netcdf") as da, xr.open_dataset(b, engine="h5netcdf") as db:
        np.testing.assert_array_equal(da["u"].values, db["u"].values)
        assert db.attrs["model"] == str(plain)


def test_only_rank_0_prints_and_writes(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("RANK", "1")
    out = tmp_path / "r.nc"
    assert cli("simulate", "--steps", 2, "--device", "cpu", "-o", out) == 0
    assert capsys.readouterr().out == "" and list(tmp_path.iterdir()) == []
    monkeypatch.setenv("RANK", "0")
    assert cli("simulate", "--steps", 2, "--device", "cpu", "-o", out) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {out}, {out.with_suffix('.png')}"


def _config(tmp_path: Path, **data) -> Path:
    config = json.loads(json.dumps(TINY))
    config["data"].update(data)
    path = tmp_path / f"tiny{len(list(tmp_path.glob('tiny*')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_through_the_contract_and_its_data_cache(tmp_path: Path, capsys) -> None:
    """--train-steps/-o/--seed/--device override the config; the checkpoint is format 1 and
    serves simulate; the data cache is written, reused, and never overwritten."""
    config, out, cache = _config(tmp_path), tmp_path / "ckpt", tmp_path / "data.safetensors"
    assert cli("train", "--config", config, "--train-steps", 2, "-o", out, "--seed", 3,
               "--device", "cpu", "--data-cache", cache) == 0
    first = capsys.readouterr().out.splitlines()
    assert first[-1] == f"wrote {out}, {cache}" and first[-2].startswith("trained 2 steps")
    meta = json.loads((out / "polydiff.json").read_text())
    assert (meta["format"], meta["app"], meta["kind"]) == (1, "pde", "wdno")
    assert (meta["train"]["steps"], meta["train"]["seed"]) == (2, 3)
    assert meta["config"]["data"]["n"] == 6 and len(meta["config"]["layout"]["scale"]) == 12
    model = load_model(out, "cpu")
    assert model.config.train.steps == 2
    traj = tmp_path / "t.nc"
    assert cli("simulate", "--model", out, "--device", "cpu", "-o", traj) == 0
    # again from the cache: the same data and seed, so the same normalisation and losses
    cached = cache.read_bytes()
    capsys.readouterr()
    assert cli("train", "--config", config, "--train-steps", 2, "-o", tmp_path / "again",
               "--seed", 3, "--device", "cpu", "--data-cache", cache) == 0
    assert capsys.readouterr().out.splitlines()[-2] == first[-2]
    again = json.loads((tmp_path / "again" / "polydiff.json").read_text())["config"]
    assert again["layout"] == meta["config"]["layout"]
    # a cache of other data is refused, and kept
    other = _config(tmp_path, seed=1)
    assert cli("train", "--config", other, "--train-steps", 1, "-o", tmp_path / "o",
               "--data-cache", cache) == 2
    assert "other settings" in capsys.readouterr().err
    assert cache.read_bytes() == cached and not (tmp_path / "o").exists()
    assert cli("train", "--config", other, "--train-steps", 1, "-o", tmp_path / "o",
               "--data-cache", other) == 2  # the config file itself
    assert cli("train", "--config", config, "--train-steps", 0) == 2
