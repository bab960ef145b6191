import pytest
import torch

from polydiff.diffusion.predictions import PREDICTION_TYPES, convert, to_x0, training_target


@pytest.mark.parametrize("kind", PREDICTION_TYPES)
def test_training_target_recovers_x0(kind):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    ab = torch.rand(8, 1, generator=g) * 0.98 + 0.01
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    target = training_target(x0, eps, ab, kind)
    torch.testing.assert_close(to_x0(target, x_t, ab, kind), x0, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("src", PREDICTION_TYPES)
@pytest.mark.parametrize("dst", PREDICTION_TYPES)
def test_conversions_agree_with_targets(src, dst):
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    ab = torch.tensor(0.37)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    out = convert(training_target(x0, eps, ab, src), x_t, ab, src, dst)
    torch.testing.assert_close(out, training_target(x0, eps, ab, dst), rtol=1e-4, atol=1e-5)


def test_unknown_prediction_type():
    with pytest.raises(ValueError, match="prediction_type"):
        to_x0(torch.zeros(1), torch.zeros(1), 0.5, "score")
