"""Sampling never goes back to the host inside the reverse loop (issue 9: on CUDA every
``.item()``, ``bool()``, ``.cpu()`` or upload of host data makes the step wait).

On the CPU the loop is run under a torch function mode that records such calls from the end
of the first step on; on a GPU ``tests/gpu/test_pde_cuda.py`` runs the same paths under
``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polydiff.apps.pde import control as control_module
from polydiff.apps.pde import sampling
from polydiff.apps.pde.model import bundled_folder, load_model
from tests.apps.pde.pde_testing import HostTraffic

pytestmark = pytest.mark.skipif(not (bundled_folder() / "polydiff.json").is_file(),
                                reason="bundled pde checkpoint missing")


def probed(monkeypatch, module, probe: HostTraffic) -> None:
    """Make ``module.sample_level`` run with ``probe`` among its hooks."""
    real = sampling.sample_level

    def with_probe(*args, hooks=(), **kwargs):
        return real(*args, hooks=[*hooks, probe], **kwargs)

    monkeypatch.setattr(module, "sample_level", with_probe)


def test_the_probe_sees_host_reads() -> None:
    """Positive control: the probe records .item(), bool() and uploads of host lists."""
    with HostTraffic() as probe:
        probe.after_step(None, None)
        x = torch.ones(3)
        x.sum().item()
        bool(x[0] > 0)
        torch.as_tensor([1.0, 2.0])
        torch.as_tensor(np.zeros(2))
        torch.as_tensor(x)  # a tensor already: no upload
    assert [name for name, _ in probe.calls] == ["item", "__bool__", "as_tensor", "as_tensor"]


def test_simulate_and_superres_steps_stay_on_the_device(monkeypatch) -> None:
    model = load_model(None, "cpu")
    superres = load_model(None, "cpu", kind="superres")
    u0 = torch.zeros(2, 64)
    u0[:, 20:40] = 1.0
    with HostTraffic() as probe:
        probed(monkeypatch, sampling, probe)
        fields = sampling.simulate_fields(model, u0, None, level=1, superres=superres, steps=4,
                                          generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(fields.u).all()
    assert probe.calls == []


def test_guided_control_steps_stay_on_the_device(monkeypatch) -> None:
    model = load_model(None, "cpu")
    x = np.arange(1, 32) / 32
    u0 = np.exp(-((x - 0.3) / 0.1) ** 2).astype(np.float32)
    with HostTraffic() as probe:
        probed(monkeypatch, control_module, probe)
        result = control_module.control(model, u0, 0.5 * u0, members=2, steps=4)
    assert np.isfinite(result.f).all()
    assert probe.calls == []
