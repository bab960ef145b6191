"""Sample layout: exact round trips, channel groups, nested grids."""

from __future__ import annotations

import pytest
import torch

from polydiff.apps.pde.dataset import (
    coarsen,
    from_model_grid,
    grid_level,
    to_model_grid,
)
from polydiff.apps.pde.representation import Fields, Layout, known_mask


@pytest.mark.parametrize("domain", ["wavelet", "physical"])
def test_encode_decode_round_trip(small_fields: Fields, domain: str) -> None:
    layout = Layout(domain=domain, family="bior2.4", levels=1)
    layout.fit_scale(small_fields)
    x = layout.encode(small_fields)
    assert x.shape == (8, *layout.sample_shape(64, 64))
    back = layout.decode(x)
    for a, b in zip(back, small_fields):
        assert torch.max(torch.abs(a - b)) < 1e-5


@pytest.mark.parametrize("domain", ["wavelet", "physical"])
def test_time_pad_round_trip(small_fields: Fields, domain: str) -> None:
    layout = Layout(domain=domain, family="bior2.4", levels=1, time_pad=8)
    layout.fit_scale(small_fields)
    x = layout.encode(small_fields)
    assert x.shape == (8, *layout.sample_shape(64, 64))
    assert x.shape[-2] == (64 + 16) // layout.factor
    for a, b in zip(layout.decode(x), small_fields):
        assert torch.max(torch.abs(a - b)) < 1e-5


@pytest.mark.parametrize("pad, coupled", [(0, True), (8, False)])
def test_time_pad_cuts_the_periodic_wrap(small_fields: Fields, pad: int, coupled: bool) -> None:
    """bior2.4's periodic transform couples t_1 with t_nt; a mirrored pad as long as the filter
    leaves the coefficients that touch the first steps unchanged when the last step moves."""
    layout = Layout(family="bior2.4", levels=1, scale=[1.0] * 12, time_pad=pad)
    moved = small_fields.u.clone()
    moved[:, -1] += 1.0
    a = layout.encode(small_fields)[:, layout.group("u")]
    b = layout.encode(Fields(moved, small_fields.f, small_fields.u0))[:, layout.group("u")]
    first = slice(pad // 2, pad // 2 + 2)  # the coefficient rows of t_1 .. t_4
    changed = float(torch.max(torch.abs(a[:, :, first] - b[:, :, first])))
    assert (changed > 1e-3) == coupled


def test_time_pad_is_validated() -> None:
    with pytest.raises(ValueError, match="time_pad"):
        Layout(time_pad=-1)
    with pytest.raises(ValueError, match="time_pad"):
        Layout(time_pad=40).sample_shape(32, 32)


def test_u0_channels_hold_only_time_averages(small_fields: Fields) -> None:
    layout = Layout(levels=1, scale=[1.0] * 12)
    u0 = layout.encode(small_fields)[:, layout.group("u0")]
    # bands "da" and "dd" are details along time: zero for a state repeated along time
    assert torch.max(torch.abs(u0[:, 2:])) < 1e-5
    assert torch.max(torch.abs(u0[:, :2])) > 0.1


def test_known_mask_marks_the_condition_groups() -> None:
    layout = Layout(levels=1, scale=[1.0] * 12)
    mask = known_mask(layout, (1, 12, 16, 16), forcing_known=True)[0, :, 0, 0]
    assert mask.tolist() == [False] * 4 + [True] * 8
    mask = known_mask(layout, (1, 12, 16, 16), forcing_known=False)[0, :, 0, 0]
    assert mask.tolist() == [False] * 8 + [True] * 4


def test_solver_layout_round_trip_and_nesting(small_fields: Fields) -> None:
    u, f = from_model_grid(small_fields)
    assert u.shape == f.shape == (8, 65, 63)
    again = to_model_grid(u, f)
    for a, b in zip(again, small_fields):
        assert torch.equal(a, b)
    coarse = coarsen(small_fields)
    assert coarse.u.shape == (8, 32, 32) and coarse.u0.shape == (8, 32)
    # node i of the coarse grid is node 2i of the fine one, time k is time 2k
    assert torch.equal(coarse.u[:, 0, 3], small_fields.u[:, 1, 6])
    assert torch.equal(coarse.f[:, 5, 7], small_fields.f[:, 10, 14])


def test_grid_levels() -> None:
    assert [grid_level(n, 31) for n in (31, 63, 127)] == [0, 1, 2]
    with pytest.raises(ValueError, match="serves nx = 31, 63"):
        grid_level(50, 31)
    with pytest.raises(ValueError):
        grid_level(15, 31)
    assert grid_level(255, 31) == 3
    with pytest.raises(ValueError, match="up to 3 super-resolution levels.*16383 would need 9"):
        grid_level(16383, 31)


@pytest.mark.parametrize("domain, family", [("wavelet", "haar"), ("wavelet", "db4"),
                                            ("physical", "haar")])
def test_field_rms_from_the_scales_is_the_fields_rms(small_fields: Fields, domain: str,
                                                     family: str) -> None:
    """Orthonormal transforms keep sums of squares: the RMS of a field follows from the
    RMS of its sub-bands (the normalisation) alone."""
    layout = Layout(domain=domain, family=family, levels=1)
    layout.fit_scale(small_fields, floor=0.0)
    for name in ("u", "f"):
        field = getattr(small_fields, name)
        assert layout.field_rms(name) == pytest.approx(float(field.pow(2).mean().sqrt()),
                                                       rel=1e-5)


def test_band_weight_power_two_makes_the_loss_the_physical_mse(small_fields: Fields) -> None:
    """Haar is orthonormal: with weights scale² (mean 1 per field) the weighted mean square of
    a normalised error is the physical mean square of its inverse transform, up to one
    constant per field."""
    layout = Layout(domain="wavelet", family="haar")
    layout.fit_scale(small_fields)
    err = torch.randn(3, layout.channels, 32, 32, generator=torch.Generator().manual_seed(0))
    phys = layout.decode_all(err)  # (3, 3, 64, 64): u, f, u0
    w = layout.band_weights(2.0)
    assert torch.allclose(layout.band_weights(0.0), torch.ones(layout.channels))
    for k, name in enumerate(("u", "f")):
        group = layout.group(name)
        scale2 = torch.tensor(layout.scale[group]) ** 2
        weighted = (w[group, None, None] * err[:, group] ** 2).mean()
        assert w[group].mean() == pytest.approx(1.0)
        assert float(weighted) == pytest.approx(float(phys[:, k].pow(2).mean() / scale2.mean()),
                                                rel=1e-4)
