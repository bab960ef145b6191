"""What every layer shares: user errors, devices, seeds, whole-or-nothing files, size and
finiteness checks.

Importing this module does not import torch: the CLI answers ``--help`` and argument errors
before any heavy import. Functions that need torch import it when called.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class UserError(Exception):
    """Bad input from a user: reported as one line and exit status 2, never a traceback."""


# ----------------------------------------------------------------------------- processes
def process_rank() -> int:
    """This process's rank under torchrun (0 when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """True in the one process that prints and writes (rank 0 under torchrun)."""
    return process_rank() == 0


# ----------------------------------------------------------------------------- devices
def pick_device(name: str = "auto") -> torch.device:
    """Resolve ``auto|cpu|cuda[:N]`` to a device; ``cuda`` without a GPU is a UserError."""
    import torch

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
    import torch

    return torch.Generator(device=device).manual_seed(int(seed))


# ----------------------------------------------------------------------------- checks
def require_file(path: str | os.PathLike, what: str = "input") -> Path:
    """Return ``path`` as a Path, or raise a UserError naming the missing file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} file not found: {path}")
    return path


def check_finite(values, what: str, hint: str = "") -> None:
    """Raise a UserError when ``values`` (array or tensor) holds NaN or infinity.

    ``hint`` names the likely cause (e.g. "a guidance weight too large for this input").
    """
    import numpy as np

    if hasattr(values, "detach"):  # a torch tensor: reduce on its own device
        bad = int((~values.detach().isfinite()).sum())
        total = values.numel()
    else:
        arr = np.asarray(values)
        bad = int(arr.size - np.isfinite(arr).sum()) if arr.dtype.kind in "fc" else 0
        total = arr.size
    if bad:
        cause = f"; likely cause: {hint}" if hint else ""
        raise UserError(f"{what} is not finite ({bad} of {total} values are NaN or "
                        f"infinite){cause}; nothing was written")


def available_memory() -> int:
    """Bytes of memory this process may still allocate (MemAvailable, cgroup limit)."""
    avail = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    if avail is None:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            text = Path(limit_file).read_text().strip()
            if text != "max":
                avail = min(avail, int(text))
    return int(avail)


def format_bytes(n: float) -> str:
    """``n`` bytes as a short human string (1.5 GiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} PiB"


def check_memory(nbytes: float, what: str, *, fraction: float = 0.8) -> None:
    """Refuse work whose estimated peak ``nbytes`` exceeds ``fraction`` of free memory."""
    if not math.isfinite(nbytes) or nbytes < 0:
        raise UserError(f"{what}: the size estimate is not a number")
    free = available_memory()
    if nbytes > fraction * free:
        raise UserError(f"{what} needs about {format_bytes(nbytes)} of memory, more than the "
                        f"{format_bytes(fraction * free)} this machine can give")


# ----------------------------------------------------------------------------- files
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()


def publish(path: Path, *, folder: bool = False) -> None:
    """Give a finished temporary file (or folder tree) the permissions the umask allows."""
    mode = (0o777 if folder else 0o666) & ~UMASK
    if folder:
        for root, _dirs, files in os.walk(path):
            os.chmod(root, mode)
            for name in files:
                os.chmod(Path(root) / name, 0o666 & ~UMASK)
    else:
        os.chmod(path, mode)


def make_parent(path: Path) -> list[Path]:
    """Create the missing folders above ``path``; return the ones created (outermost first)."""
    created = []
    parent = path.parent
    while parent != parent.parent and not parent.exists():
        created.append(parent)
        parent = parent.parent
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the output folder {path.parent}: "
                        f"{err.strerror or err}") from err
    return created[::-1]


def remove_empty(folders: Iterable[Path]) -> None:
    """Remove the folders this process created, innermost first, if they are still empty."""
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()


def temp_beside(path: Path, *, folder: bool = False) -> Path:
    """A new hidden temporary file (or folder) in the folder of ``path``."""
    try:
        if folder:
            return Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part",
                                         dir=path.parent))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix,
                                   dir=path.parent)
    except OSError as err:
        raise UserError(f"cannot write into {path.parent}: {err.strerror or err}") from err
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The file gets the permissions the umask allows. Folders this call created are removed
    again when the work fails. Replacing ``path`` is the caller's decision (see
    :class:`polydiff.apps.contract.Outputs` for the rules a command applies).
    """
    path = Path(path)
    created = make_parent(path)
    tmp = temp_beside(path)
    ok = False
    try:
        yield tmp
        publish(tmp)
        os.replace(tmp, path)
        ok = True
    finally:
        tmp.unlink(missing_ok=True)
        if not ok:
            remove_empty(created)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *,
                     replace: Iterable[str] | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; move its entries into ``path`` on success.

    Nothing that this call did not write is ever removed. An entry of the result may take
    the place of an existing one only when its name is in ``replace`` (e.g. the ``unet/``
    of an earlier export of the same checkpoint); any other clash is a UserError, raised
    before anything in ``path`` changes.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"output folder {path} exists and is not a folder")
    created = make_parent(path / "x")
    tmp = temp_beside(path, folder=True)
    allowed = set(replace or ())
    ok = False
    try:
        yield tmp
        clashes = [item.name for item in tmp.iterdir()
                   if (path / item.name).exists() and item.name not in allowed]
        if clashes:
            raise UserError(f"{path / clashes[0]} already exists; it was not replaced")
        for item in sorted(tmp.iterdir()):
            target = path / item.name
            publish(item, folder=item.is_dir())
            if target.is_dir() and not target.is_symlink():
                old = temp_beside(target, folder=True)  # swap aside, then drop our own old copy
                os.replace(target, old / "old")
                os.replace(item, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(item, target)
        ok = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            remove_empty(created)


def nvdiffrast_status() -> str:
    """A short sentence saying whether nvdiffrast can be used here."""
    import importlib.util

    import torch

    if importlib.util.find_spec("nvdiffrast") is None:
        return "not installed (the pure-PyTorch rasterizer is used)"
    if not torch.cuda.is_available():
        return "installed, but no CUDA device (the pure-PyTorch rasterizer is used)"
    return "usable (CUDA)"
