"""Helpers of the solver tests."""

from __future__ import annotations


def count_steps(monkeypatch) -> list[int]:
    """Count the SSP-RK3 steps of the next solves (``march`` of every 1-D solver): the
    returned one-item list holds the count."""
    from polydiff.physics import advection

    calls = [0]
    real = advection.ssp_rk3_step

    def counted(rhs, t, u, dt):
        calls[0] += 1
        return real(rhs, t, u, dt)

    monkeypatch.setattr(advection, "ssp_rk3_step", counted)
    return calls
