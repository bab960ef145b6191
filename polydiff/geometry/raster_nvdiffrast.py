"""The nvdiffrast backend: ``RasterizeCudaContext`` only (the GL context fails headless).

nvdiffrast comes from the ``gpu`` extra (PyPI ``diffrp-nvdiffrast``, compiled by torch's
cpp_extension at first use, with ninja). With recent torch the compiled plugin only
imports once its build folder is on ``sys.path``, so that is done before loading it.
"""

from __future__ import annotations

import importlib.util
import sys

import torch
from torch import Tensor


class Unavailable(RuntimeError):
    """nvdiffrast cannot run here; the message is the one-line reason."""


def load_nvdiffrast():
    """Import ``nvdiffrast.torch`` and build / load its CUDA plugin, or raise Unavailable."""
    if importlib.util.find_spec("nvdiffrast") is None:
        raise Unavailable("nvdiffrast is not installed (pip install 'polydiff[gpu]')")
    if not torch.cuda.is_available():
        raise Unavailable("no CUDA device")
    try:
        import nvdiffrast
        import nvdiffrast.torch as dr
        from nvdiffrast.torch import ops
        from torch.utils import cpp_extension

        name = ops.sanitize_name(f"nvdiffrast_plugin_{nvdiffrast.__version__}"
                                 f"_torch{torch.__version__}")
        build_dir = cpp_extension._get_build_directory(name, False)
        if build_dir not in sys.path:
            sys.path.insert(0, build_dir)
        ops._get_plugin(gl=False)
    except Exception as err:  # a failed compile or import: report it in one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise Unavailable(f"its CUDA plugin did not load: {first}") from err
    return dr


class NvdiffrastRasterizer:
    """nvdiffrast's CUDA rasterizer behind the common interface (float32 CUDA tensors)."""

    name = "nvdiffrast"

    def __init__(self, device: torch.device | str = "cuda") -> None:
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise Unavailable(f"it needs a CUDA device, not {self.device}")
        self.dr = load_nvdiffrast()
        try:
            self.ctx = self.dr.RasterizeCudaContext(device=self.device)
        except Exception as err:
            raise Unavailable(f"RasterizeCudaContext failed: {err}") from err

    def rasterize(self, pos: Tensor, tri: Tensor,
                  resolution: tuple[int, int]) -> tuple[Tensor, Tensor | None]:
        return self.dr.rasterize(self.ctx, pos.float().contiguous(), tri.int().contiguous(),
                                 (int(resolution[0]), int(resolution[1])))

    def interpolate(self, attr: Tensor, rast: Tensor, tri: Tensor) -> Tensor:
        out, _ = self.dr.interpolate(attr.float().contiguous(), rast, tri.int().contiguous())
        return out

    def antialias(self, color: Tensor, rast: Tensor, pos: Tensor, tri: Tensor) -> Tensor:
        return self.dr.antialias(color.float().contiguous(), rast, pos.float().contiguous(),
                                 tri.int().contiguous())
