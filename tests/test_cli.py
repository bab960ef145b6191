import pytest

from polydiff.cli import APPS, build_parser, load_app, main


def test_help_lists_every_app_and_demo_info(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in [*APPS, "demo", "info"]:
        assert name in out


def test_info_runs(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "--device auto picks" in out and "nvdiffrast" in out


def test_missing_app_says_not_available(capsys):
    missing = [name for name in APPS if load_app(name) is None]
    if not missing:
        pytest.skip("every app is available")
    assert main([missing[0], "anything"]) == 2
    assert "not available yet" in capsys.readouterr().err


def test_cuda_without_gpu_is_one_line_error(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["demo", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "CUDA" in err


def test_parser_builds():
    assert build_parser().prog == "polydiff"
