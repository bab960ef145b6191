"""The pure-PyTorch rasterizer against analytic answers and finite differences."""

import math

import pytest
import torch
import trimesh

from polydiff.geometry import raster_torch as rt
from polydiff.geometry.cameras import Cameras, Intrinsics
from polydiff.geometry.raster import opencv_to_clip, to_clip
from polydiff.geometry.render import clip_positions


def pixel_triangles(points_px: list[list[float]], tri: list[list[int]], H: int, W: int,
                    w: float = 1.0, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip positions of vertices given in pixel coordinates (x right, y down) at depth w."""
    P = torch.tensor(points_px, dtype=dtype)
    ndc = torch.stack([2 * P[:, 0] / W - 1, 2 * P[:, 1] / H - 1, torch.zeros(len(P), dtype=dtype)],
                      -1)
    pos = torch.cat([ndc * w, torch.full((len(P), 1), w, dtype=dtype)], -1)[None]
    return pos, torch.tensor(tri, dtype=torch.int32)


def polygon_area(points_px: list[list[float]]) -> float:
    x = torch.tensor([p[0] for p in points_px])
    y = torch.tensor([p[1] for p in points_px])
    return 0.5 * abs(float((x * y.roll(-1) - x.roll(-1) * y).sum()))


def test_triangle_coverage_hard_and_antialiased_match_its_area():
    pts = [[10.3, 5.2], [55.7, 20.1], [20.4, 58.9]]
    pos, tri = pixel_triangles(pts, [[0, 1, 2]], 64, 64)
    rast, db = rt.rasterize(pos, tri, (64, 64))
    assert db is None
    hit = (rast[..., 3] > 0).double()
    aa = rt.antialias(hit[..., None], rast, pos, tri)[..., 0]
    area = polygon_area(pts)
    assert abs(float(hit.sum()) - area) < 0.02 * area
    assert abs(float(aa.sum()) - area) < 0.002 * area  # AA is much closer than the hard mask
    assert ((aa > 0) & (aa < 1)).sum() > 40


def test_pixel_centre_rule_and_row_order():
    """Pixel (r, c) samples ((2c+1)/W - 1, (2r+1)/H - 1): a triangle in the top-left corner
    in pixel coordinates lands in row 0, column 0 of the image."""
    pos, tri = pixel_triangles([[0.0, 0.0], [3.2, 0.0], [0.0, 3.2]], [[0, 1, 2]], 8, 8)
    rast, _ = rt.rasterize(pos, tri, (8, 8))
    ids = rast[0, ..., 3]
    expected = torch.zeros(8, 8)
    for r in range(8):
        for c in range(8):
            expected[r, c] = float((c + 0.5) + (r + 0.5) <= 3.2)
    assert torch.equal(ids, expected.double())


def test_internal_edges_are_not_antialiased():
    pts = [[10.3, 5.2], [55.7, 8.1], [50.4, 58.9], [8.0, 50.0]]
    pos, tri = pixel_triangles(pts, [[0, 1, 2], [0, 2, 3]], 64, 64)
    rast, _ = rt.rasterize(pos, tri, (64, 64))
    hit = (rast[..., 3] > 0).double()[..., None]
    aa = rt.antialias(hit, rast, pos, tri)
    assert abs(float(aa.sum()) - polygon_area(pts)) < 0.002 * polygon_area(pts)
    # the diagonal 0-2 crosses the interior: no pixel there may lose coverage
    inner = rt.antialias(hit, rast, pos, tri)[0, 20:40, 20:40, 0]
    assert torch.all(inner == 1)


def test_z_buffer_keeps_the_nearer_triangle():
    H = W = 32
    near, _ = pixel_triangles([[2, 2], [30, 2], [2, 30]], [[0, 1, 2]], H, W, w=2.0)
    far, _ = pixel_triangles([[2, 2], [30, 2], [30, 30]], [[0, 1, 2]], H, W, w=3.0)
    for order in ((near, far), (far, near)):
        pos = torch.cat(order, 1)
        tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
        rast, _ = rt.rasterize(pos, tri, (H, W))
        nearer_id = 1 if order[0] is near else 2
        # pixel (row 5, col 20) is inside both triangles
        assert rast[0, 5, 20, 3] == nearer_id
        assert rast[0, 25, 28, 3] == (3 - nearer_id)  # only the far one there


def test_plane_depth_is_exact_and_interpolation_is_perspective_correct():
    """A tilted plane seen in perspective: z-depth at every pixel equals the ray-plane
    intersection, and interpolated world positions project back onto pixel centres."""
    H, W = 24, 32
    K = Intrinsics(30.0, 28.0, 15.3, 12.7, W, H).matrix()
    cams = Cameras(K[None], torch.eye(3, dtype=torch.float64)[None],
                   torch.zeros(1, 3, dtype=torch.float64), W, H)
    # plane n . X = d with n = (0.2, -0.3, 1) through (0, 0, 3): big quad in front of the camera
    n, d = torch.tensor([0.2, -0.3, 1.0], dtype=torch.float64), 3.0
    xy = torch.tensor([[-3.0, -3.0], [3.0, -3.0], [3.0, 3.0], [-3.0, 3.0]], dtype=torch.float64)
    z = (d - xy @ n[:2]) / n[2]
    verts = torch.cat([xy, z[:, None]], -1)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    pos = clip_positions(verts, cams)
    rast, _ = rt.rasterize(pos, faces, (H, W))
    assert bool((rast[..., 3] > 0).all())
    world = rt.interpolate(verts, rast, faces)[0]                 # (H, W, 3)
    centres = torch.stack(torch.meshgrid(torch.arange(W) + 0.5, torch.arange(H) + 0.5,
                                         indexing="xy"), -1).reshape(-1, 2).double()
    rays = torch.linalg.inv(K) @ torch.cat([centres, torch.ones(H * W, 1)], -1).T.double()
    depth_true = d / (n @ rays)                                   # z-depth since ray z = 1
    assert torch.allclose(world[..., 2].reshape(-1), depth_true, rtol=1e-9, atol=1e-9)
    uv, _ = cams.project(world.reshape(1, -1, 3))
    assert torch.allclose(uv[0], centres, atol=1e-7)


def test_sphere_silhouette_area_matches_its_projected_disk():
    r, dist, size, fov = 0.5, 3.0, 96, 40.0
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=r)
    K = Intrinsics.from_fov(fov, size, size).matrix()
    eye = torch.tensor([[0.0, -dist, 0.0]], dtype=torch.float64)
    cams = Cameras.look_at(eye, torch.zeros(1, 3, dtype=torch.float64), K, size, size)
    verts = torch.tensor(sphere.vertices, dtype=torch.float32)
    pos = clip_positions(verts, cams)
    rast, _ = rt.rasterize(pos, torch.tensor(sphere.faces), (size, size))
    rho = float(K[0, 0]) * math.tan(math.asin(r / dist))          # disk radius in pixels
    area = float((rast[..., 3] > 0).sum())
    assert abs(area - math.pi * rho**2) < 0.01 * math.pi * rho**2


def test_interpolate_gradient_matches_finite_differences():
    pos, tri = pixel_triangles([[1.3, 2.2], [14.7, 3.1], [4.4, 13.9], [15.0, 15.0]],
                               [[0, 1, 2], [1, 3, 2]], 16, 16)
    rast, _ = rt.rasterize(pos, tri, (16, 16))
    attr = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: rt.interpolate(a, rast, tri), (attr,))
    batched = torch.randn(1, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: rt.interpolate(a, rast, tri), (batched,))


def test_antialias_and_barycentric_gradients_match_finite_differences():
    """d(antialiased image)/d(vertex positions), through AA blends and through (u, v)."""
    gen = torch.Generator().manual_seed(3)
    pts = [[3.3, 2.6], [13.2, 4.1], [5.1, 12.8], [12.6, 13.4]]
    pos0, tri = pixel_triangles(pts, [[0, 1, 2], [1, 3, 2]], 16, 16, w=1.7)
    pos0 = pos0 + 0.01 * torch.rand(pos0.shape, generator=gen, dtype=torch.float64)
    colors = torch.rand(4, 3, generator=gen, dtype=torch.float64)
    weights = torch.rand(1, 16, 16, 3, generator=gen, dtype=torch.float64)

    def image(p):
        rast, _ = rt.rasterize(p, tri, (16, 16))
        return (rt.antialias(rt.interpolate(colors, rast, tri), rast, p, tri) * weights).sum()

    p = pos0.clone().requires_grad_()
    image(p).backward()
    assert p.grad[..., :2].abs().sum() > 0
    fd = torch.zeros_like(pos0)
    eps = 1e-6
    for i in range(4):
        for k in (0, 1, 3):  # x, y, w (z only enters the depth test)
            dp = torch.zeros_like(pos0)
            dp[0, i, k] = eps
            fd[0, i, k] = (image(pos0 + dp) - image(pos0 - dp)) / (2 * eps)
    assert torch.allclose(p.grad, fd, atol=1e-5, rtol=1e-4), (p.grad, fd)


def test_antialias_moves_silhouette_vertices_outward_for_more_coverage():
    pos, tri = pixel_triangles([[3.3, 2.6], [13.2, 4.1], [5.1, 12.8]], [[0, 1, 2]], 16, 16)
    pos.requires_grad_()
    rast, _ = rt.rasterize(pos, tri, (16, 16))
    hit = (rast[..., 3] > 0).double()[..., None]
    rt.antialias(hit, rast, pos, tri).sum().backward()
    # pulling vertex 1 (rightmost) further right must add coverage
    assert pos.grad[0, 1, 0] > 0


def test_opposite_vertices_of_a_tetrahedron_and_a_lone_triangle():
    tet = torch.tensor([[0, 1, 2], [0, 3, 1], [1, 3, 2], [2, 3, 0]])
    opp = rt.opposite_vertices(tet)
    for f in range(4):
        for i in range(3):
            other = int(opp[f, i])
            assert other not in tet[f].tolist()  # the fourth vertex
    assert (rt.opposite_vertices(torch.tensor([[0, 1, 2]])) == -1).all()


def test_opencv_to_clip_maps_pixels_to_ndc():
    K = torch.tensor([[[50.0, 0, 20.0], [0, 40.0, 12.0], [0, 0, 1]]], dtype=torch.float64)
    M = opencv_to_clip(K, torch.eye(3, dtype=torch.float64)[None],
                       torch.zeros(1, 3, dtype=torch.float64), 40, 30, 0.5, 10.0)
    pts = torch.tensor([[0.1, -0.2, 2.0], [0.0, 0.0, 0.5], [0.3, 0.2, 10.0]], dtype=torch.float64)
    clip = to_clip(pts, M)[0]
    ndc = clip[:, :3] / clip[:, 3:]
    u = 50 * pts[:, 0] / pts[:, 2] + 20
    v = 40 * pts[:, 1] / pts[:, 2] + 12
    assert torch.allclose(ndc[:, 0], 2 * u / 40 - 1)
    assert torch.allclose(ndc[:, 1], 2 * v / 30 - 1)
    assert torch.allclose(ndc[1:, 2], torch.tensor([-1.0, 1.0], dtype=torch.float64))
    assert torch.allclose(clip[:, 3], pts[:, 2])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_triangles_behind_the_camera_are_dropped(dtype):
    pos, tri = pixel_triangles([[2, 2], [30, 2], [2, 30]], [[0, 1, 2]], 32, 32, dtype=dtype)
    pos[0, 0, 3] = -1.0
    rast, _ = rt.rasterize(pos, tri, (32, 32))
    assert (rast[..., 3] == 0).all()
