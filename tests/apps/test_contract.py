"""The app contract: numeric options, the all-or-nothing writer, checkpoint loading."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from polydiff.apps.contract import (
    Outputs,
    Parser,
    add_members,
    add_number,
    add_output,
    checkpoint_meta,
    load_app_checkpoint,
    seeded,
)
from polydiff.diffusion import build_network, make_scheduler, save_checkpoint
from polydiff.runtime import UMASK, UserError, atomic_directory, check_finite, check_memory


# ----------------------------------------------------------------------------- parser
def _parser():
    p = Parser(prog="t")
    add_number(p, "--guidance", lo=0, hi=10, default=1.0, help="weight")
    add_number(p, "--sigma", lo=0, lo_open=True, default=0.1, help="noise")
    add_members(p, 4, aliases=("--particles",))
    add_output(p, "file")
    return p


@pytest.mark.parametrize("bad", [["--guidance", "nan"], ["--guidance", "inf"],
                                 ["--guidance", "11"], ["--sigma", "0"], ["--sigma", "-1"],
                                 ["--members", "0"], ["--members", "2.5"]])
def test_bad_numbers_are_one_line_errors(bad, capsys):
    with pytest.raises(SystemExit) as info:
        _parser().parse_args([*bad, "-o", "x"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and bad[0] in err


def test_numbers_in_range_and_alias_and_help():
    args = _parser().parse_args(["--particles", "8", "--sigma", "0.5", "-o", "x"])
    assert args.members == 8 and args.sigma == 0.5 and args.guidance == 1.0
    text = _parser().format_help()
    assert "[0, 10]" in text and "> 0" in text and "--overwrite" in text


# ----------------------------------------------------------------------------- outputs
def test_outputs_appear_together_with_umask_permissions(tmp_path):
    a, b = tmp_path / "sub" / "a.nc", tmp_path / "sub" / "a.png"
    with Outputs() as out:
        out.file(a, named=True).write_text("A")
        out.file(b).write_text("B")
        assert not a.exists() and not b.exists()
    assert a.read_text() == "A" and b.read_text() == "B"
    assert stat.S_IMODE(a.stat().st_mode) == 0o666 & ~UMASK
    assert out.summary() == f"wrote {a}, {b}"
    assert sorted(p.name for p in a.parent.iterdir()) == ["a.nc", "a.png"]


def test_failure_leaves_nothing_and_removes_created_folders(tmp_path):
    with pytest.raises(RuntimeError), Outputs() as out:
        out.file(tmp_path / "new" / "deep" / "x.nc", named=True).write_text("half")
        raise RuntimeError("work failed")
    assert list(tmp_path.iterdir()) == []


def test_output_equal_to_input_is_refused(tmp_path):
    src = tmp_path / "x.nc"
    src.write_text("data")
    link = tmp_path / "link.nc"
    os.link(src, link)
    for target in (src, tmp_path / "." / "x.nc", link):
        with pytest.raises(UserError, match="also an input"), Outputs([src]) as out:
            out.file(target, named=True)
    assert src.read_text() == "data"


def test_unnamed_existing_file_needs_overwrite(tmp_path):
    mine = tmp_path / "mine.png"
    mine.write_text("user's picture")
    with pytest.raises(UserError, match="--overwrite"), Outputs() as out:
        out.file(tmp_path / "mine.nc", named=True)
        out.file(mine)
    assert mine.read_text() == "user's picture" and not (tmp_path / "mine.nc").exists()
    with Outputs(overwrite=True) as out:
        out.file(mine).write_text("plot")
    assert mine.read_text() == "plot"


def test_named_file_is_replaced_but_folders_never(tmp_path):
    named = tmp_path / "res.nc"
    named.write_text("old")
    with Outputs() as out:
        out.file(named, named=True).write_text("new")
    assert named.read_text() == "new"
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match="folder"), Outputs(overwrite=True) as out:
        out.file(tmp_path / "folder", named=True)


def test_two_outputs_with_one_name_are_refused(tmp_path):
    with pytest.raises(UserError, match="both"), Outputs() as out:
        out.file(tmp_path / "photo" / "depth.png")
        out.file(tmp_path / "photo" / "depth.png")


def test_unwritable_folder_is_refused_before_work(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(UserError, match="cannot write"), Outputs() as out:
        out.file(ro / "x.nc", named=True)


def test_other_ranks_write_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with Outputs() as out:
        out.file(tmp_path / "x.nc", named=True).write_text("ignored")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_leaves_no_partial_file(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, time
        from pathlib import Path
        from polydiff.apps.contract import Outputs
        from polydiff.cli import _terminate
        signal.signal(signal.SIGTERM, _terminate)
        with Outputs() as out:
            out.file(Path({str(tmp_path)!r}) / "o" / "x.nc", named=True).write_text("half")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_never_removes_what_it_did_not_write(tmp_path):
    out = tmp_path / "Pictures"
    (out / "holiday").mkdir(parents=True)
    (out / "holiday" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists"), atomic_directory(out) as tmp:
        (tmp / "holiday").mkdir()
        (tmp / "holiday" / "depth.png").write_text("result")
    assert (out / "holiday" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Pictures"]
    with atomic_directory(out, replace={"unet"}) as tmp:  # replacing a named entry is fine
        (tmp / "unet").mkdir()
    with atomic_directory(out, replace={"unet"}) as tmp:
        (tmp / "unet").mkdir()
        (tmp / "unet" / "w").write_text("2")
    assert (out / "unet" / "w").read_text() == "2" and (out / "holiday").is_dir()


# ----------------------------------------------------------------------------- checks
def test_check_finite_and_memory():
    check_finite(torch.ones(3), "x")
    with pytest.raises(UserError, match="1 of 3 .* likely cause: big step"):
        check_finite([1.0, float("nan"), 2.0], "the ensemble", "big step")
    check_memory(1e6, "a small array")
    with pytest.raises(UserError, match="needs about"):
        check_memory(1e18, "k-space (20000, 512, 512)")


# ----------------------------------------------------------------------------- loading
def _tiny_checkpoint(folder: Path, app: str, kind: str | None = None) -> Path:
    net = seeded(0, lambda: build_network({"type": "unet2d", "sample_size": 8,
                                           "in_channels": 1, "out_channels": 1,
                                           "block_out_channels": [8, 8],
                                           "down_block_types": ["DownBlock2D"] * 2,
                                           "up_block_types": ["UpBlock2D"] * 2,
                                           "layers_per_block": 1, "norm_num_groups": 4}))
    save_checkpoint(folder, net, make_scheduler("ddim"),
                    checkpoint_meta(app, {"size": 8}, kind=kind))
    return folder


def test_load_checks_the_app_and_kind(tmp_path):
    folder = _tiny_checkpoint(tmp_path / "m", "pde", kind="wdno")
    ckpt = load_app_checkpoint("pde", folder, kind="wdno")
    assert ckpt.config == {"size": 8} and not ckpt.net.training
    with pytest.raises(UserError, match="of the pde app, not of mri"):
        load_app_checkpoint("mri", folder)
    with pytest.raises(UserError, match="superres"):
        load_app_checkpoint("pde", folder, kind="superres")


def test_seeded_initialisation_is_repeatable_and_leaves_global_state():
    state = torch.random.get_rng_state()
    a = _tiny_net_params()
    b = _tiny_net_params()
    assert torch.equal(a, b) and torch.equal(state, torch.random.get_rng_state())


def _tiny_net_params():
    net = seeded(3, lambda: torch.nn.Linear(4, 4))
    return torch.cat([p.flatten() for p in net.parameters()])


def test_plain_diffusers_folder_uses_the_bundled_config(tmp_path):
    bundled = _tiny_checkpoint(tmp_path / "bundled", "mri")
    plain = tmp_path / "plain"
    _tiny_checkpoint(plain, "mri")
    (plain / "polydiff.json").unlink()
    ckpt = load_app_checkpoint("mri", plain, bundled=bundled)
    assert ckpt.meta["source"] == "diffusers" and ckpt.config == {"size": 8}
    cfg = json.loads((plain / "unet" / "config.json").read_text())
    cfg["in_channels"] = 3
    (plain / "unet" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="in_channels"):
        load_app_checkpoint("mri", plain, bundled=bundled)


def test_a_huge_folder_is_refused_quickly(tmp_path):
    with pytest.raises(UserError, match="not a checkpoint"):
        load_app_checkpoint("mri", Path("/"))
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "weights.pth").write_bytes(b"\x80")
    with pytest.raises(UserError, match="pickle"):
        load_app_checkpoint("mri", tmp_path)


def test_copy_weights_loads_the_same_layers_and_names_a_mismatch_in_one_line():
    import torch

    from polydiff.apps.contract import copy_weights

    source, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    copy_weights(target, source.state_dict(), "init_from old")
    assert torch.equal(target.weight, source.weight) and torch.equal(target.bias, source.bias)
    with pytest.raises(UserError, match=r"init_from old: .*weight has shape \(2, 4\)"):
        copy_weights(target, torch.nn.Linear(4, 2).state_dict(), "init_from old")
    with pytest.raises(UserError, match="init_from old: its network's layers differ"):
        copy_weights(target, torch.nn.Linear(3, 2, bias=False).state_dict(), "init_from old")
