"""The README's mono picture is composed from the demo's files, rows scaled to one height."""

from PIL import Image

from benchmarks.readme_mono_image import PANELS, ROWS, compose


def test_rows_of_input_depth_and_normals(tmp_path):
    for name, size, colour in zip(ROWS, [(128, 96), (192, 130)], ["red", "blue"]):
        for suffix in PANELS:
            Image.new("RGB", size, colour).save(tmp_path / f"{name}{suffix}")
    out = compose(tmp_path, tmp_path / "sheet.png", height=96, gap=4)
    sheet = Image.open(out)
    second = int(96 * 0.725)
    assert sheet.size == (max(3 * 128 + 8, 3 * round(192 * second / 130) + 8), 96 + 4 + second)
    assert sheet.getpixel((10, 10)) == (255, 0, 0) and sheet.getpixel((10, 96 + 10)) == (0, 0, 255)
    assert sheet.getpixel((130, 10)) == (255, 255, 255)  # the gap between panels
