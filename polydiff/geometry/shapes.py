"""Procedural shapes as watertight, vertex-coloured triangle meshes (world z up).

Each shape is a union of parts written as signed distance functions (negative inside):
spheres, boxes, capped cylinders and cones, tori and capsules, with differences where a
shape is hollow (a mug's cavity). The union is meshed by marching cubes (scikit-image), so
the surface is one closed 2-manifold with no interior faces, whatever overlaps the parts
have. Every vertex takes the colour of its nearest part. Meshes are centred on the origin
and scaled so that their largest side is 1 (they fit in [-0.5, 0.5]^3).

Randomness (proportions, part counts, colour jitter) comes from the ``np.random.Generator``
passed in; the same seed gives the same mesh.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import trimesh
from skimage.measure import marching_cubes

from polydiff.geometry.meshes import normalise_to_unit_cube

SHAPE_KINDS = ("mug", "table", "chair", "lamp", "snowman", "rocket", "box", "ball",
               "cylinder", "cone", "torus")

# Fixed accent colours (RGB in [0, 1]) of parts that do not take the shape's colour.
CARROT = (0.95, 0.45, 0.05)
COAL = (0.08, 0.08, 0.08)
FLAME_GREY = (0.35, 0.35, 0.38)

Sdf = Callable[[np.ndarray], np.ndarray]  # (N, 3) points -> (N,) signed distances


class Part(NamedTuple):
    """One part of a shape: its SDF and its colour (None: the shape's main colour)."""

    sdf: Sdf
    colour: tuple[float, float, float] | None = None
    carve: bool = False  # True: subtracted from the union of the parts before it


# --- signed distance primitives (points (N, 3) -> (N,)) -------------------------------------

def sphere(c, r: float) -> Sdf:
    c = np.asarray(c, float)
    return lambda p: np.linalg.norm(p - c, axis=-1) - r


def ellipsoid(c, radii) -> Sdf:
    """Scaled-sphere bound (exact on the surface, which is all marching cubes needs)."""
    c, radii = np.asarray(c, float), np.asarray(radii, float)
    return lambda p: (np.linalg.norm((p - c) / radii, axis=-1) - 1.0) * radii.min()


def box(c, half, yaw: float = 0.0) -> Sdf:
    """Axis-aligned box of half-sides ``half``, turned by ``yaw`` radians about z."""
    c, half = np.asarray(c, float), np.asarray(half, float)
    cs, sn = np.cos(yaw), np.sin(yaw)

    def f(p):
        q = p - c
        q = np.stack([cs * q[:, 0] + sn * q[:, 1], -sn * q[:, 0] + cs * q[:, 1], q[:, 2]], 1)
        d = np.abs(q) - half
        return np.linalg.norm(np.maximum(d, 0), axis=-1) + np.minimum(d.max(axis=-1), 0)

    return f


def frustum(c, r0: float, r1: float, h: float) -> Sdf:
    """Solid of revolution about z from base centre ``c`` (radius r0) up h (radius r1).

    r0 == r1 is a capped cylinder, r1 == 0 a cone.
    """
    c = np.asarray(c, float)
    n = np.hypot(h, r0 - r1)

    def f(p):
        q = p - c
        rad = np.hypot(q[:, 0], q[:, 1])
        side = ((rad - r0) * h + q[:, 2] * (r0 - r1)) / n
        return np.maximum(side, np.maximum(-q[:, 2], q[:, 2] - h))

    return f


def cylinder(c, r: float, h: float) -> Sdf:
    return frustum(c, r, r, h)


def torus(c, major: float, minor: float, axis: str = "z") -> Sdf:
    """Torus centred at ``c`` whose ring lies in the plane normal to ``axis`` (x, y or z)."""
    c = np.asarray(c, float)
    a = "xyz".index(axis)
    u, v = [i for i in range(3) if i != a]

    def f(p):
        q = p - c
        return np.hypot(np.hypot(q[:, u], q[:, v]) - major, q[:, a]) - minor

    return f


def capsule(a, b, r: float) -> Sdf:
    """Segment from a to b thickened by r."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ab = b - a

    def f(p):
        s = np.clip(((p - a) @ ab) / (ab @ ab), 0, 1)
        return np.linalg.norm(p - a - s[:, None] * ab, axis=-1) - r

    return f


# --- shapes as lists of parts -----------------------------------------------------------------

def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _mug(rng):
    r, h = _u(rng, 0.28, 0.4), _u(rng, 0.6, 0.9)
    wall, floor = _u(rng, 0.05, 0.08), _u(rng, 0.06, 0.1)
    outer = cylinder((0, 0, 0), r, h)
    handle_r = _u(rng, 0.18, 0.26) * h
    handle = torus((r, 0, h / 2), handle_r, _u(rng, 0.045, 0.065), axis="y")
    handle_out = lambda p: np.maximum(handle(p), -outer(p))  # noqa: E731
    return [Part(outer), Part(cylinder((0, 0, floor), r - wall, h)), Part(handle_out)], [1]


def _legs(rng, hx: float, hy: float, height: float, thick: float, inset: float) -> list[Part]:
    round_legs = rng.random() < 0.5
    parts = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (hx - inset), sy * (hy - inset)
            parts.append(Part(cylinder((x, y, 0), thick, height) if round_legs
                              else box((x, y, height / 2), (thick, thick, height / 2))))
    return parts


def _table(rng):
    height, top = _u(rng, 0.5, 0.8), _u(rng, 0.07, 0.1)
    if rng.random() < 0.3:  # round pedestal table
        r = _u(rng, 0.45, 0.6)
        return [Part(cylinder((0, 0, height - top), r, top)),
                Part(cylinder((0, 0, 0), _u(rng, 0.05, 0.08), height)),
                Part(cylinder((0, 0, 0), _u(rng, 0.18, 0.28), 0.07))], []
    hx, hy = _u(rng, 0.45, 0.6), _u(rng, 0.3, 0.45)
    thick = _u(rng, 0.04, 0.06)
    return [Part(box((0, 0, height - top / 2), (hx, hy, top / 2))),
            *_legs(rng, hx, hy, height, thick, thick + 0.02)], []


def _chair(rng):
    seat_h, half, t = _u(rng, 0.4, 0.5), _u(rng, 0.2, 0.27), _u(rng, 0.05, 0.07)
    back_h, thick = _u(rng, 0.35, 0.55), _u(rng, 0.03, 0.045)
    seat = Part(box((0, 0, seat_h - t / 2), (half, half, t / 2)))
    back = Part(box((-half + t / 2, 0, seat_h + back_h / 2), (t / 2, half, back_h / 2)))
    return [seat, back, *_legs(rng, half, half, seat_h, thick, thick)], []


def _lamp(rng):
    base_r, pole_h = _u(rng, 0.15, 0.25), _u(rng, 0.5, 0.8)
    shade_h = _u(rng, 0.25, 0.4)
    r_low, r_top = _u(rng, 0.22, 0.32), _u(rng, 0.1, 0.18)
    parts = [Part(cylinder((0, 0, 0), base_r, 0.07), COAL),
             Part(cylinder((0, 0, 0), 0.04, pole_h), COAL),
             Part(frustum((0, 0, pole_h - 0.5 * shade_h), r_low, r_top, shade_h))]
    return parts, []


def _snowman(rng):
    n = int(rng.integers(2, 4))
    r = _u(rng, 0.3, 0.38)
    parts, z = [], 0.0
    for i in range(n):
        centre_z = z + r
        parts.append(Part(sphere((0, 0, centre_z), r)))
        head_z, head_r = centre_z, r
        z = centre_z + 0.6 * r
        if i + 1 < n:
            r *= _u(rng, 0.65, 0.8)
    nose = capsule((head_r * 0.8, 0, head_z), (head_r * 1.6, 0, head_z), 0.045)
    parts.append(Part(nose, CARROT))
    if rng.random() < 0.6:  # a top hat
        brim_z = head_z + 0.8 * head_r
        parts.append(Part(cylinder((0, 0, brim_z), 0.7 * head_r, 0.07), COAL))
        parts.append(Part(cylinder((0, 0, brim_z), 0.45 * head_r, 0.5 * head_r), COAL))
    return parts, []


def _rocket(rng):
    r, body = _u(rng, 0.12, 0.18), _u(rng, 0.6, 0.9)
    nose_h, fin = _u(rng, 0.2, 0.35), _u(rng, 0.12, 0.2)
    parts = [Part(cylinder((0, 0, 0), r, body)), Part(frustum((0, 0, body), r, 0.0, nose_h)),
             Part(frustum((0, 0, -0.08), 0.7 * r, 0.85 * r, 0.14), FLAME_GREY)]
    n_fins = int(rng.integers(3, 5))
    for k in range(n_fins):
        yaw = 2 * np.pi * k / n_fins
        cx, cy = (r + fin / 2) * np.cos(yaw), (r + fin / 2) * np.sin(yaw)
        parts.append(Part(box((cx, cy, 0.15), (fin / 2 + 0.02, 0.035, 0.15), yaw)))
    return parts, []


def _box(rng):
    return [Part(box((0, 0, 0), (_u(rng, 0.3, 0.5), _u(rng, 0.3, 0.5), _u(rng, 0.3, 0.5)),
                     _u(rng, 0, np.pi / 2)))], []


def _ball(rng):
    return [Part(ellipsoid((0, 0, 0), (0.5, _u(rng, 0.45, 0.5), _u(rng, 0.45, 0.5))))], []


def _cylinder(rng):
    return [Part(cylinder((0, 0, 0), _u(rng, 0.25, 0.45), _u(rng, 0.6, 1.0)))], []


def _cone(rng):
    return [Part(frustum((0, 0, 0), _u(rng, 0.3, 0.5), 0.0, _u(rng, 0.6, 1.0)))], []


def _torus(rng):
    major = _u(rng, 0.35, 0.45)
    return [Part(torus((0, 0, 0), major, _u(rng, 0.25, 0.45) * major))], []


_BUILDERS = {"mug": _mug, "table": _table, "chair": _chair, "lamp": _lamp,
             "snowman": _snowman, "rocket": _rocket, "box": _box, "ball": _ball,
             "cylinder": _cylinder, "cone": _cone, "torus": _torus}


class ShapeSdf(NamedTuple):
    """A shape before meshing: the union SDF, part SDFs and part colours."""

    sdf: Sdf
    parts: list[Sdf]
    colours: list[tuple[float, float, float] | None]


def shape_sdf(kind: str, rng: np.random.Generator, aspect: float = 1.0) -> ShapeSdf:
    """The SDF of a random ``kind`` shape, stretched along z by ``aspect`` (> 1: taller)."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown shape kind {kind!r}; choose from {', '.join(SHAPE_KINDS)}")
    if not 0.2 <= aspect <= 5:
        raise ValueError(f"aspect must lie in [0.2, 5], got {aspect}")
    parts, carved = _BUILDERS[kind](rng)
    solid = [p for i, p in enumerate(parts) if i not in carved]
    holes = [parts[i].sdf for i in carved]
    scale = np.array([1.0, 1.0, aspect])
    lip = min(1.0, aspect)  # keeps the stretched field a distance bound

    def stretched(f: Sdf) -> Sdf:
        return lambda p: f(p / scale) * lip

    def union(p):
        q = p / scale
        d = np.min([s.sdf(q) for s in solid], axis=0)
        for h in holes:
            d = np.maximum(d, -h(q))
        return d * lip

    return ShapeSdf(union, [stretched(s.sdf) for s in solid], [s.colour for s in solid])


def _grid_points(lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    step = (hi - lo).max() / (n - 1)
    counts = np.maximum(np.ceil((hi - lo) / step).astype(int) + 1, 2)
    axes = [lo[i] + step * np.arange(counts[i]) for i in range(3)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    return pts, np.full(3, step)


def mesh_sdf(shape: ShapeSdf, colour, resolution: int = 64,
             bound: float = 3.0) -> trimesh.Trimesh:
    """Marching cubes of ``shape`` with ``resolution`` cells across its largest side.

    Two passes of 33^3 points (over [-bound, bound]^3, then over what the first found) find
    the bounding box of the surface (every surface point lies within one grid step of a point
    whose SDF is below one step); the fine grid covers it with two cells of margin, so the
    surface is closed. Vertex colours (RGBA uint8) come from the nearest part. The mesh is
    centred and scaled to a largest side of 1.
    """
    if not 8 <= resolution <= 512:
        raise ValueError(f"resolution must lie in [8, 512], got {resolution}")
    lo, hi = np.full(3, -bound), np.full(3, bound)
    for first in (True, False):
        grid, step = _grid_points(lo, hi, 33)
        near = shape.sdf(grid.reshape(-1, 3)).reshape(grid.shape[:3]) < step.max()
        idx = np.argwhere(near)
        if first and (len(idx) == 0 or idx.min() == 0 or
                      (idx.max(0) == np.array(near.shape) - 1).any()):
            raise ValueError(f"the shape does not lie inside [-{bound}, {bound}]^3")
        lo, hi = grid[tuple(idx.min(0))] - step, grid[tuple(idx.max(0))] + step
    fine = (hi - lo).max() / resolution
    lo, hi = lo - 2 * fine, hi + 2 * fine
    pts, spacing = _grid_points(lo, hi, resolution + 4)
    vol = shape.sdf(pts.reshape(-1, 3)).reshape(pts.shape[:3])
    verts, faces, _, _ = marching_cubes(vol, 0.0, spacing=tuple(spacing),
                                        allow_degenerate=False)
    verts = verts + lo
    part = np.argmin(np.stack([f(verts) for f in shape.parts]), axis=0)
    palette = np.array([c if c is not None else colour for c in shape.colours], float)
    rgba = np.concatenate([palette[part], np.ones((len(verts), 1))], 1)
    # skimage's winding with the inside below the level is counter-clockwise seen from
    # outside, as trimesh expects (positive volume).
    mesh = trimesh.Trimesh(verts, faces, vertex_colors=(rgba * 255).round()
                           .astype(np.uint8), process=True)
    return normalise_to_unit_cube(mesh)


def make_shape(kind: str, rng: np.random.Generator, colour=(0.7, 0.7, 0.7), *,
               aspect: float = 1.0, resolution: int = 64) -> trimesh.Trimesh:
    """A random watertight ``kind`` mesh, main parts coloured ``colour`` (RGB in [0, 1]).

    Returns a trimesh with RGBA uint8 vertex colours, z up, centred, largest side 1.
    """
    colour = tuple(float(c) for c in colour)
    if len(colour) != 3 or not all(0 <= c <= 1 for c in colour):
        raise ValueError(f"colour must be 3 numbers in [0, 1], got {colour}")
    return mesh_sdf(shape_sdf(kind, rng, aspect), colour, resolution)
