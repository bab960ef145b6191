"""Linear measurement operators y = A(x) + n, n ~ N(0, σ²), shared by guidance and apps.

Each operator maps a batch x (B, ...) to measurements y (B, ...) and has an adjoint
(for the real inner product ⟨a, b⟩ = Σ Re(conj(a)·b)), a pseudo-inverse used for hard
data consistency, a noise level ``sigma`` and a ``gain`` (the diagonal of A·Aᴴ, used to
inflate the likelihood variance by the uncertainty of x̂₀).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def channels_to_complex(x: Tensor) -> Tensor:
    """(B, 2, H, W) real/imaginary channels -> (B, H, W) complex."""
    if x.shape[1] != 2:
        raise ValueError(f"expected 2 channels (real, imag), got shape {tuple(x.shape)}")
    return torch.complex(x[:, 0], x[:, 1])


def complex_to_channels(z: Tensor) -> Tensor:
    """(B, H, W) complex -> (B, 2, H, W) real/imaginary channels."""
    return torch.stack([z.real, z.imag], dim=1)


def inner(a: Tensor, b: Tensor) -> Tensor:
    """Real inner product per batch item: Σ Re(conj(a)·b) over all but the first dim."""
    prod = torch.conj(a) * b if a.is_complex() else a * b
    return prod.real.flatten(1).sum(1) if prod.is_complex() else prod.flatten(1).sum(1)


class Operator:
    """A linear measurement operator with Gaussian noise of std ``sigma``."""

    sigma: float = 1.0
    gain: float = 1.0

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def adjoint(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def pinv(self, y: Tensor) -> Tensor:
        """Aᴴ(AAᴴ)⁻¹y; operators here have AAᴴ = gain·I."""
        return self.adjoint(y) / self.gain

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def residual(self, x: Tensor, y: Tensor) -> Tensor:
        """y − A(x)."""
        return y - self.forward(x)

    def misfit(self, x: Tensor, y: Tensor, extra_variance: Tensor | float = 0.0) -> Tensor:
        """Negative log-likelihood per batch item: Σ|y − A x|² / (2(σ² + gain·extra_variance))."""
        r = self.residual(x, y)
        var = self.sigma**2 + self.gain * extra_variance
        return inner(r, r) / (2 * var)

    def project(self, x: Tensor, y: Tensor) -> Tensor:
        """Hard data consistency: the closest x' to x with A(x') = y."""
        return x + self.pinv(self.residual(x, y))


class SparseLinear(Operator):
    """y = W · vec(x) for a (M, N) weight matrix over the flattened item x (N = numel/B).

    Covers point sensors (one 1 per row) and bilinear interpolation at off-grid points.
    """

    def __init__(self, weights: Tensor, item_shape: Sequence[int], sigma: float = 1.0) -> None:
        self.weights = weights.coalesce() if weights.is_sparse else weights.to_sparse()
        self.item_shape = tuple(item_shape)
        self.sigma = float(sigma)
        rows, values = self.weights.indices()[0], self.weights.values()
        # AAᴴ is diagonal when no two points share an entry: row norms² are its diagonal.
        self._row_gain = torch.zeros(self.weights.shape[0], dtype=values.dtype,
                                     device=values.device).index_add_(0, rows, values**2)
        self.gain = float(self._row_gain.mean()) if len(self._row_gain) else 1.0
        self._copies: dict[tuple, Tensor] = {}  # the weights on other devices / dtypes

    def to(self, *args, **kwargs) -> SparseLinear:
        """Move the weights like ``Tensor.to`` (a device and/or a dtype); returns self."""
        self.weights = self.weights.to(*args, **kwargs)
        self._row_gain = self._row_gain.to(*args, **kwargs)
        self._copies = {}
        return self

    def _weights_like(self, x: Tensor) -> Tensor:
        """The weights on ``x``'s device in ``x``'s dtype, converted once and then kept."""
        key = (x.device, x.dtype)
        if (self.weights.device, self.weights.dtype) == key:
            return self.weights
        if key not in self._copies:
            self._copies[key] = self.weights.to(device=x.device, dtype=x.dtype)
        return self._copies[key]

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        return torch.sparse.mm(self._weights_like(flat), flat.T).T

    def adjoint(self, y: Tensor) -> Tensor:
        w = self._weights_like(y)
        return torch.sparse.mm(w.transpose(0, 1), y.T).T.reshape(y.shape[0], *self.item_shape)

    def pinv(self, y: Tensor) -> Tensor:
        return self.adjoint(y / self._row_gain.to(y).clamp_min(1e-12))


class PointMask(SparseLinear):
    """Values of x at the True entries of ``mask`` (shape of one item), in row-major order."""

    def __init__(self, mask: Tensor, sigma: float = 1.0) -> None:
        idx = torch.nonzero(mask.flatten(), as_tuple=False).flatten()
        m, n = len(idx), mask.numel()
        weights = torch.sparse_coo_tensor(
            torch.stack([torch.arange(m, device=idx.device), idx]),
            torch.ones(m, device=idx.device), (m, n), check_invariants=False)
        super().__init__(weights, mask.shape, sigma)
        self.mask = mask.bool()


class AvgPool(Operator):
    """Coarse-graining: the mean over ``factor``×``factor`` blocks of the last two dims
    (or ``factor`` cells of the last dim with ``dims=1``)."""

    def __init__(self, factor: int, sigma: float = 1.0, dims: int = 2) -> None:
        if dims not in (1, 2):
            raise ValueError("AvgPool works over the last 1 or 2 dims")
        self.factor, self.sigma, self.dims = int(factor), float(sigma), dims
        self.gain = 1.0 / self.factor**dims

    def _check(self, x: Tensor) -> None:
        for n in x.shape[-self.dims:]:
            if n % self.factor:
                raise ValueError(f"grid size {n} is not a multiple of the factor {self.factor}")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        lead = x.shape[:-self.dims]
        flat = x.reshape(-1, 1, *x.shape[-self.dims:])
        pool = F.avg_pool2d if self.dims == 2 else F.avg_pool1d
        return pool(flat, self.factor).reshape(*lead, *[n // self.factor
                                                        for n in x.shape[-self.dims:]])

    def adjoint(self, y: Tensor) -> Tensor:
        out = y
        for d in range(1, self.dims + 1):
            out = out.repeat_interleave(self.factor, dim=-d)
        return out * self.gain


class Stack(Operator):
    """Several operators on the same x (multimodal observations); y is a list."""

    def __init__(self, operators: Sequence[Operator]) -> None:
        self.operators = list(operators)

    def forward(self, x: Tensor) -> list[Tensor]:
        return [op.forward(x) for op in self.operators]

    def adjoint(self, y: Sequence[Tensor]) -> Tensor:
        return sum(op.adjoint(yk) for op, yk in zip(self.operators, y, strict=True))

    def residual(self, x: Tensor, y: Sequence[Tensor]) -> list[Tensor]:
        return [op.residual(x, yk) for op, yk in zip(self.operators, y, strict=True)]

    def misfit(self, x: Tensor, y: Sequence[Tensor], extra_variance=0.0) -> Tensor:
        return sum(op.misfit(x, yk, extra_variance)
                   for op, yk in zip(self.operators, y, strict=True))

    def project(self, x: Tensor, y: Sequence[Tensor]) -> Tensor:
        """Projects onto each operator's constraint in turn (exact when they do not overlap)."""
        for op, yk in zip(self.operators, y, strict=True):
            x = op.project(x, yk)
        return x
