"""What every command shares: devices, seeds, one-line errors and whole-or-nothing outputs."""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch


class UserError(Exception):
    """Bad input from a user: reported as one line and a non-zero exit, never a traceback."""


def pick_device(name: str = "auto") -> torch.device:
    """Resolve ``auto|cpu|cuda[:N]`` to a device; ``cuda`` without a GPU is a UserError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise UserError(f"unknown device {name!r} (use auto, cpu or cuda)") from err


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A private seeded generator; nothing touches torch's global random state."""
    return torch.Generator(device=device).manual_seed(int(seed))


def add_common_args(parser: argparse.ArgumentParser, *, model: bool = True) -> None:
    """``--device``, ``--seed`` and (optionally) ``--model`` as every command has them."""
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    if model:
        parser.add_argument(
            "--model", type=Path, default=None,
            help="checkpoint folder (default: the bundled checkpoint)",
        )


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; move its files into ``path`` only on success."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        yield tmp
        path.mkdir(parents=True, exist_ok=True)
        for item in tmp.iterdir():
            target = path / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def require_file(path: str | os.PathLike, what: str = "input") -> Path:
    """Return ``path`` as a Path, or raise a UserError naming the missing file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} file not found: {path}")
    return path


def nvdiffrast_status() -> str:
    """A short sentence saying whether nvdiffrast can be used here."""
    import importlib.util

    if importlib.util.find_spec("nvdiffrast") is None:
        return "not installed (the pure-PyTorch rasterizer is used)"
    if not torch.cuda.is_available():
        return "installed, but no CUDA device (the pure-PyTorch rasterizer is used)"
    return "usable (CUDA)"
