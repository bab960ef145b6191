"""Column masks: exact line budgets, identical across policies, private randomness."""

import numpy as np
import pytest
import torch

from polydiff.medical.masks import budget, center_columns, fixed_mask
from polydiff.runtime import UserError


@pytest.mark.parametrize("width,acc,total,center", [(128, 4, 32, 10), (128, 8, 16, 5),
                                                    (320, 4, 80, 26), (368, 8, 46, 15)])
def test_line_counts_are_exact(width, acc, total, center):
    b = budget(width, acc)
    assert (b.total, b.center) == (total, center)
    for policy in ("random", "equispaced"):
        for seed in range(5):
            m = fixed_mask(policy, b, seed)
            assert m.mask.sum() == total and len(m.order) == total
            assert len(set(m.order.tolist())) == total
            assert m.mask[center_columns(b)].all()


def test_centre_block_is_contiguous_and_fastmri_placed():
    b = budget(128, 4)
    cols = np.sort(center_columns(b))
    assert (np.diff(cols) == 1).all()
    assert cols[0] == (128 - 10 + 1) // 2 and 64 in cols
    assert center_columns(b)[0] == 64  # ordered from the centre outwards


def test_equispaced_spacing_is_even():
    m = fixed_mask("equispaced", budget(128, 8), 0)
    outside = m.order[5:]
    gaps = np.diff(np.sort(outside))
    assert gaps.max() - gaps.min() <= 6  # even up to the skipped centre block


def test_seeded_and_private():
    b = budget(96, 4)
    np.random.seed(123)
    torch.manual_seed(123)
    before_np, before_torch = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    a = fixed_mask("random", b, 7)
    assert (a.order == fixed_mask("random", b, 7).order).all()
    assert not (a.order == fixed_mask("random", b, 8).order).all()
    assert (np.random.get_state()[1] == before_np).all()
    assert torch.equal(torch.get_rng_state(), before_torch)


def test_impossible_budgets_are_user_errors():
    with pytest.raises(UserError, match="centre lines"):
        budget(128, 16, center_fraction=0.08)
    with pytest.raises(UserError, match="no default centre fraction"):
        budget(128, 3)
    with pytest.raises(UserError):
        budget(128, 1)
    with pytest.raises(UserError, match="unknown mask policy"):
        fixed_mask("spiral", budget(128, 4), 0)


@pytest.mark.parametrize("fraction,match", [(-0.1, r"must be in \(0, 1\), got -0.1"),
                                            (1.5, r"must be in \(0, 1\)"),
                                            (0.01, "keeps no centre line; use at least 0.0312")])
def test_centre_fraction_messages_say_what_is_wrong(fraction, match):
    with pytest.raises(UserError, match=match) as info:
        budget(32, 4, center_fraction=fraction)
    assert "lines of centre fraction" not in str(info.value)


@pytest.mark.parametrize("width,acc,total", [(32, 4, 8), (64, 8, 8), (368, 4, 92)])
def test_single_line_start_keeps_only_the_dc_column(width, acc, total):
    b = budget(width, acc, start="line")
    assert (b.total, b.center) == (total, 1)
    assert center_columns(b).tolist() == [width // 2]  # the k-space centre (DC) column
    for policy in ("random", "equispaced"):
        m = fixed_mask(policy, b, 3)
        assert m.mask.sum() == total and m.order[0] == width // 2
        assert len(set(m.order.tolist())) == total


def test_single_line_start_refuses_a_centre_fraction_and_unknown_starts():
    with pytest.raises(UserError, match="centre fraction goes with the centre-block"):
        budget(32, 4, center_fraction=0.08, start="line")
    with pytest.raises(UserError, match="unknown acquisition start"):
        budget(32, 4, start="corner")
