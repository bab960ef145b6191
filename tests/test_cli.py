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


def _modules_after(code: str) -> set[str]:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                          "print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_help_and_argument_errors_answer_without_torch():
    code = ("from polydiff.cli import main\n"
            "for argv in (['--help'], ['--version'], ['nosuchapp']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass")
    modules = _modules_after(code)
    assert "torch" not in modules and "numpy" not in modules


@pytest.mark.parametrize("app", list(APPS))
def test_app_help_answers_without_torch(app):
    code = (f"from polydiff.cli import main\ntry:\n    main([{app!r}, '--help'])\n"
            "except SystemExit:\n    pass")
    assert "torch" not in _modules_after(code)


def test_argument_errors_are_one_line_with_status_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", "--seed", "nan"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
