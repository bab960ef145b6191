"""Column masks over Cartesian k-space with a fully sampled centre (fastMRI semantics).

Every policy gets the same budget, counted exactly in lines: ``K = round(W / acceleration)``
columns in total, of which the fixed start is either the contiguous centre block of
``round(W * center_fraction)`` lines (``start="block"``, fastMRI: 4x keeps 8 % centre lines,
8x keeps 4 %) or the single centre line (``start="line"``, the ADS paper's setting: every
other line is chosen). Randomness comes from a private
``numpy.random.Generator`` seeded by the caller; global random state is never touched.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from polydiff.runtime import UserError

# fastMRI's default centre fraction for each acceleration.
CENTER_FRACTIONS: dict[int, float] = {4: 0.08, 8: 0.04}
# What every acquisition starts from: the fastMRI centre block, or the one centre line.
STARTS = ("block", "line")


class Budget(NamedTuple):
    """How many columns a scan of width ``width`` may acquire."""

    width: int
    total: int  # K, all acquired columns
    center: int  # columns of the fully sampled centre block


class ColumnMask(NamedTuple):
    """A mask over the ``W`` columns and the order in which its ``K`` columns were taken."""

    mask: np.ndarray  # (W,) bool
    order: np.ndarray  # (K,) int64, every True column once, centre block first


def budget(width: int, acceleration: float, center_fraction: float | None = None,
           start: str = "block") -> Budget:
    """Line budget of a ``width``-column scan at ``acceleration`` (a UserError if impossible).

    ``start``: "block" fixes the centre block of ``center_fraction`` (fastMRI's default when
    None); "line" fixes only the centre column (``center`` = 1), and takes no centre fraction.
    """
    if not acceleration > 1:
        raise UserError(f"acceleration must be greater than 1, got {acceleration}")
    if start not in STARTS:
        raise UserError(f"unknown acquisition start {start!r} (use {', '.join(STARTS)})")
    if start == "line":
        if center_fraction is not None:
            raise UserError("a centre fraction goes with the centre-block start, not with "
                            "the single centre line")
        total = int(round(width / acceleration))
        if total < 1:
            raise UserError(f"acceleration {acceleration:g} leaves no line of {width}")
        return Budget(width, total, 1)
    if center_fraction is None:
        if acceleration not in CENTER_FRACTIONS:
            raise UserError(f"no default centre fraction for acceleration {acceleration:g}; "
                            f"known: {sorted(CENTER_FRACTIONS)} (or pass a centre fraction)")
        center_fraction = CENTER_FRACTIONS[int(acceleration)]
    if not 0 < center_fraction < 1:
        raise UserError(f"the centre fraction must be in (0, 1), got {center_fraction:g}")
    total = int(round(width / acceleration))
    center = int(round(width * center_fraction))
    if center < 1:
        raise UserError(f"centre fraction {center_fraction:g} of {width} columns keeps no "
                        f"centre line; use at least {1 / width:.3g}")
    if total < center:
        raise UserError(f"acceleration {acceleration:g} allows {total} of {width} columns, "
                        f"fewer than the {center} centre lines of centre fraction "
                        f"{center_fraction:g}")
    return Budget(width, total, center)


def center_columns(b: Budget) -> np.ndarray:
    """Indices of the centre block, ordered from the k-space centre outwards: (center,) int64."""
    start = (b.width - b.center + 1) // 2  # fastMRI's placement of the low frequencies
    cols = np.arange(start, start + b.center)
    return cols[np.argsort(np.abs(cols - b.width // 2), kind="stable")]


def _finish(b: Budget, extra: np.ndarray) -> ColumnMask:
    order = np.concatenate([center_columns(b), np.asarray(extra, dtype=np.int64)])
    mask = np.zeros(b.width, dtype=bool)
    mask[order] = True
    assert mask.sum() == b.total == len(order), "a column was chosen twice"
    return ColumnMask(mask, order.astype(np.int64))


def random_mask(b: Budget, rng: np.random.Generator) -> ColumnMask:
    """The centre block plus ``K - center`` columns drawn uniformly without replacement."""
    outside = np.setdiff1d(np.arange(b.width), center_columns(b))
    return _finish(b, rng.choice(outside, size=b.total - b.center, replace=False))


def equispaced_mask(b: Budget, rng: np.random.Generator) -> ColumnMask:
    """The centre block plus ``K - center`` columns evenly spaced, with a random offset."""
    outside = np.setdiff1d(np.arange(b.width), center_columns(b))
    n = b.total - b.center
    if n == 0:
        return _finish(b, np.zeros(0, dtype=np.int64))
    step = len(outside) / n
    offset = rng.uniform(0, step)
    return _finish(b, outside[np.floor(offset + step * np.arange(n)).astype(np.int64)])


FIXED_POLICIES = {"random": random_mask, "equispaced": equispaced_mask}


def fixed_mask(policy: str, b: Budget, seed: int) -> ColumnMask:
    """A ``random`` or ``equispaced`` mask from a private generator seeded by ``seed``."""
    if policy not in FIXED_POLICIES:
        raise UserError(f"unknown mask policy {policy!r} (use {', '.join(FIXED_POLICIES)})")
    return FIXED_POLICIES[policy](b, np.random.default_rng(seed))
