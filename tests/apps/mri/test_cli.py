"""``polydiff mri`` end to end: phantoms, train, reconstruct, evaluate, and bad input."""

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from polydiff.apps.mri.data import prepare_kspace
from polydiff.apps.mri.train import load_train_config, run_training
from polydiff.cli import build_parser, main
from polydiff.medical.kspace import fft2c, ifft2c
from polydiff.medical.masks import budget, center_columns
from polydiff.weights import bundled_path

TINY = {
    "network": {"type": "unet2d", "sample_size": 16, "in_channels": 2, "out_channels": 2,
                "block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4,
                "down_block_types": ["DownBlock2D"] * 2, "up_block_types": ["UpBlock2D"] * 2},
    "data": {"size": 16, "n": 8, "seed": 0},
    "train": {"steps": 2, "batch_size": 4, "device": "cpu", "ema_decay": 0.0},
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("mri_model")
    cfg = load_train_config({**TINY, "train": {**TINY["train"], "out_dir": str(out)}})
    return run_training(cfg, progress=False)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    path = tmp_path_factory.mktemp("mri_data") / "ph.h5"
    assert main(["mri", "phantoms", "--n", "2", "--size", "16", "-o", str(path)]) == 0
    return path


def _recon(src, dst, model, *extra):
    args = ["mri", "reconstruct", str(src), "--members", "2", "--steps", "3", "-o", str(dst),
            "--device", "cpu", *extra]
    return main(args + (["--model", str(model)] if model else []))


def _one_line_error(capsys, *needles):
    err = [line for line in capsys.readouterr().err.splitlines()
           if line.strip() and "it/s]" not in line and "s/it]" not in line]  # no tqdm bars
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def _nothing_written(folder, *names):
    for name in names:
        assert not (folder / name).exists(), name
    assert not [p for p in folder.iterdir() if p.name.startswith(".") and "part" in p.name]


# ----------------------------------------------------------------------------- results
def test_reconstruct_writes_the_specified_file(tiny_model, phantoms, tmp_path, capsys):
    out = tmp_path / "rec.h5"
    assert _recon(phantoms, out, tiny_model, "--acceleration", "4") == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == \
        f"wrote {out}, {tmp_path / 'rec.png'}"
    b = budget(16, 4)
    with h5py.File(out) as f:
        assert f["reconstruction"].shape == (2, 16, 16) and f["reconstruction"].dtype == "f4"
        assert f["std"].shape == (2, 16, 16)
        assert f["mask"].shape == (2, 16) and f["mask"].dtype == bool
        assert f["acquisition_order"].shape == (2, b.total)
        for mask, order in zip(f["mask"][()], f["acquisition_order"][()]):
            assert mask.sum() == b.total and sorted(order) == sorted(np.flatnonzero(mask))
            assert list(order[:b.center]) == list(center_columns(b))
        assert f.attrs["acceleration"] == 4 and f.attrs["policy"] == "ads"
        assert f.attrs["seed"] == 0 and f.attrs["model"] == str(tiny_model)
        assert np.isfinite(f["reconstruction"][()]).all()
    assert (tmp_path / "rec.png").stat().st_size > 1000
    assert oct((tmp_path / "rec.png").stat().st_mode & 0o777) != "0o600"  # umask, not 0600
    assert main(["mri", "evaluate", "--truth", str(phantoms), "--pred", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("NMSE") and lines[-1] == f"wrote {tmp_path / 'rec.metrics.json'}"
    assert set(json.loads((tmp_path / "rec.metrics.json").read_text())) == {"NMSE", "PSNR",
                                                                             "SSIM"}


def test_same_seed_same_file_and_policies_share_the_budget(tiny_model, phantoms, tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert _recon(phantoms, a, tiny_model, "--seed", "5") == 0
    assert _recon(phantoms, b, tiny_model, "--seed", "5") == 0
    assert a.read_bytes() == b.read_bytes()
    for policy in ("random", "equispaced"):
        c = tmp_path / f"{policy}.h5"
        assert _recon(phantoms, c, tiny_model, "--policy", policy, "--acceleration", "8") == 0
        with h5py.File(c) as f:
            assert (f["mask"][()].sum(1) == budget(16, 8).total).all()


@pytest.mark.parametrize("policy", ["ads", "random", "equispaced"])
def test_single_line_start_chooses_every_other_line(tiny_model, phantoms, tmp_path, capsys,
                                                    policy):
    out = tmp_path / "line.h5"
    assert _recon(phantoms, out, tiny_model, "--start", "line", "--policy", policy) == 0
    assert "starting from the single centre line" in capsys.readouterr().out
    b = budget(16, 4, start="line")
    with h5py.File(out) as f:
        assert f.attrs["start"] == "line"
        for mask, order in zip(f["mask"][()], f["acquisition_order"][()]):
            assert mask.sum() == b.total == 4 and order[0] == 8  # the DC column, then chosen
            assert sorted(order) == sorted(np.flatnonzero(mask))


def test_default_start_is_the_centre_block():
    args = build_parser(["mri"]).parse_args(["mri", "reconstruct", "k.h5", "-o", "r.h5"])
    assert args.start == "block"


def test_help_explains_the_start(capsys):
    with pytest.raises(SystemExit):
        main(["mri", "reconstruct", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "block (default)" in text and "coil maps are estimated from it" in text
    assert "line: the ADS paper's setting" in text


def test_multicoil_with_single_line_start_is_refused(tiny_model, tmp_path, capsys):
    src = tmp_path / "mc.h5"
    assert main(["mri", "phantoms", "--n", "1", "--size", "16", "--coils", "2",
                 "-o", str(src)]) == 0
    capsys.readouterr()
    assert _recon(src, tmp_path / "out.h5", tiny_model, "--start", "line") == 2
    _one_line_error(capsys, "multi-coil", "--start block")
    _nothing_written(tmp_path, "out.h5", "out.png")


def test_particles_is_an_alias_of_members():
    args = build_parser(["mri"]).parse_args(["mri", "reconstruct", "k.h5", "-o", "r.h5",
                                             "--particles", "3"])
    assert args.members == 3 and args.steps == 50 and args.guidance == 4.0


def _big_input(path, shape=(2, 28, 20)):
    """Single-coil k-space of random complex images of ``shape`` (S, H, W)."""
    gen = torch.Generator().manual_seed(4)
    img = torch.complex(torch.rand(shape, generator=gen), torch.rand(shape, generator=gen))
    with h5py.File(path, "w") as f:
        f["kspace"] = fft2c(img).numpy()
    return img


@pytest.mark.parametrize("rule", ["fov", "crop"])
def test_larger_input_states_its_fit_rule(tiny_model, tmp_path, capsys, rule):
    """A 28x20 input on the 16x16 model: one printed line and the attributes say what was
    done; evaluate brings the truth to the grid by the same rule."""
    src, out = tmp_path / "big.h5", tmp_path / "r.h5"
    img = _big_input(src)
    assert _recon(src, out, tiny_model, "--fit", rule) == 0
    lines = capsys.readouterr().out.splitlines()
    fitted = [ln for ln in lines if "28x20 k-space -> the model's 16x16 grid" in ln]
    assert len(fitted) == 1 and f"by rule '{rule}'" in fitted[0]
    with h5py.File(out) as f:
        assert f.attrs["fit"] == rule and f.attrs["fit_note"] == fitted[0]
        assert f.attrs["input_kspace_shape"].tolist() == [28, 20]
        kept = [20 / 28, 1.0] if rule == "fov" else [16 / 28, 16 / 20]
        assert np.allclose(f.attrs["field_of_view_kept"], kept)
        assert f.attrs["pixel_scale"] == pytest.approx(20 / 16 if rule == "fov" else 1.0)
        recon = f["reconstruction"][()]
    # the reconstruction written as the prediction scores perfectly against its own truth
    truth = tmp_path / "truth.h5"
    k, _ = prepare_kspace(fft2c(img), 16, rule)
    with h5py.File(truth, "w") as f:
        f["kspace"] = fft2c(img).numpy()
    perfect = tmp_path / "perfect.h5"
    with h5py.File(perfect, "w") as g:
        g["reconstruction"] = ifft2c(k).abs().numpy().astype(np.float32)
        g.attrs["fit"] = rule
    assert main(["mri", "evaluate", "--truth", str(truth), "--pred", str(perfect),
                 "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["SSIM"] == 1.0
    assert recon.shape == (2, 16, 16)


def test_model_default_fit_is_its_training_rule(tiny_model):
    from polydiff.apps.mri.model import load_model
    assert load_model(tiny_model).fit == "fov"


def test_evaluate_of_the_truth_is_perfect(phantoms, tmp_path, capsys):
    pred = tmp_path / "perfect.h5"
    with h5py.File(phantoms) as f, h5py.File(pred, "w") as g:
        g["reconstruction"] = f["reconstruction_esc"][()]
    metrics = tmp_path / "m.json"
    assert main(["mri", "evaluate", "--truth", str(phantoms), "--pred", str(pred),
                 "--json", str(metrics)]) == 0
    out = capsys.readouterr().out
    assert "NMSE 0.0000" in out and "PSNR inf" in out and "SSIM 1.0000" in out
    assert json.loads(metrics.read_text())["SSIM"] == 1.0


def test_multicoil_sense_reconstruction(tiny_model, tmp_path):
    src = tmp_path / "mc.h5"
    assert main(["mri", "phantoms", "--n", "1", "--size", "16", "--coils", "4",
                 "-o", str(src)]) == 0
    with h5py.File(src) as f:
        assert f["kspace"].shape == (1, 4, 16, 16) and "reconstruction_rss" in f
    out = tmp_path / "mc_rec.h5"
    assert _recon(src, out, tiny_model, "--policy", "equispaced") == 0
    with h5py.File(out) as f:
        assert f["reconstruction"].shape == (1, 16, 16) and f.attrs["coils"] == 4
    assert main(["mri", "evaluate", "--truth", str(src), "--pred", str(out)]) == 0


def test_bundled_checkpoint_reconstructs_out_of_the_box(tmp_path):
    assert (bundled_path("mri") / "polydiff.json").is_file()
    src = tmp_path / "ph.h5"
    assert main(["mri", "phantoms", "--n", "1", "--size", "64", "-o", str(src)]) == 0
    assert _recon(src, tmp_path / "r.h5", None) == 0
    with h5py.File(tmp_path / "r.h5") as f:
        assert f.attrs["model"] == str(bundled_path("mri"))
        rec = f["reconstruction"][()]
    assert rec.shape == (1, 64, 64) and np.isfinite(rec).all()


# ----------------------------------------------------------------------------- bad input
def _write_input(path, case):
    k = np.ones((1, 16, 16), np.complex64)
    with h5py.File(path, "w") as f:
        if case == "no_kspace":
            f["image"] = np.ones((1, 16, 16), np.float32)
        elif case == "real":
            f["kspace"] = np.ones((1, 16, 16), np.float32)
        elif case == "nan":
            k[0, 3, 3] = np.nan
            f["kspace"] = k
        elif case == "group":
            f.create_group("kspace")["data"] = k
        elif case == "external":
            n = os.path.getsize("/etc/passwd") // 8
            f.create_dataset("kspace", shape=(1, 1, n), dtype=np.complex64,
                             external=[("/etc/passwd", 0, n * 8)])
        elif case == "declared":  # 1.4 KB declaring 39 GiB
            f.create_dataset("kspace", shape=(20000, 512, 512), dtype=np.complex64)
        elif case == "empty_centre":
            k[..., 8] = 0
            f["kspace"] = k
        else:
            f["kspace"] = k


@pytest.mark.parametrize("case,needle", [
    ("no_kspace", "no 'kspace'"), ("real", "complex-valued"), ("nan", "NaN"),
    ("group", "'kspace' is an HDF5 group"), ("external", "external storage"),
    ("declared", "(20000, 512, 512) complex64 (39.1 GiB)"),
    ("empty_centre", "empty k-space centre column"),
    ("acceleration", "allows 2 of 16 columns, fewer than the 3 centre lines"),
    ("missing", "file not found")])
def test_bad_input_is_one_line_exit_2_without_output(tiny_model, tmp_path, case, needle,
                                                     capsys):
    src = tmp_path / "in.h5"
    _write_input(src, case)
    extra = ["--acceleration", "8", "--center-fraction", "0.2"] if case == "acceleration" else []
    if case == "missing":
        src = tmp_path / "nope.h5"
    assert _recon(src, tmp_path / "out.h5", tiny_model, *extra) == 2
    line = _one_line_error(capsys, "polydiff mri: error:", needle)
    assert "root:" not in line  # /etc/passwd's contents never show
    _nothing_written(tmp_path, "out.h5", "out.png")


def test_output_equal_to_input_is_refused(tiny_model, phantoms, tmp_path, capsys):
    src = tmp_path / "k.h5"
    src.write_bytes(phantoms.read_bytes())
    before = src.read_bytes()
    assert _recon(src, src, tiny_model) == 2
    _one_line_error(capsys, "is also an input")
    assert src.read_bytes() == before
    _nothing_written(tmp_path, "k.png")


def test_existing_picture_beside_the_output_needs_overwrite(tiny_model, phantoms, tmp_path,
                                                            capsys):
    mine = tmp_path / "r.png"
    mine.write_bytes(b"the user's own picture")
    assert _recon(phantoms, tmp_path / "r.h5", tiny_model) == 2
    _one_line_error(capsys, "r.png already exists", "--overwrite")
    assert mine.read_bytes() == b"the user's own picture"
    _nothing_written(tmp_path, "r.h5")
    assert _recon(phantoms, tmp_path / "r.h5", tiny_model, "--overwrite") == 0
    assert mine.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("option,value,needle", [
    ("--center-fraction", "-0.1", "argument --center-fraction: -0.1 is outside (0, 1)"),
    ("--center-fraction", "1", "is outside (0, 1)"),
    ("--guidance", "nan", "argument --guidance: expected a finite number, got 'nan'"),
    ("--guidance", "-1", "is outside [0, 1000]"),
    ("--particles", "1", "argument --members/--particles: 1 is outside [2, 256]"),
    ("--acceleration", "1", "is outside (1, 64]"),
    ("--steps", "0", "is outside [1, 1000]"),
    ("--seed", "-1", "is outside")])
def test_bad_numbers_are_refused_by_the_parser(phantoms, tmp_path, option, value, needle,
                                               capsys):
    with pytest.raises(SystemExit) as info:
        main(["mri", "reconstruct", str(phantoms), "-o", str(tmp_path / "r.h5"),
              option, value])
    assert info.value.code == 2
    _one_line_error(capsys, needle)
    _nothing_written(tmp_path, "r.h5", "r.png")


def _copy_checkpoint(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("train_state"))
    return dst


def test_non_finite_reconstruction_is_an_error_and_no_file(tiny_model, phantoms, tmp_path,
                                                           capsys):
    broken = _copy_checkpoint(tiny_model, tmp_path / "broken")
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    tensors = {k: v.fill_(float("nan")) if k.startswith("conv_out") else v
               for k, v in tensors.items()}
    save_file(tensors, weights)
    out = tmp_path / "out" / "r.h5"
    assert _recon(phantoms, out, broken) == 2
    _one_line_error(capsys, "is not finite", "nothing was written")
    assert not (tmp_path / "out").exists()  # the folder made for the output is gone too


def test_checkpoint_of_another_app_is_refused(tiny_model, phantoms, tmp_path, capsys):
    other = _copy_checkpoint(tiny_model, tmp_path / "other")
    meta = json.loads((tiny_model / "polydiff.json").read_text())
    (other / "polydiff.json").write_text(json.dumps({**meta, "app": "pde"}))
    assert _recon(phantoms, tmp_path / "r.h5", other) == 2
    _one_line_error(capsys, "checkpoint of the pde app, not of mri")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_same_seed_same_file(tiny_model, phantoms, tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    for out in (a, b):
        assert main(["mri", "reconstruct", str(phantoms), "--members", "4", "--steps", "5",
                     "-o", str(out), "--device", "cuda", "--model", str(tiny_model)]) == 0
    assert a.read_bytes() == b.read_bytes()
    with h5py.File(a) as f:
        assert np.isfinite(f["reconstruction"][()]).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_device_is_used(phantoms, tmp_path, capsys):
    assert main(["mri", "reconstruct", str(phantoms), "-o", str(tmp_path / "r.h5"),
                 "--device", "cuda"]) == 2
    _one_line_error(capsys, "CUDA")


# ----------------------------------------------------------------------------- phantoms
@pytest.mark.parametrize("extra,needles", [
    (["--n", "1000000000"], ["1000000000 phantom slices of 128x128", "years",
                             "limit 1 h", "TiB", "too much time"]),
    (["--coils", "100000"], ["with 100000 coil(s)", "GiB of memory", "too much", "memory"])])
def test_phantoms_beyond_the_machine_are_refused_by_estimate(tmp_path, extra, needles, capsys):
    assert main(["mri", "phantoms", *extra, "-o", str(tmp_path / "p.h5")]) == 2
    _one_line_error(capsys, "would take about", *needles)
    _nothing_written(tmp_path, "p.h5")


def test_phantoms_are_seeded_and_only_rank_0_writes(tmp_path, monkeypatch, capsys):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(["mri", "phantoms", "--n", "2", "--size", "16", "--seed", "4", "-o", str(a)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote {a}"
    monkeypatch.setenv("RANK", "1")
    assert main(["mri", "phantoms", "--n", "2", "--size", "16", "--seed", "4", "-o", str(b)]) == 0
    assert not b.exists() and capsys.readouterr().out == ""
    monkeypatch.setenv("RANK", "0")
    assert main(["mri", "phantoms", "--n", "2", "--size", "16", "--seed", "4", "-o", str(b)]) == 0
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert np.array_equal(fa["kspace"][()], fb["kspace"][()])


# ----------------------------------------------------------------------------- start-up
def test_cli_answers_help_without_torch():
    code = ("import sys\n"
            "import polydiff.apps.mri.cli\n"
            "from polydiff.cli import main\n"
            "for argv in (['mri', '--help'], ['mri', 'reconstruct', '--help'],\n"
            "             ['mri', 'reconstruct', 'k.h5', '-o', 'r.h5', '--guidance', 'nan']):\n"
            "    try:\n"
            "        main(argv)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "heavy = [m for m in ('torch', 'numpy', 'h5py', 'diffusers') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
    text = " ".join(out.stdout.split())  # argparse wraps the help anywhere
    assert "range (0, 1)" in text and "--particles" in text


@pytest.mark.slow
def test_demo_writes_its_files(tmp_path):
    from polydiff.apps.mri.cli import demo

    result = demo(tmp_path / "mri", device=torch.device("cpu"), seed=0)
    assert "SSIM" in result.summary and "zero-filled" in result.summary
    for name in ("phantoms.h5", "recon.h5", "recon.png"):
        assert (tmp_path / "mri" / name).is_file() and tmp_path / "mri" / name in result.files
    assert result.metrics["SSIM"] > result.baseline["SSIM"]  # ADS beats zero-filling
    assert demo(tmp_path / "mri", device=torch.device("cpu"), seed=0) == result  # rerunnable
