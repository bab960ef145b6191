"""A small but real demo output set: a coloured GLB mesh, a PLY point cloud, PNG pictures."""

from pathlib import Path

import numpy as np
import pytest

from polydiff.apps.contract import DemoResult

RED = (200, 30, 30, 255)


def red_box():
    import trimesh

    box = trimesh.creation.box(extents=(1.0, 2.0, 1.0))
    box.visual.vertex_colors = np.tile(RED, (len(box.vertices), 1))
    return box


def mesh_demo(out: Path, *, device, seed) -> DemoResult:
    """Writes a GLB mesh and its picture, as the mesh app does."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    glb, png = out / "box.glb", out / "box.png"
    glb.write_bytes(red_box().export(file_type="glb"))
    Image.fromarray(np.full((48, 64, 3), 180, np.uint8)).save(png)
    return DemoResult("a red box", [glb, png], [png], {"Chamfer": 0.01}, {"Chamfer": 0.05})


def mono_demo(out: Path, *, device, seed) -> DemoResult:
    """Writes a green point cloud (PLY, OpenCV camera frame: in front of the camera at z > 0)
    and a depth picture."""
    import trimesh
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(seed)
    points = np.c_[g.uniform(-1, 1, (500, 2)), g.uniform(2, 3, 500)].astype(np.float32)
    ply, png = out / "photo.points.ply", out / "photo.depth_vis.png"
    ply.write_bytes(trimesh.PointCloud(points, colors=np.tile((0, 200, 0, 255), (500, 1)))
                    .export(file_type="ply"))
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(png)
    return DemoResult("points", [ply, png], [png], {"AbsRel": 0.1, "delta1": 0.9},
                      {"AbsRel": 0.3, "delta1": 0.5}, higher_is_better=("delta1",))


def broken_demo(out: Path, *, device, seed) -> DemoResult:
    out.mkdir(parents=True, exist_ok=True)
    (out / "half.txt").write_text("written before the failure")
    raise RuntimeError("the model diverged")


APPS = {"mesh": ("meshes", mesh_demo), "broken": ("fails", broken_demo),
        "mono": ("depth", mono_demo), "absent": ("not installed", None)}


@pytest.fixture
def demo_folder(tmp_path) -> Path:
    from polydiff.tour.run import run_tour

    out = tmp_path / "demo"
    assert run_tour(out, APPS, device="cpu", seed=0, overwrite=False) == 1
    return out
