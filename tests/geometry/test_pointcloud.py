"""PLY export round trip through trimesh."""

import numpy as np
import trimesh

from polydiff.geometry.cameras import Intrinsics
from polydiff.geometry.pointcloud import depth_to_points, write_ply


def test_ply_round_trip(tmp_path):
    K = Intrinsics(10.0, 10.0, 2.0, 1.5, 4, 3)
    depth = np.arange(1, 13, dtype=np.float32).reshape(3, 4)
    depth[0, 0] = np.nan  # invalid pixels are left out
    image = np.random.default_rng(0).uniform(size=(3, 4, 3))
    pts, rgb = depth_to_points(depth, K, image)
    assert pts.shape == (11, 3)
    np.testing.assert_allclose(pts[:, 2], depth.reshape(-1)[1:])
    np.testing.assert_allclose(pts[0], [(1.5 - 2.0) / 10 * 2, (0.5 - 1.5) / 10 * 2, 2.0], rtol=1e-6)
    write_ply(tmp_path / "p.ply", pts, rgb)
    cloud = trimesh.load(tmp_path / "p.ply")
    np.testing.assert_allclose(cloud.vertices, pts, rtol=1e-6)
    np.testing.assert_array_equal(cloud.colors[:, :3], rgb)
