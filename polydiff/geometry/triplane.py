"""Triplanes: features on three axis-aligned planes decoded to a signed distance and a colour.

A triplane is (B, 3, C, R, R): planes xy, xz and yz over the unit cube [-b, b]^3 (b = 0.5,
the geometry package's convention; world +z up). A 3-D point takes each plane's feature at
its projection (bilinear ``grid_sample``), the three are summed or concatenated, and small
MLPs (64 wide, 2 hidden layers; TriplaneTurbo) give

    sdf(p) = mlp_sdf(f_geo(p)) + (|p| - r)      signed distance, negative inside, the
                                                 sphere bias |p| - r starts every field
                                                 as a sphere of radius r;
    rgb(p) = sigmoid(mlp_rgb(f_tex(p)))          colour in [0, 1].

From a field: an SDF grid, a closed mesh by marching cubes (scikit-image) with vertex
colours, a differentiable surface for the rasterizer (vertices move along the normal as the
SDF changes, as in MeshSDF), and VolSDF-style volume rendering of normals, coverage, depth
and colour along camera rays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from polydiff.geometry.cameras import Cameras
from polydiff.runtime import UserError, check_memory

PLANES = ("xy", "xz", "yz")
_AXES = ((0, 1), (0, 2), (1, 2))  # the coordinates each plane is indexed by
# Tetrahedral finite differences: g = sum_i k_i f(p + h k_i) / (4 h) is exact for linear f.
_TETRA = torch.tensor([[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, 1.0, 1.0]])
MIN_RESOLUTION, MAX_RESOLUTION = 16, 512


def sample_planes(planes: Tensor, points: Tensor, bound: float = 0.5) -> Tensor:
    """Bilinear plane features at 3-D points.

    planes (B, 3, C, R, R) in the order ``PLANES``; points (B, N, 3) world coordinates in
    [-bound, bound] (outside: the border value). Plane xy is indexed by (x, y): x along
    its width, y along its height. Returns (B, 3, N, C).
    """
    B, P, C, H, W = planes.shape
    if P != 3:
        raise ValueError(f"a triplane has 3 planes, got {P}")
    q = points / bound
    grid = torch.stack([q[..., list(a)] for a in _AXES], 1)             # (B, 3, N, 2)
    feats = F.grid_sample(planes.reshape(B * 3, C, H, W), grid.reshape(B * 3, 1, -1, 2),
                          mode="bilinear", padding_mode="border", align_corners=False)
    return feats.reshape(B, 3, C, -1).transpose(2, 3)                  # (B, 3, N, C)


def _mlp(c_in: int, hidden: int, layers: int, c_out: int) -> nn.Sequential:
    widths = [c_in] + [hidden] * layers
    body = [m for a, b in zip(widths[:-1], widths[1:]) for m in (nn.Linear(a, b), nn.SiLU())]
    return nn.Sequential(*body, nn.Linear(hidden, c_out))


class TriplaneField(ModelMixin, ConfigMixin):
    """SDF and RGB heads on a geometry triplane and a texture triplane (see module docstring).

    Args:
        channels: C, feature channels per plane.
        hidden, layers: width and hidden-layer count of each MLP.
        aggregate: "sum" (C inputs) or "concat" (3C inputs) of the three plane features.
        sphere_radius: r of the sphere bias |p| - r.
        bound: half side b of the cube the planes span.
        sdf_init_scale: factor on the SDF head's last-layer weights at init (1: PyTorch's
            default scale). Small starts the field as a smooth sphere, which score
            distillation from scratch needs (at 0.1 and above a few PRD steps no longer
            lower the toy teacher's loss, tests/apps/mesh/test_distill.py), but the field
            then hardly depends on the planes: with unit-scale plane features, 0.05 changes
            the SDF by 0.0016 between unrelated latents (0.3: 0.01, 1: 0.03 with an eikonal
            error of 0.37). The teacher-anchored warm-up (apps/mesh/anchor.py) fits the
            decoder to many shapes first, which is what makes it follow its input.
    """

    @register_to_config
    def __init__(self, channels: int = 16, hidden: int = 64, layers: int = 2,
                 aggregate: str = "sum", sphere_radius: float = 0.3, bound: float = 0.5,
                 sdf_init_scale: float = 0.05):
        super().__init__()
        if aggregate not in ("sum", "concat"):
            raise ValueError(f"aggregate must be 'sum' or 'concat', got {aggregate!r}")
        c_in = channels if aggregate == "sum" else 3 * channels
        self.sdf_mlp = _mlp(c_in, hidden, layers, 1)
        self.rgb_mlp = _mlp(c_in, hidden, layers, 3)
        with torch.no_grad():  # the bias sphere plus a residual that follows the planes
            self.sdf_mlp[-1].weight.mul_(sdf_init_scale)
            self.sdf_mlp[-1].bias.zero_()

    def _features(self, planes: Tensor, points: Tensor) -> Tensor:
        f = sample_planes(planes, points, self.config.bound)              # (B, 3, N, C)
        if self.config.aggregate == "sum":
            return f.sum(1)
        return torch.cat(f.unbind(1), dim=-1)

    def sdf(self, geo: Tensor, points: Tensor) -> Tensor:
        """Signed distance (B, N) at points (B, N, 3) of geometry planes (B, 3, C, R, R)."""
        bias = points.norm(dim=-1) - self.config.sphere_radius
        return self.sdf_mlp(self._features(geo, points))[..., 0] + bias

    def rgb(self, tex: Tensor, points: Tensor) -> Tensor:
        """Colour (B, N, 3) in [0, 1] at points (B, N, 3) of texture planes (B, 3, C, R, R)."""
        return torch.sigmoid(self.rgb_mlp(self._features(tex, points)))

    def sdf_gradient(self, geo: Tensor, points: Tensor, h: float = 1e-2) -> Tensor:
        """∇sdf (B, N, 3) by tetrahedral finite differences of step ``h`` (differentiable)."""
        k = _TETRA.to(points)
        B, N, _ = points.shape
        shifted = (points[:, :, None] + h * k).reshape(B, N * 4, 3)
        s = self.sdf(geo, shifted).reshape(B, N, 4)
        return (s[..., None] * k).sum(2) / (4 * h)


# --------------------------------------------------------------------------- grids and meshes
def grid_points(resolution: int, bound: float = 0.5, device: torch.device | str = "cpu"
                ) -> Tensor:
    """(R, R, R, 3) points of a regular grid spanning [-bound, bound]^3, indexed [x, y, z]."""
    axis = torch.linspace(-bound, bound, resolution, device=device)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1)


def check_resolution(resolution: int) -> int:
    """Refuse a marching-cubes resolution outside [16, 512] (one line)."""
    if not MIN_RESOLUTION <= int(resolution) <= MAX_RESOLUTION:
        raise UserError(f"resolution must lie in [{MIN_RESOLUTION}, {MAX_RESOLUTION}], "
                        f"got {resolution}")
    return int(resolution)


@torch.no_grad()
def sdf_volume(field: TriplaneField, geo: Tensor, resolution: int,
               chunk: int = 1 << 16) -> Tensor:
    """SDF of one object (geo (1, 3, C, R, R)) on the grid ``grid_points``: (R, R, R)."""
    check_resolution(resolution)
    check_memory(resolution**3 * 4 * 8, f"a {resolution}^3 SDF grid")
    pts = grid_points(resolution, field.config.bound, geo.device).reshape(1, -1, 3)
    out = torch.cat([field.sdf(geo, pts[:, i:i + chunk]) for i in range(0, pts.shape[1], chunk)],
                    dim=1)
    return out.reshape(resolution, resolution, resolution)


class EmptyFieldError(UserError):
    """An SDF grid with no inside: there is no surface to extract."""


def marching_cubes(volume: np.ndarray | Tensor, bound: float = 0.5
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Closed surface of an SDF grid (R, R, R) over [-bound, bound]^3 (negative inside).

    The outermost grid layer is forced outside, so the surface is closed and stays in the
    cube. Returns vertices (N, 3) float64 and faces (F, 3) int64, counter-clockwise seen
    from outside. A field with no inside is an :class:`EmptyFieldError` (a UserError).
    """
    vol = volume.detach().cpu().numpy() if isinstance(volume, Tensor) else np.asarray(volume)
    vol = vol.astype(np.float64).copy()
    R = vol.shape[0]
    step = 2 * bound / (R - 1)
    for axis in range(3):  # close the surface at the cube's faces
        for idx in (0, R - 1):
            sl = [slice(None)] * 3
            sl[axis] = idx
            vol[tuple(sl)] = np.maximum(vol[tuple(sl)], 0.5 * step)
    if not np.isfinite(vol).all():
        raise UserError("the SDF grid holds NaN or infinite values")
    if vol.min() >= 0:
        raise EmptyFieldError("the field has no inside (the SDF is positive everywhere)")
    from skimage.measure import marching_cubes as skimage_mc

    verts, faces, _, _ = skimage_mc(vol, 0.0, spacing=(step,) * 3, allow_degenerate=False)
    return verts - bound, faces.astype(np.int64)


class TriMesh(NamedTuple):
    """A mesh from a field: verts (N, 3) world, faces (F, 3) int64, colors (N, 3) in [0, 1]."""

    verts: Tensor
    faces: Tensor
    colors: Tensor


def _clean(verts: np.ndarray, faces: np.ndarray, min_fraction: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Merge duplicate vertices, drop components with under ``min_fraction`` of the faces."""
    import trimesh

    mesh = trimesh.Trimesh(verts, faces, process=True)
    if min_fraction > 0:
        parts = mesh.split(only_watertight=False)
        if len(parts) > 1:
            keep = [p for p in parts if len(p.faces) >= min_fraction * len(mesh.faces)]
            mesh = trimesh.util.concatenate(keep or [max(parts, key=lambda p: len(p.faces))])
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def extract_mesh(field: TriplaneField, geo: Tensor, tex: Tensor | None = None,
                 resolution: int = 64, *, min_component: float = 0.02) -> TriMesh:
    """Marching cubes of one object's field at ``resolution``^3, colours from the RGB head.

    geo, tex: (1, 3, C, R, R) (tex None: grey). Components with fewer than ``min_component``
    of the faces (floaters) are dropped; each kept component is closed. No gradients.
    """
    vol = sdf_volume(field, geo, resolution)
    verts, faces = marching_cubes(vol, field.config.bound)
    verts, faces = _clean(verts, faces, min_component)
    v = torch.as_tensor(verts, dtype=geo.dtype, device=geo.device)
    f = torch.as_tensor(faces, dtype=torch.int64, device=geo.device)
    with torch.no_grad():
        colors = field.rgb(tex, v[None])[0] if tex is not None else torch.full_like(v, 0.7)
    return TriMesh(v, f, colors)


def differentiable_surface(field: TriplaneField, geo: Tensor, verts: Tensor) -> Tensor:
    """Vertices (N, 3) of an extracted surface that carry the SDF's gradient (MeshSDF).

    A vertex on the level set moves by -δs·n when the SDF changes by δs, n = ∇s/|∇s|.
    The returned positions equal ``verts``; their gradient w.r.t. the field's parameters
    and ``geo`` is -n·∂s. geo (1, 3, C, R, R).
    """
    p = verts.detach()[None].requires_grad_(True)
    with torch.enable_grad():
        s = field.sdf(geo.detach(), p)
        (g,) = torch.autograd.grad(s.sum(), p)
    n = F.normalize(g[0], dim=-1, eps=1e-8)
    s = field.sdf(geo, verts.detach()[None])[0]
    return verts.detach() - (s - s.detach())[:, None] * n


# --------------------------------------------------------------------------- volume rendering
class VolumeRender(NamedTuple):
    """Volume-rendered views, each (B, V, H, W, ...): normals (world, unnormalised blend of
    unit normals), mask (accumulated opacity in [0, 1]), depth (expected z-depth, 0 where
    empty) and color (premultiplied RGB, black background; None without texture planes)."""

    normals: Tensor
    mask: Tensor
    depth: Tensor
    color: Tensor | None


def laplace_density(sdf: Tensor, beta: float) -> Tensor:
    """VolSDF density σ = Ψ_β(−s) / β, Ψ_β the Laplace(0, β) CDF (units 1/length)."""
    x = -sdf / beta
    psi = torch.where(x <= 0, 0.5 * torch.exp(x.clamp(max=0)),
                      1 - 0.5 * torch.exp(-x.clamp(min=0)))
    return psi / beta


def _ray_box(origins: Tensor, dirs: Tensor, bound: float) -> tuple[Tensor, Tensor]:
    """Entry and exit parameters (...,) of rays through the cube [-bound, bound]^3."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0, t1 = (-bound - origins) * inv, (bound - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp(min=0)
    far = torch.maximum(t0, t1).amin(-1)
    return near, torch.maximum(far, near)


def volume_render(field: TriplaneField, geo: Tensor, tex: Tensor | None, cameras: Cameras,
                  *, samples: int = 48, beta: float = 0.01, fd_step: float = 1e-2,
                  generator: torch.Generator | None = None) -> VolumeRender:
    """Render B objects from the same V cameras by SDF volume rendering (VolSDF).

    geo, tex: (B, 3, C, R, R); cameras: V cameras (any dtype; rendering uses geo's).
    ``samples`` points per ray across the cube, jittered with ``generator`` when given.
    Normals are finite-difference SDF gradients, normalised, so everything is
    differentiable w.r.t. the planes and the field.
    """
    B, V, H, W = geo.shape[0], len(cameras.R), cameras.height, cameras.width
    check_memory(B * V * H * W * samples * 4 * 64 * 4, "volume rendering")
    origins, dirs = cameras.rays()                                        # (V, H, W, 3)
    origins, dirs = origins.to(geo), dirs.to(geo)
    near, far = _ray_box(origins, dirs, field.config.bound)              # (V, H, W)
    u = (torch.arange(samples, device=geo.device, dtype=geo.dtype) + 0.5) / samples
    if generator is not None:
        jitter = torch.rand(samples, generator=generator, device=generator.device)
        u = (torch.arange(samples, device=geo.device, dtype=geo.dtype)
             + jitter.to(geo)) / samples
    t = near[..., None] + (far - near)[..., None] * u                    # (V, H, W, S)
    pts = origins[..., None, :] + t[..., None] * dirs[..., None, :]      # (V, H, W, S, 3)
    flat = pts.reshape(1, -1, 3).expand(B, -1, -1)
    sdf = field.sdf(geo, flat).reshape(B, V, H, W, samples)
    grad = field.sdf_gradient(geo, flat, fd_step).reshape(B, V, H, W, samples, 3)
    delta = ((far - near) / samples)[..., None].expand_as(t)             # ray-parameter step
    sigma = laplace_density(sdf, beta)
    # dirs are scaled so the parameter is z-depth: metric length = delta * |dir|
    alpha = 1 - torch.exp(-sigma * (delta * dirs.norm(dim=-1, keepdim=True)))
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha[..., :-1] + 1e-10],
                                    -1), -1)
    w = alpha * trans                                                     # (B, V, H, W, S)
    normals = (w[..., None] * F.normalize(grad, dim=-1, eps=1e-8)).sum(-2)
    color = None
    if tex is not None:
        rgb = field.rgb(tex, flat).reshape(B, V, H, W, samples, 3)
        color = (w[..., None] * rgb).sum(-2)
    return VolumeRender(normals, w.sum(-1), (w * t).sum(-1), color)


def eikonal_loss(field: TriplaneField, geo: Tensor, points: Tensor, h: float = 1e-2) -> Tensor:
    """Mean (|∇sdf| − 1)² at points (B, N, 3): keeps the field a distance function."""
    return ((field.sdf_gradient(geo, points, h).norm(dim=-1) - 1) ** 2).mean()


def sparsity_loss(field: TriplaneField, geo: Tensor, points: Tensor,
                  scale: float = 100.0) -> Tensor:
    """Mean exp(−scale·|sdf|) at points (B, N, 3): penalises stray surfaces (floaters)."""
    return torch.exp(-scale * field.sdf(geo, points).abs()).mean()
