"""Surface textures of the procedural scenes: procedural patterns and real photographs.

A texture maps world points (N, 3) and their normals (N, 3) to linear-RGB albedo (N, 3).
Procedural kinds mix two colours by a pattern ('plain', 'stripes', 'checker'). The 'photo'
kind projects a real photograph onto the surface along the normal's dominant world axis
(tri-planar projection), tiled every ``scale`` metres: the photographs are the ones that
ship inside scikit-image's wheel (``skimage/data``), so no download is involved. The
Middlebury motorcycle pair there is left out: the mono benchmark scores depth on it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

# real photographs and scans in skimage/data (not the motorcycle: it is the benchmark's)
PHOTO_NAMES: tuple[str, ...] = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "coffee.png",
    "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png",
    "page.png", "retina.jpg", "rocket.jpg", "text.png", "color.png", "clock_motion.png",
    "microaneurysms.png",
)
PHOTO_SIDE = 192  # the library keeps each photograph at most this many pixels a side


@functools.lru_cache(maxsize=1)
def photo_library() -> tuple[np.ndarray, ...]:
    """The photographs as (h, w, 3) float32 linear RGB (sRGB ** 2.2), longest side at most
    ``PHOTO_SIDE`` pixels; empty when scikit-image's data folder is not there."""
    from importlib.resources import files

    from PIL import Image

    try:
        folder = files("skimage") / "data"
    except ModuleNotFoundError:
        return ()
    photos = []
    for name in PHOTO_NAMES:
        path = folder / name
        if not path.is_file():
            continue
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((PHOTO_SIDE, PHOTO_SIDE), Image.LANCZOS)
            photos.append((np.asarray(img, np.float32) / 255.0) ** 2.2)
    return tuple(photos)


@dataclass
class Texture:
    """Albedo over world coordinates: two colours mixed by a pattern ('plain', 'stripes',
    'checker'), or a photograph ``photo`` (h, w, 3) tiled every ``scale`` metres ('photo')."""

    kind: str
    colours: np.ndarray  # (2, 3) linear RGB
    scale: float = 0.5
    axis: int = 0
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    photo: np.ndarray | None = None

    def albedo(self, p: Tensor, n: Tensor | None = None) -> Tensor:
        """(N, 3) world points (and their (N, 3) normals, for photos) -> (N, 3) albedo."""
        if self.kind == "photo":
            return self._photo(p, n)
        q = torch.floor((p + torch.as_tensor(self.offset)) / self.scale)
        if self.kind == "checker":
            s = torch.remainder(q.sum(-1), 2)
        elif self.kind == "stripes":
            s = torch.remainder(q[:, self.axis], 2)
        else:
            s = torch.zeros_like(q[:, 0])
        c = torch.as_tensor(self.colours)
        return c[0] + s[:, None] * (c[1] - c[0])

    def _photo(self, p: Tensor, n: Tensor | None) -> Tensor:
        """Tri-planar projection: the two world axes across the normal's dominant one."""
        img = torch.as_tensor(self.photo, dtype=torch.float64)
        h, w = img.shape[:2]
        q = (p + torch.as_tensor(self.offset)) / self.scale
        dominant = (n.abs().argmax(-1) if n is not None
                    else torch.full((len(p),), 2, dtype=torch.long))
        # (a, b) = the other two axes, in a fixed order per dominant axis
        a_ax = torch.tensor([1, 0, 0])[dominant]
        b_ax = torch.tensor([2, 2, 1])[dominant]
        a = q.gather(1, a_ax[:, None])[:, 0]
        b = q.gather(1, b_ax[:, None])[:, 0]
        col = torch.remainder(torch.floor(a * w), w).long()
        row = torch.remainder(torch.floor(-b * h), h).long()  # world up = image up
        tint = torch.as_tensor(self.colours[0])
        return img[row, col] * tint


def random_texture(rng: np.random.Generator, kinds: tuple[str, ...],
                   base: np.ndarray | None = None, photo_fraction: float = 0.0,
                   scale: tuple[float, float] = (0.15, 0.8)) -> Texture:
    """A random procedural texture of one of ``kinds``, or with probability
    ``photo_fraction`` (no draw when 0) a random photograph, tinted and tiled."""
    if photo_fraction > 0 and rng.uniform() < photo_fraction:
        photos = photo_library()
        if photos:
            photo = photos[int(rng.integers(0, len(photos)))]
            tint = np.clip(rng.uniform(0.6, 1.3, 3), 0.0, 1.5)
            if rng.uniform() < 0.5:
                photo = photo[:, ::-1]
            return Texture("photo", np.stack([tint, tint]), float(rng.uniform(*scale) * 3),
                           0, rng.uniform(0, 10, 3), np.ascontiguousarray(photo))
    c0 = rng.uniform(0.1, 0.9, 3) if base is None else base
    c1 = np.clip(c0 * rng.uniform(0.3, 0.8) + rng.uniform(-0.1, 0.1, 3), 0.02, 1.0)
    return Texture(str(rng.choice(kinds)), np.stack([c0, c1]), float(rng.uniform(*scale)),
                   int(rng.integers(0, 3)), rng.uniform(0, 1, 3))
