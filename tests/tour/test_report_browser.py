"""The report in headless Chromium: every picture and every 3-D viewer loads and draws."""

import base64
import json
import struct

import numpy as np
import pytest

from polydiff.tour.browser import check_page, chromium, chromium_missing
from polydiff.tour.viewer import viewer_html, viewer_script

from .conftest import red_box

pytestmark = pytest.mark.skipif(chromium_missing() is not None,
                                reason=str(chromium_missing()))


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def _rgb(text: str) -> np.ndarray:
    return np.array([int(v) for v in text.split(",")[:3]])


def test_every_image_and_viewer_of_the_report_loads(browser, demo_folder):
    page = check_page(browser, demo_folder / "report.html")
    assert len(page.images) == 2
    for image in page.images:
        assert image["width"] > 0 and image["height"] > 0, image
    assert [v["state"] for v in page.viewers] == ["drawn", "drawn"], page.console
    mesh, cloud = page.viewers
    box = red_box()
    assert (int(mesh["vertices"]), int(mesh["triangles"])) == (len(box.vertices), len(box.faces))
    r, g, b = _rgb(mesh["center"])  # the box covers the centre: lit red, not the white page
    assert r > 80 and g < 60 and b < 60
    assert int(cloud["points"]) == 500 and int(cloud["triangles"]) == 0
    assert any("polydiff-viewer drawn" in line for line in page.console)


def _glb(json_part: dict, binary: bytes) -> bytes:
    j = json.dumps(json_part).encode()
    j += b" " * (-len(j) % 4)
    binary += b"\0" * (-len(binary) % 4)
    body = struct.pack("<II", len(j), 0x4E4F534A) + j + struct.pack("<II", len(binary),
                                                                    0x004E4942) + binary
    return struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body


def test_viewer_reads_strided_positions_short_colours_and_16_bit_indices(browser, tmp_path):
    """A hand-written GLB: one green triangle over the centre, positions interleaved with
    padding (byteStride 16), COLOR_0 as normalised uint16, indices as uint16."""
    pos = np.array([[-1, -1, 0], [1, -1, 0], [0, 1.5, 0]], np.float32)
    interleaved = np.zeros((3, 4), np.float32)
    interleaved[:, :3] = pos
    colours = np.tile(np.array([0, 50000, 0, 65535], np.uint16), (3, 1))
    indices = np.array([0, 1, 2], np.uint16)
    blobs = [interleaved.tobytes(), colours.tobytes(), indices.tobytes()]
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    gltf = {"asset": {"version": "2.0"}, "buffers": [{"byteLength": int(offsets[-1])}],
            "bufferViews": [{"buffer": 0, "byteOffset": int(offsets[0]), "byteLength": 48,
                             "byteStride": 16},
                            {"buffer": 0, "byteOffset": int(offsets[1]), "byteLength": 24},
                            {"buffer": 0, "byteOffset": int(offsets[2]), "byteLength": 6}],
            "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"},
                          {"bufferView": 1, "componentType": 5123, "count": 3, "type": "VEC4",
                           "normalized": True},
                          {"bufferView": 2, "componentType": 5123, "count": 3,
                           "type": "SCALAR"}],
            "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "COLOR_0": 1},
                                        "indices": 2}]}]}
    html = tmp_path / "one.html"
    html.write_text("<html><body>" + viewer_html(_glb(gltf, b"".join(blobs)), "tri")
                    + viewer_script() + "</body></html>")
    (viewer,) = check_page(browser, html).viewers
    assert viewer["state"] == "drawn" and viewer["triangles"] == "1"
    r, g, b = _rgb(viewer["center"])
    assert g > 100 and r < 40 and b < 40


def test_a_broken_glb_is_reported_not_drawn(browser, tmp_path):
    html = tmp_path / "bad.html"
    html.write_text("<html><body>" + viewer_html(b"not a glb at all", "bad") + viewer_script()
                    + "</body></html>")
    (viewer,) = check_page(browser, html).viewers
    assert viewer["state"] == "error" and "not a GLB" in viewer["error"]
    assert base64.b64encode(b"not a glb at all").decode() in html.read_text()


@pytest.mark.slow
def test_the_real_demo_report_loads(browser, tmp_path):
    """`polydiff demo` itself (minutes on a CPU): every picture it shows and every 3-D view
    loads; an app fails only for want of its bundled checkpoint."""
    from polydiff.cli import main

    out = tmp_path / "demo_out"
    status = main(["demo", "-o", str(out), "--device", "cpu"])
    record = json.loads((out / "demo.json").read_text())
    for name, app in record["apps"].items():
        assert app["ok"] or "no bundled" in app["error"], (name, app["error"])
    assert status == (0 if all(a["ok"] for a in record["apps"].values()) else 1)
    page = check_page(browser, out / "report.html", timeout=120)
    assert len(page.images) >= 8
    for image in page.images:
        assert image["width"] > 0, image
    assert page.viewers and all(v["state"] == "drawn" for v in page.viewers), page.console
