"""``polydiff mesh render | fuse | evaluate`` as a user runs them: round trips and bad input."""

import json

import numpy as np
import pytest
import trimesh

from polydiff.cli import main


@pytest.fixture
def sphere(tmp_path):
    path = tmp_path / "sphere.glb"
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    mesh.visual.vertex_colors = [200, 30, 30, 255]
    mesh.export(path)
    return path


def _one_line_error(capsys, code):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_render_then_fuse_gives_the_sphere_back(tmp_path, sphere, capsys):
    views = tmp_path / "views.npz"
    assert main(["mesh", "render", str(sphere), "-o", str(views), "--views", "4",
                 "--size", "48", "--device", "cpu", "--no-normalise"]) == 0
    assert views.with_suffix(".png").is_file()
    with np.load(views, allow_pickle=False) as data:
        assert data["normals"].shape == (4, 48, 48, 3) and data["mask"].dtype == bool
        lengths = np.linalg.norm(data["normals"][data["mask"]], axis=-1)
        np.testing.assert_allclose(lengths, 1, atol=1e-4)
    fused = tmp_path / "fused.glb"
    assert main(["mesh", "fuse", str(views), "-o", str(fused), "--grid", "32",
                 "--iterations", "20", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {fused}, {fused.with_suffix('.png')}" in out
    mesh = trimesh.load(fused, force="mesh")
    assert mesh.is_watertight
    metrics = tmp_path / "m.json"
    assert main(["mesh", "evaluate", "--truth", str(sphere), "--pred", str(fused),
                 "--json", str(metrics), "--samples", "5000"]) == 0
    m = json.loads(metrics.read_text())
    assert m["chamfer"] < 0.03 and m["normal_consistency"] > 0.9


def test_bad_views_files_are_one_line_errors(tmp_path, sphere, capsys):
    views = tmp_path / "views.npz"
    assert main(["mesh", "render", str(sphere), "-o", str(views), "--views", "3",
                 "--size", "32"]) == 0
    capsys.readouterr()
    with np.load(views) as data:
        good = {k: data[k] for k in data.files}
    cases = {
        "nan.npz": dict(good, normals=np.full_like(good["normals"], np.nan)),
        "empty.npz": dict(good, mask=np.zeros_like(good["mask"])),
        "shapes.npz": dict(good, K=good["K"][:2]),
        "nonunit.npz": dict(good, normals=good["normals"] * 2),
        "missing.npz": {k: v for k, v in good.items() if k != "c2w"},
    }
    for name, arrays in cases.items():
        path = tmp_path / name
        np.savez(path, **arrays)
        out = tmp_path / (name + ".glb")
        err = _one_line_error(capsys, main(["mesh", "fuse", str(path), "-o", str(out)]))
        assert name in err and not out.exists()
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    _one_line_error(capsys, main(["mesh", "fuse", str(garbage), "-o", str(tmp_path / "g.glb")]))


def test_unparsable_mesh_and_output_equal_to_input(tmp_path, sphere, capsys):
    bad = tmp_path / "bad.obj"
    bad.write_text("this is not a mesh\n")
    err = _one_line_error(capsys, main(["mesh", "render", str(bad), "-o",
                                        str(tmp_path / "v.npz")]))
    assert "bad.obj" in err
    err = _one_line_error(capsys, main(["mesh", "render", str(sphere), "-o", str(sphere)]))
    assert ".npz" in err
    views = tmp_path / "v.npz"
    main(["mesh", "render", str(sphere), "-o", str(views), "--size", "32"])
    capsys.readouterr()
    err = _one_line_error(capsys, main(["mesh", "fuse", str(views), "-o", str(views),
                                        "--format", "glb"]))
    assert list(tmp_path.glob(".*part*")) == []


def test_generate_refuses_empty_prompts_and_bad_resolution(tmp_path, capsys):
    _one_line_error(capsys, main(["mesh", "generate", "  ", "-o", str(tmp_path / "x.glb")]))
    empty = tmp_path / "prompts.txt"
    empty.write_text("\n\n")
    err = _one_line_error(capsys, main(["mesh", "generate", "--prompts", str(empty), "-o",
                                        str(tmp_path / "out")]))
    assert "no prompts" in err
    with pytest.raises(SystemExit) as info:
        main(["mesh", "generate", "a mug", "--resolution", "4", "-o", str(tmp_path / "x.glb")])
    assert info.value.code == 2
    assert list(tmp_path.iterdir()) == [empty]
