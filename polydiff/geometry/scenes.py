"""Procedural indoor scenes by analytic ray casting: RGB with exact depth, normals and K.

A scene is a room (floor z = 0, ceiling, four walls; world z is up) holding boxes, spheres
and cylinders with procedural textures (plain, stripes, checker), lit by an ambient term, a
directional light and a point light that casts hard shadows (Lambertian shading). The
camera stands inside the room with a random height, heading, pitch and roll; focal lengths
range from wide to tele (log-uniform) with a random principal point and pixel aspect.
Everything random comes from the ``np.random.Generator`` passed in; the ray casting is
vectorised over pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from polydiff.geometry.cameras import Cameras, Intrinsics

EPS = 1e-6


@dataclass(frozen=True)
class SceneConfig:
    """Ranges of the random scene parameters (lengths in metres, angles in degrees)."""

    height: int = 64
    width: int = 64
    fov_deg: tuple[float, float] = (25.0, 100.0)  # horizontal field of view: tele .. wide
    principal_jitter: float = 0.08  # principal point offset, fraction of the image size
    pixel_aspect: tuple[float, float] = (1.0, 1.0)  # fy / fx
    objects: tuple[int, int] = (2, 7)
    camera_height: tuple[float, float] = (0.6, 2.0)
    pitch_deg: tuple[float, float] = (-40.0, 10.0)
    roll_deg: tuple[float, float] = (-8.0, 8.0)
    room_half: tuple[float, float] = (2.0, 5.0)
    room_height: tuple[float, float] = (2.4, 3.5)


class Scene(NamedTuple):
    """One rendered view. image (H, W, 3) in [0, 1]; depth (H, W) z-depth in metres;
    normals (H, W, 3) unit, camera frame facing the camera; up (3,) world up in the camera
    frame; camera_height in metres above the floor."""

    image: Tensor
    depth: Tensor
    normals: Tensor
    intrinsics: Intrinsics
    up: Tensor
    camera_height: float


@dataclass
class _Texture:
    """Two colours mixed by a pattern over world coordinates ('plain', 'stripes', 'checker')."""

    kind: str
    colours: np.ndarray  # (2, 3) linear RGB
    scale: float = 0.5
    axis: int = 0
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def albedo(self, p: Tensor) -> Tensor:
        """(N, 3) world points -> (N, 3) albedo."""
        q = torch.floor((p + torch.as_tensor(self.offset)) / self.scale)
        if self.kind == "checker":
            s = torch.remainder(q.sum(-1), 2)
        elif self.kind == "stripes":
            s = torch.remainder(q[:, self.axis], 2)
        else:
            s = torch.zeros_like(q[:, 0])
        c = torch.as_tensor(self.colours)
        return c[0] + s[:, None] * (c[1] - c[0])


def _no_hit(n: int) -> Tensor:
    return torch.full((n,), math.inf, dtype=torch.float64)


def _safe_div(a: Tensor, b: Tensor) -> Tensor:
    return a / torch.where(b.abs() < 1e-12, torch.full_like(b, 1e-12), b)


def hit_room(o: Tensor, d: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Rays (N, 3) from inside an axis-aligned box -> exit t (N,), inward normal, face id.

    Face id: 2 * axis + (1 if the ray leaves through the upper face), e.g. 4 = floor.
    """
    t_axes = torch.where(d > 0, _safe_div(hi - o, d), _safe_div(lo - o, d))
    t_axes = torch.where(d.abs() < 1e-12, torch.full_like(t_axes, math.inf), t_axes)
    t, axis = t_axes.min(-1)
    up = (d.gather(1, axis[:, None])[:, 0] > 0).long()
    normal = torch.zeros_like(o)
    normal.scatter_(1, axis[:, None], (1.0 - 2.0 * up[:, None]).double())
    return t, normal, 2 * axis + up


def _rot_z(angle: float) -> Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def hit_box(o: Tensor, d: Tensor, centre: Tensor, half: Tensor, yaw: float
            ) -> tuple[Tensor, Tensor]:
    """A box turned by ``yaw`` about z: entry t (N,) (inf on a miss) and world normal (N, 3)."""
    rot = _rot_z(yaw)
    ol, dl = (o - centre) @ rot, d @ rot  # world -> box frame (rows times R = R^T x)
    t1, t2 = _safe_div(-half - ol, dl), _safe_div(half - ol, dl)
    t_near, axis = torch.minimum(t1, t2).max(-1)
    t_far = torch.maximum(t1, t2).min(-1).values
    hit = (t_near <= t_far) & (t_near > EPS)
    sign = -torch.sign(dl.gather(1, axis[:, None]))
    normal = torch.zeros_like(o).scatter_(1, axis[:, None], sign) @ rot.T
    return torch.where(hit, t_near, math.inf), normal


def hit_sphere(o: Tensor, d: Tensor, centre: Tensor, radius: float) -> tuple[Tensor, Tensor]:
    """Nearest entry t (N,) into a sphere (inf on a miss) and the outward normal (N, 3)."""
    oc = o - centre
    a, b, c = (d * d).sum(-1), 2 * (oc * d).sum(-1), (oc * oc).sum(-1) - radius**2
    disc = b * b - 4 * a * c
    t = (-b - torch.sqrt(disc.clamp(min=0))) / (2 * a)
    hit = (disc >= 0) & (t > EPS)
    normal = (oc + t[:, None] * d) / radius
    return torch.where(hit, t, math.inf), normal


def hit_cylinder(o: Tensor, d: Tensor, base: Tensor, radius: float, height: float
                 ) -> tuple[Tensor, Tensor]:
    """A closed vertical cylinder from ``base`` (3,) up by ``height``: t (N,) and normal."""
    oc = o - base
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = 2 * (oc[:, 0] * d[:, 0] + oc[:, 1] * d[:, 1])
    c = oc[:, 0] ** 2 + oc[:, 1] ** 2 - radius**2
    disc = b * b - 4 * a * c
    t_side = _safe_div(-b - torch.sqrt(disc.clamp(min=0)), 2 * a)
    z_side = oc[:, 2] + t_side * d[:, 2]
    side = (disc >= 0) & (t_side > EPS) & (z_side >= 0) & (z_side <= height)
    t_side = torch.where(side, t_side, math.inf)
    n_side = oc + t_side.clamp(max=1e9)[:, None] * d
    n_side = torch.nn.functional.normalize(n_side * torch.tensor([1.0, 1.0, 0.0]), dim=-1)
    t_caps, n_caps = [], []
    for z in (0.0, height):
        tc = _safe_div(z - oc[:, 2], d[:, 2])
        pc = oc + tc.clamp(-1e9, 1e9)[:, None] * d
        inside = (pc[:, 0] ** 2 + pc[:, 1] ** 2 <= radius**2) & (tc > EPS)
        t_caps.append(torch.where(inside, tc, math.inf))
        n_caps.append(torch.tensor([0.0, 0.0, 1.0 if z > 0 else -1.0]).expand_as(o))
    ts = torch.stack([t_side, *t_caps], -1)
    t, which = ts.min(-1)
    normals = torch.stack([n_side, *n_caps], 1)
    return t, normals[torch.arange(o.shape[0]), which]


def _random_texture(rng: np.random.Generator, kinds: tuple[str, ...], base: np.ndarray | None
                    = None) -> _Texture:
    c0 = rng.uniform(0.1, 0.9, 3) if base is None else base
    c1 = np.clip(c0 * rng.uniform(0.3, 0.8) + rng.uniform(-0.1, 0.1, 3), 0.02, 1.0)
    return _Texture(str(rng.choice(kinds)), np.stack([c0, c1]), float(rng.uniform(0.15, 0.8)),
                    int(rng.integers(0, 3)), rng.uniform(0, 1, 3))


class _Object(NamedTuple):
    kind: str
    params: tuple
    texture: _Texture

    def hit(self, o: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        fn = {"box": hit_box, "sphere": hit_sphere, "cylinder": hit_cylinder}[self.kind]
        return fn(o, d, *self.params)


def _random_objects(rng: np.random.Generator, cfg: SceneConfig, eye: np.ndarray, yaw: float,
                    half_fov: float, lo: np.ndarray, hi: np.ndarray) -> list[_Object]:
    """Objects on the floor (a few spheres float) inside the room, mostly in view."""
    objects = []
    for _ in range(int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))):
        size = float(rng.uniform(0.15, 0.6))
        ang = yaw + rng.uniform(-1.2, 1.2) * half_fov
        dist = rng.uniform(1.0 + size, 6.0)
        xy = eye[:2] + dist * np.array([math.cos(ang), math.sin(ang)])
        xy = np.clip(xy, lo[:2] + size + 0.05, hi[:2] - size - 0.05)
        if np.linalg.norm(xy - eye[:2]) < 1.5 * size + 0.5:  # camera stays outside
            continue
        kind = str(rng.choice(["box", "sphere", "cylinder"]))
        tex = _random_texture(rng, ("plain", "stripes", "checker"))
        if kind == "box":
            half = np.array([size, rng.uniform(0.15, 0.6), rng.uniform(0.15, 0.8)])
            centre = torch.tensor([xy[0], xy[1], half[2]])
            params = (centre, torch.as_tensor(half), float(rng.uniform(0, math.pi)))
        elif kind == "sphere":
            z = size if rng.uniform() < 0.7 else rng.uniform(size + 0.3, hi[2] - size - 0.1)
            params = (torch.tensor([xy[0], xy[1], z]), size)
        else:
            params = (torch.tensor([xy[0], xy[1], 0.0]), 0.6 * size,
                      float(rng.uniform(0.3, min(2.0, hi[2] - 0.2))))
        objects.append(_Object(kind, params, tex))
    return objects


def random_intrinsics(rng: np.random.Generator, cfg: SceneConfig) -> Intrinsics:
    """Log-uniform focal length over the field-of-view range, jittered principal point."""
    w, h = cfg.width, cfg.height
    f_lo, f_hi = (0.5 * w / math.tan(math.radians(a) / 2) for a in cfg.fov_deg[::-1])
    fx = math.exp(rng.uniform(math.log(f_lo), math.log(f_hi)))
    fy = fx * rng.uniform(*cfg.pixel_aspect)
    cx = w * (0.5 + rng.uniform(-1, 1) * cfg.principal_jitter)
    cy = h * (0.5 + rng.uniform(-1, 1) * cfg.principal_jitter)
    return Intrinsics(fx, fy, cx, cy, w, h)


def _camera(rng: np.random.Generator, cfg: SceneConfig, K: Intrinsics, lo: np.ndarray,
            hi: np.ndarray) -> tuple[Cameras, np.ndarray, float]:
    eye = np.array([rng.uniform(lo[0] + 0.4, hi[0] - 0.4), rng.uniform(lo[1] + 0.4, hi[1] - 0.4),
                    rng.uniform(*cfg.camera_height)])
    yaw = math.atan2(-eye[1], -eye[0]) + rng.uniform(-1.2, 1.2)  # roughly into the room
    pitch = math.radians(rng.uniform(*cfg.pitch_deg))
    look = np.array([math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch),
                     math.sin(pitch)])
    eye_t = torch.as_tensor(eye)[None]
    cams = Cameras.look_at(eye_t, eye_t + torch.as_tensor(look)[None], K.matrix(),
                           K.width, K.height)
    roll = math.radians(rng.uniform(*cfg.roll_deg))
    c, s = math.cos(roll), math.sin(roll)
    roll_m = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    cams.R = roll_m @ cams.R
    cams.t = -(cams.R @ eye_t[..., None])[..., 0]
    return cams, eye, yaw


def _room_texture(rng: np.random.Generator, face: int) -> _Texture:
    if face == 4:  # floor
        return _random_texture(rng, ("checker", "stripes", "plain"))
    if face == 5:  # ceiling
        return _Texture("plain", np.stack([rng.uniform(0.7, 0.95, 3)] * 2))
    return _random_texture(rng, ("plain", "plain", "stripes"))


def render_scene(rng: np.random.Generator, cfg: SceneConfig = SceneConfig()) -> Scene:
    """Draw and ray-cast one random scene."""
    K = random_intrinsics(rng, cfg)
    half = rng.uniform(*cfg.room_half, 2)
    lo = np.array([-half[0], -half[1], 0.0])
    hi = np.array([half[0], half[1], rng.uniform(*cfg.room_height)])
    cams, eye, yaw = _camera(rng, cfg, K, lo, hi)
    half_fov = math.atan(K.width / (2 * K.fx))
    objects = _random_objects(rng, cfg, eye, yaw, half_fov, lo, hi)
    room_tex = [_room_texture(rng, f) for f in range(6)]

    o, d = (x.reshape(-1, 3) for x in cams.rays())
    t, normal, face = hit_room(o, d, torch.as_tensor(lo), torch.as_tensor(hi))
    albedo_id = face  # 0..5 room faces, 6.. objects
    for i, obj in enumerate(objects):
        t_i, n_i = obj.hit(o, d)
        closer = t_i < t
        t = torch.where(closer, t_i, t)
        normal = torch.where(closer[:, None], n_i, normal)
        albedo_id = torch.where(closer, 6 + i, albedo_id)
    normal = torch.where(((normal * d).sum(-1) > 0)[:, None], -normal, normal)
    p = o + t[:, None] * d

    textures = room_tex + [obj.texture for obj in objects]
    albedo = torch.zeros_like(p)
    for i, tex in enumerate(textures):
        sel = albedo_id == i
        if sel.any():
            albedo[sel] = tex.albedo(p[sel])
    radiance = albedo * _shading(rng, p, normal, objects, lo, hi)[:, None]
    image = radiance.clamp(0, 1) ** (1 / 2.2)

    h, w = cfg.height, cfg.width
    R = cams.R[0]
    return Scene(
        image=image.reshape(h, w, 3).float(),
        depth=t.reshape(h, w).float(),
        normals=(normal @ R.T).reshape(h, w, 3).float(),
        intrinsics=K,
        up=(R @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)).float(),
        camera_height=float(eye[2]),
    )


def _shading(rng: np.random.Generator, p: Tensor, n: Tensor, objects: list[_Object],
             lo: np.ndarray, hi: np.ndarray) -> Tensor:
    """(N,) Lambertian irradiance: ambient + sky-like directional + shadowed point light."""
    ambient = rng.uniform(0.15, 0.35)
    az, el = rng.uniform(0, 2 * math.pi), rng.uniform(0.4, 1.3)
    sun = torch.tensor([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)],
                       dtype=torch.float64)
    lamp = torch.as_tensor(lo + (hi - lo) * np.array([rng.uniform(0.2, 0.8),
                                                      rng.uniform(0.2, 0.8), 0.92]))
    to_lamp = lamp - p
    dist = to_lamp.norm(dim=-1)
    lit = torch.ones_like(dist, dtype=torch.bool)
    for obj in objects:  # shadow rays: blocked if an object lies between point and lamp
        t_i, _ = obj.hit(p + 1e-4 * n, to_lamp)
        lit &= ~(t_i < 1.0)
    lamp_term = (n * to_lamp).sum(-1).clamp(min=0) / dist / (1 + 0.08 * dist**2)
    sun_term = (n @ sun).clamp(min=0)
    power = rng.uniform(0.5, 1.1)
    return ambient + 0.35 * sun_term + power * lamp_term * lit


class SceneBatch(NamedTuple):
    """Stacked scenes: image (B, 3, H, W) in [0, 1], depth (B, H, W) in metres,
    normals (B, 3, H, W) camera frame, K (B, 3, 3), up (B, 3), camera_height (B,)."""

    image: Tensor
    depth: Tensor
    normals: Tensor
    K: Tensor
    up: Tensor
    camera_height: Tensor


def render_batch(rng: np.random.Generator, n: int, cfg: SceneConfig = SceneConfig()
                 ) -> SceneBatch:
    """``n`` random scenes stacked channels-first (float32)."""
    scenes = [render_scene(rng, cfg) for _ in range(n)]
    return SceneBatch(
        image=torch.stack([s.image.permute(2, 0, 1) for s in scenes]),
        depth=torch.stack([s.depth for s in scenes]),
        normals=torch.stack([s.normals.permute(2, 0, 1) for s in scenes]),
        K=torch.stack([s.intrinsics.matrix(torch.float32) for s in scenes]),
        up=torch.stack([s.up for s in scenes]),
        camera_height=torch.tensor([s.camera_height for s in scenes]),
    )
