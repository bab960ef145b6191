"""``polydiff demo``'s runner and report, without a browser."""

import json

import pytest

from polydiff.cli import main
from polydiff.runtime import UserError
from polydiff.tour.run import run_tour

from .conftest import APPS


def test_a_failing_app_is_marked_and_the_others_still_run(demo_folder, capsys):
    record = json.loads((demo_folder / "demo.json").read_text())
    assert {k: v["ok"] for k, v in record["apps"].items()} == {
        "mesh": True, "broken": False, "mono": True, "absent": False}
    assert "the model diverged" in record["apps"]["broken"]["error"]
    assert record["apps"]["mono"]["metrics"] == {"AbsRel": 0.1, "delta1": 0.9}
    assert "broken/half.txt" in record["files"] and "mono/photo.points.ply" in record["files"]
    page = (demo_folder / "report.html").read_text()
    assert page.count('class="failed"') >= 2 and "the model diverged" in page
    assert 'src="mesh/box.png"' in page and 'src="mono/photo.depth_vis.png"' in page
    assert page.count("<canvas") == 2  # the GLB mesh and the point cloud
    assert "http://" not in page and "https://" not in page  # nothing from the network


def test_progress_line_per_app(tmp_path, capsys):
    run_tour(tmp_path / "d", APPS, device="cpu", seed=0, overwrite=False)
    lines = capsys.readouterr().out.splitlines()
    for i, name in enumerate(APPS, 1):
        assert any(line.startswith(f"[{i}/4] {name}: ") and ("ok in" in line or "FAILED" in line)
                   for line in lines)
    assert "2 of 4 apps ok" in lines[-1] and "failed: broken, absent" in lines[-1]


def test_metric_beside_its_baseline(demo_folder):
    page = (demo_folder / "report.html").read_text()
    row = page[page.index("delta1 <small>"):]
    row = row[:row.index("</tr>")]
    assert "0.9" in row and "0.5" in row and "better" in row  # higher is better for delta1


def test_overwrite_replaces_only_what_a_demo_wrote(demo_folder):
    with pytest.raises(UserError, match="--overwrite"):
        run_tour(demo_folder, APPS, device="cpu", seed=0, overwrite=False)
    keep = demo_folder / "notes.txt"
    keep.write_text("mine")
    assert run_tour(demo_folder, APPS, device="cpu", seed=0, overwrite=True) == 1
    assert keep.read_text() == "mine"
    stranger = demo_folder / "mono" / "mine.txt"
    stranger.write_text("mine")
    with pytest.raises(UserError, match="not written by polydiff demo"):
        run_tour(demo_folder, APPS, device="cpu", seed=0, overwrite=True)
    assert stranger.read_text() == "mine"


def test_stale_files_of_an_earlier_run_go(tmp_path):
    out = tmp_path / "d"
    run_tour(out, APPS, device="cpu", seed=0, overwrite=False)
    calm = {**APPS, "broken": ("now fine", APPS["mono"][1])}
    assert run_tour(out, {k: calm[k] for k in ("mesh", "broken", "mono")}, device="cpu",
                    seed=0, overwrite=True) == 0
    assert not (out / "broken" / "half.txt").exists()
    assert (out / "broken" / "photo.points.ply").is_file()


def test_a_folder_without_manifest_is_not_taken(tmp_path):
    (tmp_path / "mesh").mkdir()
    (tmp_path / "mesh" / "x.glb").write_text("someone's")
    with pytest.raises(UserError, match="demo.json"):
        run_tour(tmp_path, APPS, device="cpu", seed=0, overwrite=True)


def test_demo_output_that_is_a_file_is_one_line_error(tmp_path, capsys):
    target = tmp_path / "f"
    target.write_text("x")
    assert main(["demo", "-o", str(target)]) == 2
    assert "existing file" in capsys.readouterr().err
