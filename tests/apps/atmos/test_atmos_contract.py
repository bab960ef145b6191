"""atmos on the app contract: outputs that never clobber, finite results, one-line refusals,
rank-0-only writing, seeded and cached training, a torch-free CLI module."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
from safetensors.torch import load_file

from polydiff.cli import main
from polydiff.runtime import UserError
from tests.apps.atmos.conftest import exit_code


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _one_line_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in err and all(w in err for w in words), err
    return err


# ----------------------------------------------------------------------------- start-up
def test_the_cli_module_imports_without_torch():
    code = ("import sys, polydiff.apps.atmos.cli; "
            "print(sorted(m for m in ('torch', 'numpy', 'xarray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_help_shows_the_contract_names_and_ranges(capsys):
    with pytest.raises(SystemExit):
        main(["atmos", "superres", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # independent of argparse's line wraps
    for name in ("--output", "--overwrite", "--members", "--steps", "--device", "--seed",
                 "--model", "(range > 0", "(range >= 0"):
        assert name in text, name


# ----------------------------------------------------------------------------- data loss
def test_superres_refuses_to_write_over_its_input(data, run_superres, tmp_path, capsys):
    coarse = tmp_path / "X.nc"
    shutil.copy(data["coarse"], coarse)
    before = coarse.read_bytes()
    for target in (coarse, tmp_path / "." / "X.nc"):
        assert main(["atmos", "superres", str(coarse), "--factor", "4", "-o", str(target)]) == 2
        _one_line_error(capsys, "also an input")
    assert coarse.read_bytes() == before and sorted(_files(tmp_path)) == ["X.nc"]


def test_the_picture_never_replaces_the_netcdf(run_superres, tmp_path, capsys):
    assert run_superres(tmp_path / "res.png") == 2
    _one_line_error(capsys, ".nc", "res.png")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_side_file_is_kept_unless_overwrite(run_superres, tmp_path, capsys):
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"the user's own picture")
    assert run_superres(tmp_path / "mine.nc") == 2
    _one_line_error(capsys, "mine.png", "--overwrite")
    assert _files(tmp_path) == {"mine.png": b"the user's own picture"}
    assert run_superres(tmp_path / "mine.nc", "--overwrite") == 0
    assert mine.read_bytes().startswith(b"\x89PNG") and (tmp_path / "mine.nc").is_file()


def test_generate_keeps_an_existing_coarse_file_it_was_not_told_to_replace(tmp_path, capsys):
    coarse = tmp_path / "t_coarse.nc"
    coarse.write_bytes(b"precious")
    rc = main(["atmos", "generate", "--n", "1", "--size", "8", "--resolution", "2",
               "--spinup", "10", "--coarsen", "2", "-o", str(tmp_path / "t.nc")])
    assert rc == 2 and _files(tmp_path) == {"t_coarse.nc": b"precious"}
    _one_line_error(capsys, "t_coarse.nc", "--overwrite")


# ----------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("option, value", [
    ("--coarse-sigma", "0"), ("--coarse-sigma", "-1"), ("--coarse-sigma", "nan"),
    ("--guidance", "nan"), ("--guidance", "inf"), ("--guidance", "-0.1"),
    ("--members", "0"), ("--steps", "0"), ("--factor", "0"), ("--seed", "-1")])
def test_bad_numbers_are_refused_by_the_parser(run_superres, tmp_path, capsys, option, value):
    assert run_superres(tmp_path / "x.nc", option, value) == 2
    _one_line_error(capsys, option)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option, value", [
    ("--size", "0"), ("--size", "1"), ("--resolution", "0"), ("--resolution", "nan"),
    ("--n", "0"), ("--obs", "0"), ("--coarsen", "0"), ("--trajectories", "0"),
    ("--spinup", "-1")])
def test_generate_refuses_bad_sizes_in_one_line(tmp_path, capsys, option, value):
    assert exit_code(["atmos", "generate", option, value, "-o", str(tmp_path / "g.nc")]) == 2
    _one_line_error(capsys, option)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, words", [
    (["--size", "200"], ["latitudes", "-90..90"]),
    (["--size", "10", "--coarsen", "4"], ["not a multiple"])])
def test_generate_refuses_impossible_grids_before_simulating(tmp_path, capsys, args, words):
    assert main(["atmos", "generate", *args, "-o", str(tmp_path / "g.nc")]) == 2
    _one_line_error(capsys, *words)
    assert list(tmp_path.iterdir()) == []


def test_a_non_finite_ensemble_is_an_error_and_no_file(run_superres, tmp_path, capsys):
    # a coarse noise of 1e-30 makes the guidance overflow: the sampler returns NaN
    assert run_superres(tmp_path / "x.nc", "--coarse-sigma", "1e-30") == 2
    _one_line_error(capsys, "not finite", "--coarse-sigma", "--guidance")
    assert list(tmp_path.iterdir()) == []


def test_library_options_are_checked_too():
    from polydiff.apps.atmos.superres import SuperresOptions

    for bad in ({"guidance": float("nan")}, {"coarse_sigma": 0.0}, {"members": 0}):
        with pytest.raises(UserError):
            SuperresOptions(**bad)


def test_a_yaml_field_config_with_size_zero_is_one_line(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("fields: {size: 0}\nnetwork: {sample_size: 0}\n")
    assert main(["atmos", "train", "--config", str(config), "-o", str(tmp_path / "m")]) == 2
    _one_line_error(capsys, "fields.size")


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_writes_strict_json_beside_the_prediction(data, tmp_path, capsys):
    truth = xr.open_dataset(data["truth"])
    pred = truth[["t2m"]].expand_dims(member=[0, 1])  # a perfect two-member ensemble
    path = tmp_path / "perfect.nc"
    pred.to_netcdf(path)
    assert main(["atmos", "evaluate", "--truth", str(data["truth"]), "--pred", str(path)]) == 0
    written = tmp_path / "perfect.metrics.json"
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {written}"
    metrics = json.loads(written.read_text(), parse_constant=lambda c: pytest.fail(c))
    assert metrics["variables"]["t2m"]["spread_skill"] is None
    # the metrics may not replace the truth or the prediction
    assert main(["atmos", "evaluate", "--truth", str(data["truth"]), "--pred", str(path),
                 "--json", str(path)]) == 2
    _one_line_error(capsys, "also an input")


# ----------------------------------------------------------------------------- torchrun
def test_only_rank_0_writes_and_prints(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    rc = main(["atmos", "generate", "--n", "1", "--size", "8", "--resolution", "2",
               "--spinup", "10", "--coarsen", "2", "--obs", "2", "-o", str(tmp_path / "g.nc")])
    assert rc == 0 and list(tmp_path.iterdir()) == [] and capsys.readouterr().out == ""


# ----------------------------------------------------------------------------- training
TRAIN_YAML = """\
fields: {size: 8, resolution: 4.0, sim_factor: 1, spinup_steps: 40, sample_every: 20}
data: {trajectories: 3, snapshots: 2, block: 2}
network:
  type: unet2d
  periodic: true
  sample_size: 8
  block_out_channels: [8, 16]
  layers_per_block: 1
  down_block_types: [DownBlock2D, DownBlock2D]
  up_block_types: [UpBlock2D, UpBlock2D]
  norm_num_groups: 4
train: {steps: 2, batch_size: 4, ema_decay: 0.0, resume: false, device: cpu}
"""


def test_training_is_seeded_and_the_data_cache_gives_the_same_model(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(TRAIN_YAML)
    cache = tmp_path / "fields.safetensors"
    weights = []
    for name in ("a", "b"):  # a simulates and writes the cache, b reads it
        assert main(["atmos", "train", "--config", str(config), "--data-cache", str(cache),
                     "-o", str(tmp_path / name), "--train-steps", "1"]) == 0
        weights.append(load_file(tmp_path / name / "unet" / "diffusion_pytorch_model.safetensors"))
        meta = json.loads((tmp_path / name / "polydiff.json").read_text())
        assert (meta["format"], meta["app"], meta["train"]["steps"]) == (1, "atmos", 1)
        assert meta["config"]["fields"]["size"] == 8
    assert cache.is_file() and "trained 1 steps" in capsys.readouterr().out
    assert weights[0].keys() == weights[1].keys()
    assert all((weights[0][k] == weights[1][k]).all() for k in weights[0])
    # a cache made with other settings is simulated again, not used
    other = tmp_path / "other.yaml"
    other.write_text(TRAIN_YAML.replace("block: 2", "block: 2, seed: 5"))
    assert main(["atmos", "train", "--config", str(other), "--data-cache", str(cache),
                 "-o", str(tmp_path / "c"), "--train-steps", "1"]) == 0
    third = load_file(tmp_path / "c" / "unet" / "diffusion_pytorch_model.safetensors")
    assert any((third[k] != weights[0][k]).any() for k in third)


def test_the_data_cache_may_not_be_the_config(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(TRAIN_YAML)
    assert main(["atmos", "train", "--config", str(config), "--data-cache", str(config)]) == 2
    _one_line_error(capsys, "also an input")
    assert config.read_text() == TRAIN_YAML


# ----------------------------------------------------------------------------- loading
def test_a_checkpoint_of_the_old_layout_is_refused_in_one_line(model_dir, tmp_path, capsys,
                                                              data):
    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    meta = json.loads((old / "polydiff.json").read_text())
    meta = {k: v for k, v in meta.items() if k not in ("format", "app", "kind", "config")}
    meta["atmos"] = {"normaliser": {}}
    (old / "polydiff.json").write_text(json.dumps(meta))
    assert main(["atmos", "superres", str(data["coarse"]), "--factor", "4", "--model", str(old),
                 "-o", str(tmp_path / "x.nc")]) == 2
    _one_line_error(capsys, "not of atmos")
    assert not (tmp_path / "x.nc").exists()


@pytest.mark.slow
def test_torchrun_splits_the_flows_between_processes_and_matches_one_process(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        pytest.skip("torchrun is not installed beside this python")
    config = tmp_path / "tiny.yaml"
    config.write_text(TRAIN_YAML.replace("block: 2", "block: 1"))  # 3 blocks on 2 processes
    assert main(["atmos", "train", "--config", str(config), "-o", str(tmp_path / "one")]) == 0
    run = subprocess.run([str(torchrun), "--nproc_per_node", "2", "-m", "polydiff.cli", "atmos",
                          "train", "--config", str(config), "-o", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("atmos train:") == 1 and run.stdout.count("trained 2 steps") == 1
    one, two = (json.loads((tmp_path / d / "polydiff.json").read_text()) for d in ("one", "two"))
    assert one["config"] == two["config"]  # the same simulated fields, to the last bit
    a, b = (load_file(tmp_path / d / "unet" / "diffusion_pytorch_model.safetensors")
            for d in ("one", "two"))
    assert all(float((a[k] - b[k]).abs().max()) < 1e-5 for k in a)


def test_a_prediction_declaring_a_huge_ensemble_is_refused_before_reading(data, tmp_path,
                                                                         capsys):
    import h5netcdf
    import numpy as np

    truth = xr.open_dataset(data["truth"])
    hours = (truth.time.values - truth.time.values[0]) / np.timedelta64(1, "h")
    path = tmp_path / "huge.nc"
    with h5netcdf.File(path, "w") as f:  # 10^8 members declared, none stored: a small file
        f.dimensions = {"member": 10**8, "time": 2, "latitude": 16, "longitude": 16}
        f.create_variable("time", ("time",), float, data=hours).attrs["units"] = \
            f"hours since {str(truth.time.values[0])[:19]}"
        f.create_variable("latitude", ("latitude",), float, data=truth.latitude.values)
        f.create_variable("longitude", ("longitude",), float, data=truth.longitude.values)
        f.create_variable("t2m", ("member", "time", "latitude", "longitude"), "f4",
                          chunks=(1000, 1, 16, 16))
    assert path.stat().st_size < 100_000
    assert main(["atmos", "evaluate", "--truth", str(data["truth"]), "--pred", str(path)]) == 2
    _one_line_error(capsys, "needs about", "memory")  # the estimate, not a MemoryError
    assert not (tmp_path / "huge.metrics.json").exists()
