"""The normaliser: chunked float64 statistics, exact round trip, config round trip."""

import numpy as np
import pytest
import torch

from polydiff.apps.atmos.config import NormaliserConfig
from polydiff.apps.atmos.normalise import Normaliser


def test_fit_in_chunks_matches_the_formula_and_round_trips():
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(37, 2, 4, 5, generator=gen, dtype=torch.float64) * torch.tensor(
        [3.0, 500.0])[:, None, None] + torch.tensor([280.0, 1e5])[:, None, None]
    norm = Normaliser.fit(("t2m", "msl"), data.float(), chunk=8)
    ref = data.float().double().numpy()
    mean = ref.mean(0)
    np.testing.assert_allclose(norm.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(norm.std, (ref - mean).std(axis=(0, 2, 3)), rtol=1e-10)
    x = norm.encode(torch.as_tensor(ref))
    np.testing.assert_allclose(x.mean(0).numpy(), 0, atol=1e-9)
    np.testing.assert_allclose(x.std(dim=(0, 2, 3), unbiased=False).numpy(), 1, rtol=1e-9)
    torch.testing.assert_close(norm.decode(x), torch.as_tensor(ref))
    back = Normaliser.from_config(norm.to_config())
    assert back.variables == norm.variables and np.array_equal(back.mean, norm.mean)


@pytest.mark.parametrize("mean, std", [
    ([[[0.0, 1.0]]], [0.0]), ([[[0.0, 1.0]]], [float("nan")]),
    ([[[0.0], [1.0, 2.0]]], [1.0]), ([[[float("inf"), 1.0]]], [1.0])])
def test_a_damaged_normaliser_block_is_refused(mean, std):
    with pytest.raises(ValueError):
        NormaliserConfig(["t2m"], mean, std)


def test_config_variables_follow_the_kind_of_fields():
    import pytest

    from polydiff.apps.atmos.config import AtmosConfig
    from polydiff.physics.atmos_fields import FieldConfig
    from polydiff.runtime import UserError

    turb = FieldConfig(kind="turbulence")
    assert AtmosConfig(fields=turb).variables == ["vo", "tprate"]
    assert AtmosConfig().variables == ["t2m", "u10", "v10", "msl"]
    assert AtmosConfig(fields=turb).network["in_channels"] == 2
    with pytest.raises(UserError, match="vo, tprate"):
        AtmosConfig(fields=turb, variables=["t2m"])
