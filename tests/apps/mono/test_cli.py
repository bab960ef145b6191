"""`polydiff mono ...` end to end with the bundled checkpoint: files named after the inputs,
nothing of the user's lost or overwritten, bad input refused in one line with no output."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from polydiff.cli import main

KINDS = {"depth.npy", "depth.png", "depth_vis.png", "normals.npy", "normals.png",
         "intrinsics.json", "points.ply", "estimate.json"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    assert main(["mono", "scenes", "--n", "2", "--width", "56", "--height", "40", "-o",
                 str(root / "set"), "--seed", "3"]) == 0
    return root / "set"


def _estimate(*args):
    try:
        return main(["mono", "estimate", *map(str, args), "--device", "cpu"])
    except SystemExit as stop:  # the parser refused an option
        return stop.code


def _written(out: str) -> list[Path]:
    """The files the final line (``wrote a, b, ...``) names."""
    last = out.strip().splitlines()[-1]
    assert last.startswith("wrote "), last
    return [Path(p) for p in last[len("wrote "):].split(", ")]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("polydiff mono: error:") and "\n" not in err, err
    return err


def test_estimate_writes_every_file_named_after_the_input(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert _estimate(data / "0000.png", "-o", out) == 0
    files = {p.name for p in out.iterdir()}
    assert files == {f"0000.png.{k}" for k in KINDS}
    assert {p.name for p in _written(capsys.readouterr().out)} == files  # the final line
    depth = np.load(out / "0000.png.depth.npy")
    assert depth.shape == (40, 56) and depth.dtype == np.float32
    normals = np.load(out / "0000.png.normals.npy")
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1, atol=1e-4)
    png = Image.open(out / "0000.png.depth.png")
    assert png.size == (56, 40) and np.asarray(png).dtype == np.uint16
    intr = json.loads((out / "0000.png.intrinsics.json").read_text())
    assert set(intr) == {"fx", "fy", "cx", "cy", "width", "height"}
    assert (intr["width"], intr["height"]) == (56, 40)
    info = json.loads((out / "0000.png.estimate.json").read_text())
    assert info["width"] == 56 and info["points_stride"] == 1


def test_photo_png_and_photo_jpg_get_results_of_their_own(tmp_path, capsys):
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 255, (33, 47, 3), dtype=np.uint8)).save(folder / "photo.png")
    Image.fromarray(rng.integers(0, 255, (30, 20, 3), dtype=np.uint8)).save(folder / "photo.jpg")
    Image.fromarray(rng.integers(0, 255, (33, 47), dtype=np.uint8)).save(folder / "g.png")
    Image.fromarray(rng.integers(0, 255, (70, 20, 4), dtype=np.uint8)).save(folder / "a.png")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert _estimate(folder, "-o", out, "--tasks", "depth,normals") == 0
    assert np.load(out / "photo.png.depth.npy").shape == (33, 47)
    assert np.load(out / "photo.jpg.depth.npy").shape == (30, 20)
    assert np.load(out / "g.png.depth.npy").shape == (33, 47)
    assert np.load(out / "a.png.normals.npy").shape == (70, 20, 3)
    written = _written(capsys.readouterr().out)
    assert len(written) == len(set(written)) == 4 * 8  # 6 task files + intrinsics + estimate
    assert set(written) == set(out.iterdir())


def test_output_into_the_input_folder_is_refused_and_loses_nothing(tmp_path, capsys):
    pictures = tmp_path / "Pictures"
    (pictures / "holiday").mkdir(parents=True)
    (pictures / "holiday" / "mine.txt").write_text("the user's own file")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(pictures / "holiday.jpg")
    before = sorted(p.relative_to(pictures) for p in pictures.rglob("*"))
    assert _estimate(pictures, "-o", pictures) == 2
    assert "input folder" in _one_line_error(capsys)
    assert sorted(p.relative_to(pictures) for p in pictures.rglob("*")) == before
    # a results folder inside it is fine, and the user's folder stays as it was
    assert _estimate(pictures, "-o", pictures / "results") == 0
    assert (pictures / "holiday" / "mine.txt").read_text() == "the user's own file"
    assert (pictures / "results" / "holiday.jpg.depth.png").is_file()


def test_output_naming_an_existing_file_is_refused_before_any_work(tmp_path, capsys):
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(img)
    taken = tmp_path / "taken.txt"
    taken.write_text("keep")
    # the model folder is bad too: the output is checked first, before loading anything
    assert _estimate(img, "-o", taken, "--model", tmp_path / "no_model") == 2
    assert "existing file" in _one_line_error(capsys)
    assert _estimate(img, "-o", img) == 2
    _one_line_error(capsys)
    assert taken.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == [
        "taken.txt", "x.png"]


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root may write into any folder")
def test_an_unwritable_output_folder_is_refused_before_the_work(tmp_path, capsys):
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(img)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        assert _estimate(img, "-o", locked) == 2
        assert "cannot write" in _one_line_error(capsys)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_existing_results_need_overwrite_and_other_files_are_kept(data, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    img = data / "0001.png"
    assert _estimate(img, "-o", out, "--tasks", "depth") == 0
    first = (out / "0001.png.depth.npy").read_bytes()
    (out / "0001.png.depth.npy").write_bytes(b"edited by the user")
    capsys.readouterr()
    assert _estimate(img, "-o", out, "--tasks", "depth") == 2
    assert "--overwrite" in _one_line_error(capsys)
    assert (out / "0001.png.depth.npy").read_bytes() == b"edited by the user"
    assert _estimate(img, "-o", out, "--tasks", "depth", "--overwrite") == 0
    assert (out / "0001.png.depth.npy").read_bytes() == first
    assert (out / "notes.md").read_text() == "mine"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left


def test_same_seed_same_files(data, tmp_path):
    img = data / "0001.png"
    args = ["--mode", "ensemble", "--steps", "2", "--members", "2", "--tasks", "depth"]
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert _estimate(img, "-o", tmp_path / name, "--seed", seed, *args) == 0
    a, b, c = (np.load(tmp_path / n / "0001.png.depth.npy") for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert (tmp_path / "a/0001.png.depth.png").read_bytes() == \
        (tmp_path / "b/0001.png.depth.png").read_bytes()
    assert (tmp_path / "a" / "0001.png.depth_uncertainty.npy").is_file()


@pytest.mark.parametrize("mode", ["refine", "one-step"])
def test_modes_run(data, tmp_path, mode):
    out = tmp_path / mode
    assert _estimate(data / "0000.png", "-o", out, "--mode", mode, "--steps", "4",
                     "--refine-steps", "2", "--members", "1") == 0
    assert (out / "0000.png.depth.npy").is_file()


def test_calibrate_prints_and_writes_intrinsics(data, tmp_path, capsys):
    assert main(["mono", "calibrate", str(data / "0000.png"), "--device", "cpu"]) == 0
    intr = json.loads(capsys.readouterr().out)
    assert intr["width"] == 56 and intr["height"] == 40 and intr["fx"] > 0
    assert intr["fx"] == intr["fy"]  # square pixels unless two focal lengths are asked for
    out = tmp_path / "k.json"
    assert main(["mono", "calibrate", str(data / "0000.png"), "-o", str(out)]) == 0
    assert json.loads(out.read_text()) == intr
    assert _written(capsys.readouterr().out) == [out]
    assert main(["mono", "calibrate", str(data / "0000.png"), "--two-focal-lengths"]) == 0
    two = json.loads(capsys.readouterr().out)
    assert two["fx"] != two["fy"] and min(two["fx"], two["fy"]) < intr["fx"] < max(
        two["fx"], two["fy"])


def test_evaluate_the_model_and_written_results(data, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["mono", "evaluate", "--truth", str(data), "--device", "cpu", "--json",
                 str(out)]) == 0
    res = json.loads(out.read_text())
    for key in ("abs_rel", "delta1", "delta2", "delta3", "rmse", "normal_mean",
                "normal_median", "normal_below_11_25", "e_f", "e_b", "images_per_second"):
        assert np.isfinite(res[key])
    assert res["n"] == 2 and 0 <= res["delta1"] <= res["delta2"] <= res["delta3"] <= 1
    assert _written(capsys.readouterr().out) == [out]
    # the same through files: estimate writes them, evaluate --pred reads them
    pred = tmp_path / "pred"
    assert _estimate(data, "-o", pred) == 0
    capsys.readouterr()
    assert main(["mono", "evaluate", "--truth", str(data), "--pred", str(pred)]) == 0
    assert _written(capsys.readouterr().out) == [tmp_path / "pred.metrics.json"]
    from_files = json.loads((tmp_path / "pred.metrics.json").read_text())
    for key in ("abs_rel", "delta1", "normal_mean", "e_f", "e_b"):
        assert from_files[key] == pytest.approx(res[key], rel=1e-4), key


@pytest.mark.parametrize("space", ["depth", "disparity"])
def test_a_perfect_depth_copy_scores_zero_in_both_spaces(data, tmp_path, capsys, space):
    pred = tmp_path / "pred"
    pred.mkdir()
    for name in ("0000", "0001"):  # affine copies of the true depth, as estimate writes them
        depth = np.load(data / f"{name}.depth.npy")
        np.save(pred / f"{name}.png.depth.npy", (0.2 * depth + 0.05).astype(np.float32))
    out = tmp_path / f"{space}.json"
    assert main(["mono", "evaluate", "--truth", str(data), "--pred", str(pred), "--space",
                 space, "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["abs_rel"] < 1e-5 and res["delta1"] == 1.0, res


def test_scenes_are_repeatable_and_never_replace_files(tmp_path, capsys):
    for name in "ab":
        assert main(["mono", "scenes", "--n", "1", "--width", "24", "--height", "16", "-o",
                     str(tmp_path / name), "--seed", "5"]) == 0
    assert (tmp_path / "a/0000.png").read_bytes() == (tmp_path / "b/0000.png").read_bytes()
    capsys.readouterr()
    assert main(["mono", "scenes", "--n", "1", "-o", str(tmp_path / "a")]) == 2
    assert "--overwrite" in _one_line_error(capsys)


def _bad_inputs(tmp_path):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG not really")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tiny)
    long_side = tmp_path / "long.png"
    Image.new("L", (20000, 9)).save(long_side)
    no_images = tmp_path / "no_images"
    no_images.mkdir()
    (no_images / "a.txt").write_text("x")
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(good)
    return [
        [garbage], [empty], [tiny], [long_side], [no_images], [tmp_path / "missing.png"],
        [good, "--tasks", "depth,colour"], [good, "--steps", "0"], [good, "--steps", "nan"],
        [good, "--members", "0"], [good, "--camera-height", "-1"],
        [good, "--camera-height", "inf"], [good, "--mode", "refine", "--steps", "2",
                                           "--refine-steps", "3"],
        [good, "--model", tmp_path / "no_model"],
    ]


def test_bad_input_fails_in_one_line_and_writes_nothing(tmp_path, capsys):
    for i, args in enumerate(_bad_inputs(tmp_path)):
        out = tmp_path / f"out{i}"
        assert _estimate(*args, "-o", out) == 2, args
        assert not out.exists(), args
        err = capsys.readouterr().err.strip()
        assert "error:" in err and "\n" not in err, err


def test_a_header_declaring_64_megapixels_is_refused_from_the_header(tmp_path, capsys):
    big = tmp_path / "big.png"
    Image.new("L", (16000, 4000)).save(big)  # a few kB of zeros declaring 16000 x 4000
    assert big.stat().st_size < 200_000
    assert _estimate(big, "-o", tmp_path / "out") == 2
    err = _one_line_error(capsys)
    assert "64.0 megapixels" in err and "50 megapixels" in err and "GiB" in err
    assert not (tmp_path / "out").exists()
    # from the header alone: nothing decoded (64 MP would be > 64 MB), torch not imported
    rc, torch_loaded, peak = _in_fresh_process(["mono", "estimate", big, "-o", tmp_path / "o"])
    assert (rc, torch_loaded) == (2, False) and peak < 150 * 2**20, peak


def _in_fresh_process(argv: list) -> tuple[int, bool, int]:
    """Run ``polydiff ARGV`` in a new interpreter: exit status, whether torch was imported,
    and the peak resident memory in bytes (VmHWM: of this process alone, not its parent)."""
    code = ("import sys\nfrom polydiff.cli import main\n"
            f"rc = main({[str(a) for a in argv]!r})\n"
            "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
            "print(rc, 'torch' in sys.modules, int(peak.split()[1]) * 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[-3]), out[-2] == "True", int(out[-1])


def test_non_finite_results_are_refused_and_nothing_is_written(tmp_path, capsys):
    import torch

    from polydiff.apps.contract import checkpoint_meta
    from polydiff.apps.mono.model import load_model
    from polydiff.diffusion.checkpoint import read_config, save_checkpoint

    model = load_model(None)
    with torch.no_grad():
        model.unet.conv_out.bias.fill_(float("nan"))
    meta = read_config(Path(__file__).resolve().parents[3] / "polydiff/weights/mono")
    save_checkpoint(tmp_path / "nan_model", model.unet, model.scheduler,
                    checkpoint_meta("mono", meta["config"]))
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(img)
    assert _estimate(img, "-o", tmp_path / "out", "--model", tmp_path / "nan_model",
                     "--tasks", "depth") == 2
    assert "not finite" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_bad_evaluate_scenes_and_calibrate_inputs(tmp_path, capsys):
    assert main(["mono", "evaluate", "--truth", str(tmp_path / "nothing")]) == 2
    assert main(["mono", "calibrate", str(tmp_path / "nothing.png")]) == 2
    for bad in (["--n", "0"], ["--width", "4"], ["--height", "100000"]):
        with pytest.raises(SystemExit) as stop:
            main(["mono", "scenes", *bad, "-o", str(tmp_path / "s")])
        assert stop.value.code == 2
        assert "outside" in capsys.readouterr().err
    assert main(["mono", "evaluate", "--truth", str(tmp_path), "--pred",
                 str(tmp_path / "nothing")]) == 2
    assert not (tmp_path / "s").exists()


def test_train_writes_a_loadable_checkpoint(tmp_path, data, capsys):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("net: {resolution: 16, block_out_channels: [8, 16], attention_levels: "
                   "[false, true], norm_num_groups: 4, attention_head_dim: 8}\n"
                   "data: {scenes: 2}\ntrain: {steps: 50, batch_size: 2, log_every: 1}\n")
    out = tmp_path / "ckpt"
    assert main(["mono", "train", "--config", str(cfg), "-o", str(out), "--device", "cpu",
                 "--train-steps", "2", "--seed", "3"]) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    meta = json.loads((out / "polydiff.json").read_text())
    assert meta["format"] == 1 and meta["app"] == "mono" and meta["train"]["steps"] == 2
    assert meta["config"]["net"]["resolution"] == 16 and meta["train"]["seed"] == 3
    est = tmp_path / "est"
    assert _estimate(data / "0000.png", "-o", est, "--model", out) == 0
    assert np.load(est / "0000.png.depth.npy").shape == (40, 56)
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {stepz: 2}\n")
    assert main(["mono", "train", "--config", str(bad), "-o", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_bundled_checkpoint_is_contract_format_and_a_plain_unet_folder_loads(tmp_path):
    import shutil

    from polydiff.apps.contract import load_app_checkpoint
    from polydiff.apps.mono.model import load_model
    from polydiff.weights import bundled_path

    ckpt = load_app_checkpoint("mono", None)
    assert ckpt.meta["format"] == 1 and ckpt.meta["kind"] is None
    model = load_model(None)
    assert model.resolution == 48 and model.scheduler.config.prediction_type == "v_prediction"
    plain = tmp_path / "plain"
    shutil.copytree(bundled_path("mono") / "unet", plain / "unet")
    assert load_model(plain).resolution == 48  # diffusers' layout without polydiff.json


def test_the_cli_module_imports_without_torch():
    code = ("import sys, polydiff.apps.mono.cli\n"
            "print(sorted(m for m in ('torch', 'numpy', 'PIL', 'diffusers') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_a_12_megapixel_photograph_stays_within_2_gib(tmp_path):
    photo = tmp_path / "photo.jpg"
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(small).resize((4000, 3000), Image.BICUBIC).save(photo, quality=90)
    rc, _, peak = _in_fresh_process(["mono", "estimate", photo, "-o", tmp_path / "out",
                                     "--device", "cpu"])
    assert rc == 0 and peak < 2 * 2**30, f"peak {peak / 2**30:.2f} GiB"
    assert np.load(tmp_path / "out" / "photo.jpg.depth.npy", mmap_mode="r").shape == (3000, 4000)


def test_only_rank_0_writes_and_prints(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")  # another process of a torchrun launch
    monkeypatch.setenv("WORLD_SIZE", "2")  # (one image: all of it is rank 0's share)
    assert _estimate(data / "0000.png", "-o", tmp_path / "out") == 0
    assert not (tmp_path / "out").exists() and capsys.readouterr().out == ""


def test_help_names_the_modes_for_what_they_are(capsys):
    with pytest.raises(SystemExit):
        main(["mono", "estimate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "clean-target loss (E2E-FT style)" in text and "refine: SDEdit-style" in text
    assert "PrimeDepth" not in text and "StableNormal" not in text
