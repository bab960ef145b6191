"""Every shipped mesh config loads into the class ``polydiff mesh train`` builds from it
(``load_config`` refuses unknown keys, so a typo in a recorded recipe fails here)."""

from pathlib import Path

import pytest

from polydiff.apps.mesh import train_normals, train_triplane
from polydiff.diffusion.config import load_config, read_yaml

CONFIGS = sorted((Path(__file__).resolve().parents[3] / "configs" / "mesh").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_mesh_config_loads(path: Path) -> None:
    triplane = "distill" in read_yaml(path)
    module = train_triplane if triplane else train_normals
    cfg = load_config(path, module.CONFIG_CLASS)
    assert cfg.train.steps > 0 and cfg.train.batch_size > 0
    if triplane:
        assert cfg.anchor.steps <= cfg.train.steps  # the warm-up counts in train.steps
