"""Shared pieces of the pde app tests: a tiny untrained model and small solver data."""

from __future__ import annotations

import pytest
import torch

from polydiff.apps.pde.config import PDEConfig
from polydiff.apps.pde.dataset import BurgersData, solve_trajectories
from polydiff.apps.pde.model import PDEModel
from polydiff.apps.pde.representation import Fields, Layout
from polydiff.apps.pde.train import make_scheduler_for
from polydiff.diffusion.networks import build_network

TINY_NET = {"block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4,
            "down_block_types": ["DownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "UpBlock2D"]}


@pytest.fixture(scope="session")
def small_fields() -> Fields:
    """8 solver trajectories on the 2x grid (model grid 64 x 64)."""
    data = BurgersData(n=8, finer=1)
    return solve_trajectories(data, 1, torch.Generator().manual_seed(0))


@pytest.fixture
def tiny_model():
    """Factory of untrained tiny models (see :func:`make_tiny_model`)."""
    return make_tiny_model


def make_tiny_model(kind: str = "wdno", domain: str = "wavelet", fields: Fields | None = None,
                    seed: int = 0) -> PDEModel:
    """An untrained model with unit scales (or scales fitted on ``fields``)."""
    config = PDEConfig(kind=kind, layout=Layout(domain=domain), data=BurgersData(),
                       network=dict(TINY_NET))
    config.layout.scale = [1.0] * config.layout.channels
    if fields is not None:
        config.layout.fit_scale(fields)
    torch.manual_seed(seed)  # only initialises the throw-away test network
    net = build_network(config.network_block()).eval()
    return PDEModel(net, make_scheduler_for(config), config, folder=None)
