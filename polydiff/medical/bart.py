"""BART's .cfl/.hdr files and a wrapper around ``bart pics`` (used when ``bart`` is on PATH).

A BART array is two files: ``name.hdr`` (text: ``# Dimensions`` then the sizes) and
``name.cfl`` (raw complex64, column-major / Fortran order).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from polydiff.runtime import UserError


def write_cfl(name: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (any shape, cast to complex64) as ``name.hdr`` + ``name.cfl``."""
    name = Path(name)
    dims = " ".join(str(d) for d in array.shape)
    name.with_suffix(".hdr").write_text(f"# Dimensions\n{dims}\n")
    np.asfortranarray(array.astype(np.complex64)).T.tofile(name.with_suffix(".cfl"))


def read_cfl(name: str | os.PathLike) -> np.ndarray:
    """Read ``name.hdr`` + ``name.cfl`` into a complex64 array of the stored shape."""
    name = Path(name)
    try:
        lines = name.with_suffix(".hdr").read_text().splitlines()
        dims = tuple(int(d) for d in lines[1].split())
    except (OSError, IndexError, ValueError) as err:
        raise UserError(f"{name}.hdr is not a BART header ({err})") from None
    data = np.fromfile(name.with_suffix(".cfl"), dtype=np.complex64)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{name}.cfl holds {data.size} values, its header says {dims}")
    return data.reshape(dims, order="F")


def bart_available() -> bool:
    """True when the ``bart`` executable is on PATH."""
    return shutil.which("bart") is not None


def bart(command: str, *inputs: np.ndarray) -> np.ndarray:
    """Run ``bart <command> in_0 ... in_n out`` on arrays through temporary .cfl files."""
    if not bart_available():
        raise UserError("the 'bart' executable is not on PATH (Debian/Ubuntu: apt install bart)")
    with tempfile.TemporaryDirectory(prefix="polydiff_bart_") as tmp:
        names = []
        for i, arr in enumerate(inputs):
            write_cfl(Path(tmp) / f"in{i}", arr)
            names.append(str(Path(tmp) / f"in{i}"))
        out = str(Path(tmp) / "out")
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        proc = subprocess.run(["bart", *command.split(), *names, out], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bart {command} failed: {proc.stderr.strip()[-300:]}")
        return read_cfl(out)


def pics(kspace: np.ndarray, mask: np.ndarray, lam: float, *, regularizer: str = "wavelet",
         iters: int = 100, maps: np.ndarray | None = None) -> np.ndarray:
    """BART ``pics`` reconstruction of one slice: magnitude image (H, W) float32.

    kspace: (H, W) single-coil or (C, H, W) with ``maps`` (C, H, W), centred (fastMRI) k-space;
    mask: (W,) bool over columns; ``regularizer`` "wavelet" (``-R W:3:0:lam``) or "tv"
    (``-R T:3:0:lam``); λ is relative to the data (k-space scaled to unit maximum).
    """
    ksp = kspace[None] if kspace.ndim == 2 else kspace
    sens = np.ones_like(ksp) if maps is None else maps
    scale = float(np.abs(ksp).max()) or 1.0
    ksp = ksp * mask[None, None, :] / scale
    # BART's axes: (x, y, z, coil); our (C, H, W) -> (H, W, 1, C).
    to_bart = lambda a: np.transpose(a, (1, 2, 0))[:, :, None, :]  # noqa: E731
    reg = {"wavelet": "W", "tv": "T"}[regularizer]
    img = bart(f"pics -d0 -S -i {iters} -R {reg}:3:0:{lam}", to_bart(ksp), to_bart(sens))
    return (np.abs(img.reshape(img.shape[:2])) * scale).astype(np.float32)
