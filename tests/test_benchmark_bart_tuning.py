"""The BART peer's λ search in benchmarks/mri_ads: the 1-3-10 ladder it widens along."""

from __future__ import annotations

import pytest

from benchmarks.mri_ads import BART_LAMBDAS, ladder_neighbour


@pytest.mark.parametrize("lam, below, above", [(0.001, 0.0003, 0.003), (0.003, 0.001, 0.01),
                                               (0.03, 0.01, 0.1), (0.0001, 3e-5, 0.0003)])
def test_ladder_neighbours(lam: float, below: float, above: float) -> None:
    assert ladder_neighbour(lam, down=True) == below
    assert ladder_neighbour(lam, down=False) == above


def test_the_ladder_walks_back_to_where_it_started() -> None:
    for lam in BART_LAMBDAS:
        assert ladder_neighbour(ladder_neighbour(lam, down=True), down=False) == lam
