import numpy as np
import pytest
from PIL import Image

from polydiff.plotting import pyplot, save_figure


def test_save_figure_writes_a_png(tmp_path):
    fig, ax = pyplot().subplots()
    ax.imshow(np.arange(12.0).reshape(3, 4))
    path = save_figure(fig, tmp_path / "a.png", title="t", dpi=50)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 10
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_failed_save_leaves_nothing(tmp_path):
    fig, _ = pyplot().subplots()
    with pytest.raises(ValueError):
        save_figure(fig, tmp_path / "b.png", dpi=-5)
    assert list(tmp_path.iterdir()) == []
