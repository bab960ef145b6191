"""The rasterizer interface: backend choice, and torch vs nvdiffrast pixel for pixel (CUDA)."""

import pytest
import torch
import trimesh

from polydiff.geometry.raster import TorchRasterizer, get_rasterizer
from polydiff.geometry.render import clip_positions, orbit_cameras
from polydiff.runtime import UserError


def test_auto_on_cpu_is_torch_and_unknown_names_are_refused():
    assert isinstance(get_rasterizer("auto", "cpu"), TorchRasterizer)
    assert get_rasterizer("torch", "cpu").name == "torch"
    with pytest.raises(UserError, match="unknown rasterizer"):
        get_rasterizer("opengl", "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_nvdiffrast_without_cuda_is_a_one_line_user_error():
    with pytest.raises(UserError, match="nvdiffrast backend is unavailable") as info:
        get_rasterizer("nvdiffrast", "cpu")
    assert "\n" not in str(info.value)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_and_nvdiffrast_agree_pixel_for_pixel():
    nv = get_rasterizer("nvdiffrast", "cuda")
    th = TorchRasterizer("cuda")
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.45)
    mesh.apply_scale((1.0, 0.7, 1.2))
    verts = torch.tensor(mesh.vertices, dtype=torch.float32, device="cuda")
    faces = torch.tensor(mesh.faces, dtype=torch.int32, device="cuda")
    cams = orbit_cameras([10.0, -20.0, 30.0], [0.0, 120.0, 240.0], size=(96, 128))
    cams.K, cams.R, cams.t = cams.K.cuda(), cams.R.cuda(), cams.t.cuda()
    pos = clip_positions(verts, cams).contiguous()
    outs = []
    for r in (th, nv):
        p = pos.clone().requires_grad_()
        rast, _ = r.rasterize(p, faces, (96, 128))
        col = r.interpolate(verts, rast, faces)
        hit = (rast[..., 3:] > 0).float()
        cov = r.antialias(hit, rast, p, faces)
        cov.sum().backward()
        outs.append((rast.detach(), col.detach(), cov.detach(), p.grad))
    (ra, ca, cova, ga), (rb, cb, covb, gb) = outs
    # Pixel centres on a shared edge may go to either triangle (0.27 % of these pixels on
    # an H200): the triangle ids may differ there, but the surface point may not.
    hit_a, hit_b = ra[..., 3] > 0, rb[..., 3] > 0
    assert (hit_a != hit_b).float().mean() < 5e-3        # the same silhouette
    assert (ra[..., 3] != rb[..., 3]).float().mean() < 1e-2
    assert (cova - covb).abs().mean() < 1e-3
    assert abs(float(cova.mean() - covb.mean())) < 1e-3
    both = hit_a & hit_b
    assert (ca - cb).abs()[both].max() < 1e-3           # the same surface point everywhere
    cos = torch.nn.functional.cosine_similarity(ga.flatten(), gb.flatten(), dim=0)
    assert cos > 0.95  # position gradients point the same way
