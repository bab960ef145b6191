"""Every shipped mesh config loads into the class ``polydiff mesh train`` builds from it
(``load_config`` refuses unknown keys, so a typo in a recorded recipe fails here)."""

from pathlib import Path

import pytest

from polydiff.apps.mesh import train_triplane
from polydiff.apps.mesh.cli import train_module
from polydiff.diffusion.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[3] / "configs" / "mesh").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_mesh_config_loads(path: Path) -> None:
    module = train_module(path)
    cfg = load_config(path, module.CONFIG_CLASS)
    assert cfg.train.steps > 0 and cfg.train.batch_size > 0
    if module is train_triplane:
        assert cfg.anchor.steps <= cfg.train.steps  # the warm-up counts in train.steps
