"""Mesh files: round trips through GLB / OBJ / PLY, glTF's up axis, colours, bad files."""

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from polydiff.geometry.meshes import (
    FORMATS,
    is_watertight,
    load_mesh,
    mesh_from_arrays,
    mesh_tensors,
    normalise_to_unit_cube,
    save_mesh,
)
from polydiff.runtime import UserError


def coloured_box():
    box = trimesh.creation.box(extents=(0.2, 0.5, 0.9))
    box.apply_translation((0.1, 0.3, 0.2))
    colors = np.random.default_rng(0).random((len(box.vertices), 3))
    return mesh_from_arrays(box.vertices, box.faces, colors), colors


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_keeps_geometry_colours_and_closedness(tmp_path, fmt):
    mesh, colors = coloured_box()
    path = save_mesh(mesh, tmp_path / f"box.{fmt}")
    back = load_mesh(path)
    dist, idx = cKDTree(back.vertices).query(mesh.vertices)
    assert dist.max() < 1e-6 and len(back.vertices) == len(mesh.vertices)
    v, f, c = mesh_tensors(back)
    assert c is not None
    assert np.abs(c.numpy()[idx] - colors).max() <= 0.5 / 255 + 1e-6
    assert is_watertight(back)
    assert np.allclose(back.volume, 0.2 * 0.5 * 0.9)  # outward winding survives


def test_glb_is_y_up_inside_the_file_and_z_up_once_read(tmp_path):
    mesh, _ = coloured_box()
    path = save_mesh(mesh, tmp_path / "box.glb")
    raw = trimesh.load(str(path), force="mesh")
    lo, hi = mesh.bounds
    # world (x, y, z) -> glTF (x, z, -y)
    assert np.allclose(raw.bounds, [[lo[0], lo[2], -hi[1]], [hi[0], hi[2], -lo[1]]], atol=1e-6)
    assert np.allclose(load_mesh(path).bounds, mesh.bounds, atol=1e-6)


def test_unparsable_empty_and_missing_files_are_user_errors(tmp_path):
    bad = tmp_path / "bad.glb"
    bad.write_bytes(b"glTF this is not a real file")
    with pytest.raises(UserError, match="cannot read mesh|no triangles"):
        load_mesh(bad)
    empty = tmp_path / "empty.obj"
    empty.write_text("# nothing\n")
    with pytest.raises(UserError, match="no triangles|cannot read"):
        load_mesh(empty)
    with pytest.raises(UserError, match="not found"):
        load_mesh(tmp_path / "missing.ply")
    with pytest.raises(UserError, match="unknown mesh format"):
        save_mesh(coloured_box()[0], tmp_path / "box.stl")
    assert not (tmp_path / "box.stl").exists()


def test_normalise_fits_the_unit_cube_and_keeps_shape():
    mesh, _ = coloured_box()
    out = normalise_to_unit_cube(mesh)
    assert np.allclose(out.bounds.sum(0), 0, atol=1e-12)
    assert np.isclose((out.bounds[1] - out.bounds[0]).max(), 1.0)
    assert np.allclose(out.extents / out.extents.max(), mesh.extents / mesh.extents.max())
    assert np.allclose(mesh.bounds, [[0.0, 0.05, -0.25], [0.2, 0.55, 0.65]])  # input untouched


def test_open_meshes_are_not_watertight():
    box = trimesh.creation.box()
    open_box = mesh_from_arrays(box.vertices, box.faces[:-1])
    assert not is_watertight(open_box)
    v, f, c = mesh_tensors(open_box, dtype=torch.float64)
    assert c is None and v.dtype == torch.float64 and f.shape == (11, 3)


def test_normalise_verts_fits_the_unit_cube():
    import torch

    from polydiff.geometry.meshes import normalise_verts

    v = torch.tensor([[1.0, 2.0, 3.0], [5.0, 3.0, 4.0], [2.0, 2.5, 3.5]])
    out = normalise_verts(v)
    assert torch.allclose(out.amax(0) + out.amin(0), torch.zeros(3))
    assert float((out.amax(0) - out.amin(0)).max()) == pytest.approx(1.0)
    with pytest.raises(UserError, match="zero extent"):
        normalise_verts(torch.ones(4, 3))
