"""SparseLinear and PointMask follow the field they act on: its dtype and its device."""

import pytest
import torch

from polydiff.diffusion.operators import PointMask, SparseLinear


def _bilinear(dtype=torch.float32) -> SparseLinear:
    """Two points reading a (1, 2, 3) item: one grid value, one mean of two values."""
    weights = torch.sparse_coo_tensor(torch.tensor([[0, 1, 1], [1, 3, 4]]),
                                      torch.tensor([1.0, 0.5, 0.5], dtype=dtype), (2, 6),
                                      check_invariants=True)
    return SparseLinear(weights, (1, 2, 3), sigma=0.1)


def _dense(op: SparseLinear) -> torch.Tensor:
    return op.weights.to_dense().to(torch.float64)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_forward_adjoint_and_pinv_follow_the_input_dtype(dtype):
    op = _bilinear(torch.float32 if dtype == torch.float64 else torch.float64)
    x = torch.arange(12, dtype=dtype).reshape(2, 1, 2, 3)
    y = op(x)
    assert y.dtype == dtype
    torch.testing.assert_close(y.double(), x.reshape(2, -1).double() @ _dense(op).T)
    back = op.adjoint(y)
    assert back.dtype == dtype and back.shape == x.shape
    # adjoint test <A x, y> = <x, A^T y>
    torch.testing.assert_close((y * y).sum().double(), (x * back).sum().double())
    assert op.pinv(y).dtype == dtype
    torch.testing.assert_close(op(op.pinv(y)), y)  # A A^+ = I


def test_to_moves_the_weights_and_the_row_gains():
    op = _bilinear().to(torch.float64)
    assert op.weights.dtype == torch.float64 and op._row_gain.dtype == torch.float64
    assert op.to("cpu") is op


def test_point_mask_reads_its_entries():
    mask = torch.zeros(2, 3, dtype=torch.bool)
    mask[0, 2] = mask[1, 0] = True
    x = torch.arange(6.0).reshape(1, 2, 3)
    torch.testing.assert_close(PointMask(mask)(x), torch.tensor([[2.0, 3.0]]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_weights_act_on_a_cuda_field_and_a_cuda_mask_works():
    op = _bilinear()
    x = torch.randn(3, 1, 2, 3, generator=torch.Generator().manual_seed(0))
    expected = op(x)
    y = op(x.cuda())
    assert y.device.type == "cuda"
    torch.testing.assert_close(y.cpu(), expected)
    torch.testing.assert_close(op.adjoint(y).cpu(), op.adjoint(expected))
    torch.testing.assert_close(op.pinv(y).cpu(), op.pinv(expected))
    moved = _bilinear().to("cuda")
    assert moved.weights.device.type == "cuda" and moved._row_gain.device.type == "cuda"
    torch.testing.assert_close(moved(x.cuda()).cpu(), expected)
    mask = torch.zeros(2, 3, dtype=torch.bool, device="cuda")
    mask[1, 1] = True
    assert PointMask(mask)(x.cuda()).device.type == "cuda"
