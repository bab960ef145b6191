"""`polydiff mono ...` end to end with the bundled checkpoint; bad input leaves nothing."""

import json

import numpy as np
import pytest
from PIL import Image

from polydiff.cli import main
from polydiff.weights import bundled_path

ALL_FILES = {"depth.npy", "depth.png", "depth_vis.png", "normals.npy", "normals.png",
             "intrinsics.json", "points.ply", "estimate.json"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    assert main(["mono", "scenes", "--n", "2", "--size", "56x40", "-o", str(root / "set"),
                 "--seed", "3"]) == 0
    return root / "set"


def _estimate(*args):
    return main(["mono", "estimate", *map(str, args), "--device", "cpu"])


def test_bundled_checkpoint_exists():
    assert (bundled_path("mono") / "unet" / "diffusion_pytorch_model.safetensors").is_file()


def test_estimate_writes_every_file_at_input_size(data, tmp_path):
    out = tmp_path / "out"
    assert _estimate(data / "0000" / "image.png", "-o", out) == 0
    assert ALL_FILES <= {p.name for p in out.iterdir()}
    assert np.load(out / "depth.npy").shape == (40, 56)
    assert np.load(out / "depth.npy").dtype == np.float32
    normals = np.load(out / "normals.npy")
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1, atol=1e-4)
    png = Image.open(out / "depth.png")
    assert png.size == (56, 40) and np.asarray(png).dtype == np.uint16
    intr = json.loads((out / "intrinsics.json").read_text())
    assert set(intr) == {"fx", "fy", "cx", "cy", "width", "height"}
    assert (intr["width"], intr["height"]) == (56, 40)


def test_folder_grayscale_rgba_and_any_size(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 255, (33, 47), dtype=np.uint8)).save(folder / "g.png")
    Image.fromarray(rng.integers(0, 255, (70, 20, 4), dtype=np.uint8)).save(folder / "a.png")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert _estimate(folder, "-o", out, "--tasks", "depth,normals") == 0
    assert np.load(out / "g" / "depth.npy").shape == (33, 47)
    assert np.load(out / "a" / "normals.npy").shape == (70, 20, 3)


def test_same_seed_same_files(data, tmp_path):
    img = data / "0001" / "image.png"
    args = ["--mode", "ensemble", "--steps", "2", "--ensemble", "2", "--tasks", "depth"]
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert _estimate(img, "-o", tmp_path / name, "--seed", seed, *args) == 0
    a, b, c = (np.load(tmp_path / n / "depth.npy") for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert (tmp_path / "a/depth.png").read_bytes() == (tmp_path / "b/depth.png").read_bytes()
    assert (tmp_path / "a" / "depth_uncertainty.npy").is_file()


@pytest.mark.parametrize("mode", ["refine", "one-step"])
def test_modes_run(data, tmp_path, mode):
    out = tmp_path / mode
    assert _estimate(data / "0000" / "image.png", "-o", out, "--mode", mode, "--steps", "4",
                     "--refine-steps", "2", "--ensemble", "1") == 0
    assert (out / "depth.npy").is_file()


def test_calibrate_prints_intrinsics(data, capsys):
    assert main(["mono", "calibrate", str(data / "0000" / "image.png"), "--device", "cpu"]) == 0
    intr = json.loads(capsys.readouterr().out)
    assert intr["width"] == 56 and intr["height"] == 40 and intr["fx"] > 0


def test_evaluate_reports_metrics(data, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["mono", "evaluate", "--data", str(data), "--device", "cpu", "-o", str(out)]) == 0
    res = json.loads(out.read_text())
    for key in ("abs_rel", "delta1", "delta2", "delta3", "rmse", "normal_mean",
                "normal_median", "normal_below_11_25", "e_f", "e_b", "images_per_second"):
        assert np.isfinite(res[key])
    assert res["n"] == 2 and 0 <= res["delta1"] <= res["delta2"] <= res["delta3"] <= 1


def test_scenes_are_repeatable(tmp_path):
    for name in "ab":
        assert main(["mono", "scenes", "--n", "1", "--size", "24x16", "-o",
                     str(tmp_path / name), "--seed", "5"]) == 0
    assert (tmp_path / "a/0000/image.png").read_bytes() == \
        (tmp_path / "b/0000/image.png").read_bytes()


def _bad_inputs(tmp_path):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG not really")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tiny)
    huge = tmp_path / "huge.png"
    Image.new("L", (20000, 9)).save(huge)
    no_images = tmp_path / "no_images"
    no_images.mkdir()
    (no_images / "a.txt").write_text("x")
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(good)
    return [
        [garbage], [empty], [tiny], [huge], [no_images], [tmp_path / "missing.png"],
        [good, "--tasks", "depth,colour"], [good, "--steps", "0"],
        [good, "--camera-height", "-1"], [good, "--model", tmp_path / "no_model"],
    ]


def test_bad_input_fails_and_writes_nothing(tmp_path, capsys):
    for i, args in enumerate(_bad_inputs(tmp_path)):
        out = tmp_path / f"out{i}"
        assert _estimate(*args, "-o", out) == 2, args
        assert not out.exists(), args
        err = capsys.readouterr().err.strip()
        assert err.startswith("polydiff mono: error:") and "\n" not in err, err


def test_bad_evaluate_and_calibrate_inputs(tmp_path):
    assert main(["mono", "evaluate", "--data", str(tmp_path / "nothing")]) == 2
    assert main(["mono", "calibrate", str(tmp_path / "nothing.png")]) == 2
    assert main(["mono", "scenes", "--n", "1", "--size", "abc", "-o", str(tmp_path / "s")]) == 2
    assert not (tmp_path / "s").exists()


def test_train_writes_a_loadable_checkpoint(tmp_path, data):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("net: {resolution: 16, block_out_channels: [8, 16], attention_levels: "
                   "[false, true], norm_num_groups: 4, attention_head_dim: 8}\n"
                   "data: {scenes: 2}\ntrain: {steps: 2, batch_size: 2, log_every: 1}\n")
    out = tmp_path / "ckpt"
    assert main(["mono", "train", "--config", str(cfg), "-o", str(out), "--device", "cpu"]) == 0
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    est = tmp_path / "est"
    assert _estimate(data / "0000" / "image.png", "-o", est, "--model", out) == 0
    assert np.load(est / "depth.npy").shape == (40, 56)
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {stepz: 2}\n")
    assert main(["mono", "train", "--config", str(bad), "-o", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
