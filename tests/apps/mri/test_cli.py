"""``polydiff mri`` end to end: phantoms, train, reconstruct, evaluate, and bad input."""

import h5py
import numpy as np
import pytest
import torch

from polydiff.apps.mri.train import run_training
from polydiff.cli import main
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
    return run_training({**TINY, "train": {**TINY["train"], "out_dir": str(out)}},
                        progress=False)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    path = tmp_path_factory.mktemp("mri_data") / "ph.h5"
    assert main(["mri", "phantoms", "--n", "2", "--size", "16", "-o", str(path)]) == 0
    return path


def _recon(src, dst, model, *extra):
    args = ["mri", "reconstruct", str(src), "--particles", "2", "--steps", "3", "-o", str(dst),
            "--device", "cpu", *extra]
    return main(args + (["--model", str(model)] if model else []))


def test_reconstruct_writes_the_specified_file(tiny_model, phantoms, tmp_path):
    out = tmp_path / "rec.h5"
    assert _recon(phantoms, out, tiny_model, "--acceleration", "4") == 0
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
    assert main(["mri", "evaluate", "--truth", str(phantoms), "--pred", str(out)]) == 0


def test_same_seed_same_file_and_policies_share_the_budget(tiny_model, phantoms, tmp_path):
    a, b, c = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "c.h5"
    assert _recon(phantoms, a, tiny_model, "--seed", "5") == 0
    assert _recon(phantoms, b, tiny_model, "--seed", "5") == 0
    assert a.read_bytes() == b.read_bytes()
    for policy in ("random", "equispaced"):
        assert _recon(phantoms, c, tiny_model, "--policy", policy, "--acceleration", "8") == 0
        with h5py.File(c) as f:
            assert (f["mask"][()].sum(1) == budget(16, 8).total).all()


def test_cropped_input_says_so(tiny_model, tmp_path):
    src = tmp_path / "big.h5"
    assert main(["mri", "phantoms", "--n", "1", "--size", "24", "-o", str(src)]) == 0
    assert _recon(src, tmp_path / "r.h5", tiny_model) == 0
    with h5py.File(tmp_path / "r.h5") as f:
        assert "24 -> 16" in f.attrs["preprocessing"]


def test_evaluate_of_the_truth_is_perfect(phantoms, tmp_path, capsys):
    pred = tmp_path / "perfect.h5"
    with h5py.File(phantoms) as f, h5py.File(pred, "w") as g:
        g["reconstruction"] = f["reconstruction_esc"][()]
    assert main(["mri", "evaluate", "--truth", str(phantoms), "--pred", str(pred)]) == 0
    out = capsys.readouterr().out
    assert "NMSE 0.0000" in out and "PSNR inf" in out and "SSIM 1.0000" in out


@pytest.mark.parametrize("case", ["no_kspace", "real", "nan", "acceleration", "missing"])
def test_bad_input_exits_nonzero_without_output(tiny_model, tmp_path, case, capsys):
    src = tmp_path / "in.h5"
    k = np.ones((1, 16, 16), np.complex64)
    extra = []
    with h5py.File(src, "w") as f:
        if case == "no_kspace":
            f["image"] = np.ones((1, 16, 16), np.float32)
        elif case == "real":
            f["kspace"] = np.ones((1, 16, 16), np.float32)
        elif case == "nan":
            k[0, 3, 3] = np.nan
            f["kspace"] = k
        else:
            f["kspace"] = k
    if case == "acceleration":
        extra = ["--acceleration", "8", "--center-fraction", "0.2"]  # 2 lines < 3 centre
    if case == "missing":
        src = tmp_path / "nope.h5"
    out = tmp_path / "out.h5"
    assert _recon(src, out, tiny_model, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("polydiff mri: error:")
    assert not out.exists() and not (tmp_path / "out.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_bundled_checkpoint_reconstructs_out_of_the_box(tmp_path):
    assert (bundled_path("mri") / "polydiff.json").is_file()
    src = tmp_path / "ph.h5"
    assert main(["mri", "phantoms", "--n", "1", "--size", "32", "-o", str(src)]) == 0
    assert _recon(src, tmp_path / "r.h5", None) == 0
    with h5py.File(tmp_path / "r.h5") as f:
        assert f.attrs["model"] == str(bundled_path("mri"))
        rec = f["reconstruction"][()]
    assert rec.shape[0] == 1 and np.isfinite(rec).all()
    torch.testing.assert_close(torch.tensor(rec.shape[1:]), torch.tensor([32, 32]))


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


@pytest.mark.slow
def test_demo_writes_its_files(tmp_path):
    from polydiff.apps.mri.cli import demo

    summary = demo(tmp_path / "mri", device=torch.device("cpu"), seed=0)
    assert "SSIM" in summary and "zero-filled" in summary
    for name in ("phantoms.h5", "recon.h5", "recon.png"):
        assert (tmp_path / "mri" / name).is_file()
