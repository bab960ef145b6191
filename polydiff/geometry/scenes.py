"""Procedural scenes by analytic ray casting: RGB with exact depth, normals and K.

Indoors, a room (floor z = 0, ceiling, four walls; world z is up) holds boxes, spheres and
cylinders and (``furniture``) tables with legs, chairs and shelves with clutter on the
table tops, lit by an ambient term, a directional light and a point light that casts hard
shadows (Lambertian shading). Outdoors (``outdoor_fraction``), a ground plane runs to the
horizon under a sky at infinity (its depth is the far limit ``far``; its normals face the
camera), with buildings, cars and trees lit by a sun that casts shadows. Textures are
procedural (plain, stripes, checker) or, with ``photo_fraction``, real photographs
(``polydiff.geometry.textures``). The camera has a random height, heading, pitch and roll;
focal lengths range from wide to tele (log-uniform) with a random principal point and
pixel aspect. Everything random comes from the ``np.random.Generator`` passed in (the new
options draw nothing when off, so the default scenes are those of earlier versions); the
ray casting is vectorised over pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from polydiff.geometry.cameras import Cameras, Intrinsics
from polydiff.geometry.textures import Texture, random_texture

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
    outdoor_fraction: float = 0.0  # share of outdoor scenes
    photo_fraction: float = 0.0  # share of surfaces textured with a real photograph
    furniture: tuple[int, int] = (0, 0)  # tables, chairs and shelves per room
    light_tint: float = 0.0  # colour of the lights: 0 white, up to 1 strongly tinted
    far: float = 80.0  # metres: depth of the sky, and the cap of every depth outdoors


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


class _Object(NamedTuple):
    kind: str
    params: tuple
    texture: Texture

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
        tex = random_texture(rng, ("plain", "stripes", "checker"), None, cfg.photo_fraction)
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


def _look(rng: np.random.Generator, cfg: SceneConfig, K: Intrinsics, eye: np.ndarray,
          yaw: float, pitch_deg: tuple[float, float]) -> Cameras:
    """A camera at ``eye`` heading ``yaw`` with a random pitch and roll."""
    pitch = math.radians(rng.uniform(*pitch_deg))
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
    return cams


def _camera(rng: np.random.Generator, cfg: SceneConfig, K: Intrinsics, lo: np.ndarray,
            hi: np.ndarray) -> tuple[Cameras, np.ndarray, float]:
    eye = np.array([rng.uniform(lo[0] + 0.4, hi[0] - 0.4), rng.uniform(lo[1] + 0.4, hi[1] - 0.4),
                    rng.uniform(*cfg.camera_height)])
    yaw = math.atan2(-eye[1], -eye[0]) + rng.uniform(-1.2, 1.2)  # roughly into the room
    return _look(rng, cfg, K, eye, yaw, cfg.pitch_deg), eye, yaw


def _room_texture(rng: np.random.Generator, face: int, photo: float = 0.0) -> Texture:
    if face == 4:  # floor
        return random_texture(rng, ("checker", "stripes", "plain"), None, photo)
    if face == 5:  # ceiling
        return Texture("plain", np.stack([rng.uniform(0.7, 0.95, 3)] * 2))
    return random_texture(rng, ("plain", "plain", "stripes"), None, photo)


def _box(centre: np.ndarray, half: np.ndarray, yaw: float, tex: Texture) -> _Object:
    return _Object("box", (torch.as_tensor(np.asarray(centre, np.float64)),
                           torch.as_tensor(np.asarray(half, np.float64)), float(yaw)), tex)


def _piece(rng: np.random.Generator, kind: str, xy: np.ndarray, yaw: float, tex: Texture,
           photo: float) -> list[_Object]:
    """One piece of furniture standing at ``xy``: boxes in the piece's own frame turned by
    ``yaw`` (a table or chair has four legs; a table may hold clutter)."""
    rot = _rot_z(yaw).numpy()

    def at(dx: float, dy: float, z: float) -> np.ndarray:
        return np.array([*xy, 0.0]) + rot @ np.array([dx, dy, z])

    parts: list[_Object] = []
    if kind == "shelf":
        half = np.array([rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3), rng.uniform(0.5, 1.0)])
        parts.append(_box(at(0, 0, half[2]), half, yaw, tex))
        return parts
    table = kind == "table"
    w, d = (rng.uniform(0.35, 0.8), rng.uniform(0.3, 0.55)) if table else (0.22, 0.22)
    top = rng.uniform(0.45, 0.8) if table else rng.uniform(0.4, 0.5)
    leg = 0.025
    parts.append(_box(at(0, 0, top - 0.02), np.array([w, d, 0.02]), yaw, tex))
    for sx in (-1, 1):
        for sy in (-1, 1):
            c = at(sx * (w - 0.05), sy * (d - 0.05), (top - 0.04) / 2)
            parts.append(_box(c, np.array([leg, leg, (top - 0.04) / 2]), yaw, tex))
    if not table:  # the chair's back
        parts.append(_box(at(0, -d + 0.02, top + 0.25), np.array([w, 0.02, 0.25]), yaw, tex))
        return parts
    for _ in range(int(rng.integers(0, 4))):  # clutter on the table top
        size = rng.uniform(0.04, 0.12)
        c = at(rng.uniform(-0.7, 0.7) * w, rng.uniform(-0.7, 0.7) * d, top + size)
        small = random_texture(rng, ("plain", "stripes", "checker"), None, photo)
        if rng.uniform() < 0.5:
            parts.append(_Object("sphere", (torch.as_tensor(c), float(size)), small))
        else:
            parts.append(_box(c, np.array([size, rng.uniform(0.04, 0.12), size]),
                              rng.uniform(0, math.pi), small))
    return parts


def _furniture(rng: np.random.Generator, cfg: SceneConfig, eye: np.ndarray, yaw: float,
               half_fov: float, lo: np.ndarray, hi: np.ndarray) -> list[_Object]:
    """Tables (with clutter), chairs and shelves standing on the floor, mostly in view."""
    objects: list[_Object] = []
    for _ in range(int(rng.integers(cfg.furniture[0], cfg.furniture[1] + 1))):
        kind = str(rng.choice(["table", "chair", "shelf"]))
        ang = yaw + rng.uniform(-1.2, 1.2) * half_fov
        xy = eye[:2] + rng.uniform(1.3, 5.0) * np.array([math.cos(ang), math.sin(ang)])
        xy = np.clip(xy, lo[:2] + 0.9, hi[:2] - 0.9)
        if np.linalg.norm(xy - eye[:2]) < 1.2:  # the camera stays outside
            continue
        tex = random_texture(rng, ("plain", "stripes"), None, cfg.photo_fraction)
        objects += _piece(rng, kind, xy, float(rng.uniform(0, math.pi)), tex,
                          cfg.photo_fraction)
    return objects


def _cast(o: Tensor, d: Tensor, t: Tensor, normal: Tensor, ids: Tensor, objects: list[_Object],
          first_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """The nearest of the background hit (t, normal, ids) and ``objects`` (ids from
    ``first_id``); normals turned to face the ray."""
    for i, obj in enumerate(objects):
        t_i, n_i = obj.hit(o, d)
        closer = t_i < t
        t = torch.where(closer, t_i, t)
        normal = torch.where(closer[:, None], n_i, normal)
        ids = torch.where(closer, first_id + i, ids)
    normal = torch.where(((normal * d).sum(-1) > 0)[:, None], -normal, normal)
    return t, normal, ids


def _albedo(p: Tensor, normal: Tensor, ids: Tensor, textures: list[Texture]) -> Tensor:
    albedo = torch.zeros_like(p)
    for i, tex in enumerate(textures):
        sel = ids == i
        if sel.any():
            albedo[sel] = tex.albedo(p[sel], normal[sel])
    return albedo


def _tint(rng: np.random.Generator, strength: float) -> Tensor:
    """(3,) colour of a light of mean 1 (white without a draw when ``strength`` is 0)."""
    if strength <= 0:
        return torch.ones(3, dtype=torch.float64)
    c = 1 + strength * rng.uniform(-0.3, 0.3, 3)
    return torch.as_tensor(c / c.mean())


def render_scene(rng: np.random.Generator, cfg: SceneConfig = SceneConfig()) -> Scene:
    """Draw and ray-cast one random scene (outdoors with probability ``outdoor_fraction``)."""
    if cfg.outdoor_fraction > 0 and rng.uniform() < cfg.outdoor_fraction:
        return render_outdoor(rng, cfg)
    K = random_intrinsics(rng, cfg)
    half = rng.uniform(*cfg.room_half, 2)
    lo = np.array([-half[0], -half[1], 0.0])
    hi = np.array([half[0], half[1], rng.uniform(*cfg.room_height)])
    cams, eye, yaw = _camera(rng, cfg, K, lo, hi)
    half_fov = math.atan(K.width / (2 * K.fx))
    objects = _random_objects(rng, cfg, eye, yaw, half_fov, lo, hi)
    if cfg.furniture[1] > 0:
        objects += _furniture(rng, cfg, eye, yaw, half_fov, lo, hi)
    room_tex = [_room_texture(rng, f, cfg.photo_fraction) for f in range(6)]

    o, d = (x.reshape(-1, 3) for x in cams.rays())
    t, normal, face = hit_room(o, d, torch.as_tensor(lo), torch.as_tensor(hi))
    t, normal, ids = _cast(o, d, t, normal, face, objects, 6)  # 0..5 room faces, 6.. objects
    p = o + t[:, None] * d
    albedo = _albedo(p, normal, ids, room_tex + [obj.texture for obj in objects])
    light = _shading(rng, p, normal, objects, lo, hi)[:, None] * _tint(rng, cfg.light_tint)
    image = (albedo * light).clamp(0, 1) ** (1 / 2.2)
    return _scene(cfg, cams, image, t, normal, K, eye)


def _scene(cfg: SceneConfig, cams: Cameras, image: Tensor, t: Tensor, normal: Tensor,
           K: Intrinsics, eye: np.ndarray) -> Scene:
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


def unshadowed(p: Tensor, n: Tensor, towards: Tensor, objects: list[_Object],
               reach: float = math.inf) -> Tensor:
    """(N,) whether each point p (N, 3), lifted off its surface along its normal n, sees the
    light at p + reach * towards (N, 3): False where an object lies on that segment (a cast
    shadow)."""
    lit = torch.ones(len(p), dtype=torch.bool)
    for obj in objects:  # shadow rays
        t_i, _ = obj.hit(p + 1e-4 * n, towards)
        lit &= ~(t_i < reach)
    return lit


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
    lit = unshadowed(p, n, to_lamp, objects, reach=1.0)  # the lamp lies at t = 1
    lamp_term = (n * to_lamp).sum(-1).clamp(min=0) / dist / (1 + 0.08 * dist**2)
    sun_term = (n @ sun).clamp(min=0)
    power = rng.uniform(0.5, 1.1)
    return ambient + 0.35 * sun_term + power * lamp_term * lit


def _outdoor_objects(rng: np.random.Generator, cfg: SceneConfig, yaw: float
                     ) -> list[_Object]:
    """A street near the heading ``yaw`` (the camera stands at the origin): buildings on
    both sides 5-80 m ahead, and cars (boxes), trees (a trunk and a crown) and bollards."""
    photo = cfg.photo_fraction
    street = yaw + rng.uniform(-0.4, 0.4)
    ahead = np.array([math.cos(street), math.sin(street), 0.0])
    side = np.array([-ahead[1], ahead[0], 0.0])
    width = rng.uniform(4.0, 12.0)  # half the street's width
    objects: list[_Object] = []
    for _ in range(int(rng.integers(2, 11))):
        half = np.array([rng.uniform(3, 12), rng.uniform(3, 8), rng.uniform(2, 15)])
        lateral = rng.choice([-1.0, 1.0]) * (width + half[1] + rng.uniform(0, 3))
        c = rng.uniform(-5, 80) * ahead + lateral * side + [0, 0, half[2]]
        tex = random_texture(rng, ("plain", "stripes", "checker"), None, photo, (0.8, 3.0))
        objects.append(_box(c, half, street, tex))
    for _ in range(int(rng.integers(0, 8))):
        xy = (rng.uniform(2.5, 40.0) * ahead + rng.uniform(-1, 1) * width * side)[:2]
        tex = random_texture(rng, ("plain", "stripes", "checker"), None, photo)
        kind = str(rng.choice(["car", "tree", "bollard"]))
        if kind == "car":
            half = np.array([rng.uniform(1.8, 2.4), rng.uniform(0.8, 1.0), rng.uniform(0.6, 0.8)])
            objects.append(_box([*xy, half[2] + 0.15], half, street, tex))
        elif kind == "tree":
            crown = rng.uniform(0.8, 2.5)
            trunk = rng.uniform(1.5, 3.5)
            bark = Texture("plain", np.stack([np.array([0.25, 0.18, 0.12])] * 2))
            objects.append(_Object("cylinder", (torch.tensor([*xy, 0.0], dtype=torch.float64),
                                                0.15 + 0.05 * crown, trunk), bark))
            green = random_texture(rng, ("plain", "checker"), np.array(
                [rng.uniform(0.05, 0.25), rng.uniform(0.25, 0.5), rng.uniform(0.05, 0.2)]),
                photo)
            objects.append(_Object("sphere", (torch.tensor([*xy, trunk + 0.8 * crown],
                                                           dtype=torch.float64), crown), green))
        else:
            objects.append(_Object("cylinder", (torch.tensor([*xy, 0.0], dtype=torch.float64),
                                                rng.uniform(0.1, 0.3), rng.uniform(0.5, 1.2)),
                                   tex))
    return objects


def render_outdoor(rng: np.random.Generator, cfg: SceneConfig = SceneConfig()) -> Scene:
    """One outdoor view: a ground plane z = 0 to the horizon, buildings, cars, trees and a
    sky at infinity (depth ``cfg.far``, normals facing the camera), lit by a sun whose
    shadows the objects cast. Every depth is capped at ``cfg.far``."""
    K = random_intrinsics(rng, cfg)
    h_eye = rng.uniform(*cfg.camera_height) * (1.0 if rng.uniform() < 0.8
                                               else rng.uniform(2.0, 6.0))
    eye = np.array([0.0, 0.0, h_eye])
    yaw = rng.uniform(-math.pi, math.pi)
    pitch = (max(cfg.pitch_deg[0], -25.0), min(cfg.pitch_deg[1], 8.0))
    cams = _look(rng, cfg, K, eye, yaw, pitch)
    objects = _outdoor_objects(rng, cfg, yaw)
    ground = random_texture(rng, ("checker", "stripes", "plain"), None,
                            max(cfg.photo_fraction, 0.5) if cfg.photo_fraction > 0 else 0.0,
                            (0.5, 3.0))

    o, d = (x.reshape(-1, 3) for x in cams.rays())
    down = d[:, 2] < -1e-9
    t = torch.where(down, -o[:, 2] / torch.where(down, d[:, 2], -1.0), math.inf)
    normal = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(o).clone()
    ids = torch.zeros(len(o), dtype=torch.long)  # 0 ground, 1.. objects
    t, normal, ids = _cast(o, d, t, normal, ids, objects, 1)
    sky = ~(t < cfg.far)
    t = t.clamp(max=cfg.far)
    normal = torch.where(sky[:, None], -torch.nn.functional.normalize(d, dim=-1), normal)
    p = o + t[:, None] * d
    albedo = _albedo(p, normal, ids, [ground] + [obj.texture for obj in objects])

    ambient = rng.uniform(0.2, 0.45)
    az, el = rng.uniform(0, 2 * math.pi), rng.uniform(0.15, 1.3)
    sun = torch.tensor([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)],
                       dtype=torch.float64)
    lit = unshadowed(p, normal, sun.expand_as(p), objects)  # the sun at infinity
    sun_power = rng.uniform(0.6, 1.2)
    light = (ambient + sun_power * (normal @ sun).clamp(min=0) * lit)[:, None]
    radiance = albedo * light * _tint(rng, cfg.light_tint)
    # the sky: pale at the horizon, deeper towards the zenith (unshaded)
    elev = (torch.nn.functional.normalize(d, dim=-1)[:, 2]).clamp(0, 1)[:, None]
    horizon = torch.as_tensor(rng.uniform(0.55, 0.9) * np.array([0.9, 0.95, 1.0]))
    zenith = torch.as_tensor(rng.uniform(0.5, 1.0) * np.array([0.2, 0.4, 0.9]))
    sky_rgb = horizon + (zenith - horizon) * (elev * 2.5).clamp(max=1)
    radiance = torch.where(sky[:, None], sky_rgb, radiance)
    image = radiance.clamp(0, 1) ** (1 / 2.2)
    return _scene(cfg, cams, image, t, normal, K, eye)


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
