"""Periodic networks: transposed convolutions wrap around, and a periodic UNet1DModel (the
PDE-Refiner backbone) commutes with circular shifts."""

import torch
from torch import nn

from polydiff.diffusion.networks import build_network, make_periodic


def _periodic_transposed_reference(x: torch.Tensor, conv: nn.ConvTranspose1d) -> torch.Tensor:
    """The definition: input i adds w[k] x[i] to output (i s + k − p) mod (s L)."""
    b, _, length = x.shape
    s, p = conv.stride[0], conv.padding[0]
    out = torch.zeros(b, conv.out_channels, s * length, dtype=x.dtype)
    for i in range(length):
        for k in range(conv.kernel_size[0]):
            j = (i * s + k - p) % (s * length)
            out[:, :, j] += torch.einsum("bc,co->bo", x[:, :, i], conv.weight[:, :, k])
    return out + conv.bias[None, :, None]


def test_transposed_convolution_wraps_around():
    torch.manual_seed(0)
    # kernel - 2 padding = stride: the output is stride x longer, a periodic up-sampling
    for kernel, stride, padding in ((4, 2, 1), (5, 3, 1), (6, 2, 2)):
        conv = nn.ConvTranspose1d(3, 2, kernel, stride, padding).double()
        x = torch.randn(2, 3, 8, dtype=torch.float64)
        expected = _periodic_transposed_reference(x, conv)
        zero_padded = conv(x)
        make_periodic(conv)
        make_periodic(conv)  # applying twice changes nothing
        out = conv(x)
        assert not torch.allclose(zero_padded, expected)  # the wrap-around is what differs
        torch.testing.assert_close(out, expected)


def test_periodic_unet1d_commutes_with_circular_shifts():
    chans = [8, 16, 16]
    net = build_network({
        "type": "unet1d", "periodic": True, "sample_size": 32, "in_channels": 2,
        "out_channels": 1, "block_out_channels": chans,
        "down_block_types": ["DownResnetBlock1D"] * 3, "up_block_types": ["UpResnetBlock1D"] * 2,
        "mid_block_type": "MidResTemporalBlock1D", "out_block_type": "OutConv1DBlock",
        "act_fn": "mish", "use_timestep_embedding": True, "time_embedding_type": "positional",
        "norm_num_groups": 8}).double().eval()
    x = torch.randn(2, 2, 32, dtype=torch.float64)
    t = torch.tensor([3.0, 500.0])
    out = net(x, t).sample
    for shift in (4, 12):  # multiples of the total down-sampling (4)
        shifted = net(torch.roll(x, shift, -1), t).sample
        torch.testing.assert_close(shifted, torch.roll(out, shift, -1))
