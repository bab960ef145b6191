"""Progressive Rendering Distillation on a tiny generator with tiny teachers."""

import torch

from polydiff.apps.mesh.distill import (
    DistillConfig,
    NormalTeacher,
    PromptColourTeacher,
    Renders,
    TeacherOutput,
    ViewRig,
    bound_loss,
    face_points,
    level_range,
    prd_loss,
    render_field,
)
from polydiff.apps.mesh.multiview import enable_joint_views, network_block
from polydiff.apps.mesh.normals import NormalModel, NormalsConfig
from polydiff.apps.mesh.triplane_model import TriplaneConfig, build_triplane_model
from polydiff.diffusion import build_network, make_scheduler
from polydiff.geometry.render import orbit_cameras, render_mesh

TEXT_DIM, SIZE = 8, 20


def tiny_model(seed: int = 0):
    cfg = TriplaneConfig(latent_channels=4, plane_size=8, text_dim=TEXT_DIM)
    return build_triplane_model(cfg, channels=(16, 32), decoder={"features": 8, "hidden": 16},
                                seed=seed)


class PointMassTeacher:
    """The exact denoiser of a distribution concentrated on one object's renders (a box):
    whatever the noise level, its estimate is that object's normal/mask views."""

    name = "normals"
    size, views = SIZE, 3

    def __init__(self) -> None:
        import trimesh

        mesh = trimesh.creation.box(extents=(0.5, 0.35, 0.3))
        self.verts = torch.tensor(mesh.vertices, dtype=torch.float32)
        self.faces = torch.tensor(mesh.faces)

    def rig(self, generator):
        az = torch.tensor([0.0, 120.0, 240.0], dtype=torch.float64)
        return ViewRig(orbit_cameras(15.0, az, 2.2, 40.0, SIZE), torch.full_like(az, 15.0), az)

    def denoise(self, renders, rig, text, prompts, level, generator):
        r = render_mesh(self.verts, self.faces, rig.cameras, shading="flat")
        target = torch.cat([r.normals.permute(0, 3, 1, 2), 2 * r.mask[:, None] - 1], 1)
        x = torch.cat([renders.normals, 2 * renders.mask - 1], dim=2)
        return TeacherOutput(x, target.expand_as(x))


def test_prd_iterations_lower_the_distillation_loss():
    torch.manual_seed(0)
    model = tiny_model()
    teachers = [PointMassTeacher(), PromptColourTeacher(SIZE, 3)]
    cfg = DistillConfig(render="mesh", mesh_resolution=20, reg_points=256)
    text = torch.randn(2, TEXT_DIM)
    prompts = ["a red box", "a blue crate"]
    # decoder lr 1e-3: the loss falls step by step (0.96 ... 0.73 over 8 steps); at 3e-3 it
    # oscillated (0.84 after 4 steps, 1.30 after 7), a margin too thin for a test
    opt = torch.optim.Adam([{"params": model.unet.parameters(), "lr": 3e-4},
                            {"params": model.decoder.parameters(), "lr": 1e-3}])

    def measured():
        with torch.no_grad():  # same seed: same noise, rig, levels
            return prd_loss(model, teachers, text, prompts, cfg,
                            torch.Generator().manual_seed(123)).parts

    before = measured()
    for i in range(8):
        loss = prd_loss(model, teachers, text, prompts, cfg, torch.Generator().manual_seed(i))
        opt.zero_grad()
        loss.total.backward()
        opt.step()
    after = measured()
    assert after["normals"] < 0.85 * before["normals"], (before, after)
    assert after[PromptColourTeacher.name] < before[PromptColourTeacher.name], (before, after)


def test_every_step_and_the_generator_receive_gradients():
    model = tiny_model()
    teachers = [PointMassTeacher()]
    cfg = DistillConfig(render="volume", volume_samples=12, reg_points=64)
    loss = prd_loss(model, teachers, torch.randn(1, TEXT_DIM), ["a box"], cfg,
                    torch.Generator().manual_seed(0))
    loss.total.backward()
    assert set(loss.parts) == {"normals", "eikonal", "sparsity", "bound"}
    assert float(model.unet.conv_in.weight.grad.abs().sum()) > 0
    assert float(model.unet.class_embedding.weight.grad.abs().sum()) > 0
    assert float(model.decoder.field.sdf_mlp[0].weight.grad.abs().sum()) > 0


def test_mesh_render_matches_direct_render_of_the_extracted_surface():
    """render_field's mesh path is the rasterized marching-cubes surface of the field."""
    model = tiny_model()
    cams = orbit_cameras(0.0, [0.0, 90.0], 2.2, 40.0, SIZE)
    lat = torch.randn(1, 6, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        geo, tex = model.decoder(lat)
    r = render_field(model.decoder.field, geo, tex, cams, DistillConfig(mesh_resolution=24))
    assert r.normals.shape == (1, 2, 3, SIZE, SIZE) and r.mask.shape == (1, 2, 1, SIZE, SIZE)
    # the sphere-biased field covers roughly a disc of radius ~0.3 at distance 2.2
    assert 0.05 < float(r.mask.mean().detach()) < 0.5


def test_normal_teacher_wraps_the_multiview_model():
    block = network_block(16, TEXT_DIM, (16, 32), 1, 1, 4, 8)
    net = enable_joint_views(build_network(block)).eval()
    sched = make_scheduler("ddim", prediction_type="v_prediction")
    cfg = NormalsConfig(size=16, views=4, text_dim=TEXT_DIM)
    teacher = NormalTeacher(NormalModel(net, sched, cfg), guidance_scale=2.0)
    g = torch.Generator().manual_seed(0)
    rig = teacher.rig(g)
    assert len(rig.cameras.R) == 4 and rig.cameras.width == 16
    lo, hi = cfg.elevation_range
    assert lo <= float(rig.elevation[0]) <= hi
    normals = torch.randn(2, 4, 3, 16, 16, requires_grad=True)
    mask = torch.rand(2, 4, 1, 16, 16)
    out = teacher.denoise(Renders(normals, mask, None), rig, torch.randn(2, TEXT_DIM),
                          ["a", "b"], torch.tensor([0.1, 0.9]), g)
    assert out.x.shape == out.x0_hat.shape == (2, 4, 4, 16, 16)
    assert not out.x0_hat.requires_grad and torch.isfinite(out.x0_hat).all()
    ((out.x - out.x0_hat) ** 2).mean().backward()
    assert normals.grad is not None
    assert all(p.grad is None for p in net.parameters())  # the teacher stays frozen


def test_level_range_anneals_linearly():
    cfg = DistillConfig(level_range=(0.02, 0.98), level_final=(0.02, 0.5))
    assert level_range(cfg, 0.0) == (0.02, 0.98)
    assert level_range(cfg, 1.0)[1] == 0.5
    assert abs(level_range(cfg, 0.5)[1] - 0.74) < 1e-9



def _sphere_field(radius: float):
    """A fresh triplane field whose SDF is exactly |p| − radius (MLP output zeroed)."""
    from polydiff.geometry.triplane import TriplaneField

    field = TriplaneField(8, 16, 2, "sum", 0.3, 0.6)
    with torch.no_grad():
        field.sdf_mlp[-1].weight.zero_()
        field.sdf_mlp[-1].bias.fill_(0.3 - radius)
    return field


def test_face_points_lie_on_the_cube_faces_uniformly():
    pts = face_points(2, 6000, 0.6, torch.Generator().manual_seed(0))
    assert pts.shape == (2, 6000, 3)
    on_face = (pts.abs() - 0.6).abs() < 1e-6
    assert bool((on_face.sum(-1) >= 1).all()) and float(pts.abs().max()) <= 0.6 + 1e-6
    frac = on_face.float().mean((0, 1))          # each axis carries a third of the points
    assert torch.allclose(frac, torch.full((3,), 1 / 3), atol=0.02)


def test_bound_loss_matches_the_analytic_sphere_and_pulls_a_box_filler_back():
    geo = torch.zeros(1, 3, 8, 4, 4)
    pts = face_points(1, 4000, 0.6, torch.Generator().manual_seed(1))
    # a sphere well inside the cube: no penalty, no gradient
    assert float(bound_loss(_sphere_field(0.4), geo, pts, 0.04).detach()) == 0.0
    # a sphere of radius 0.7 pokes through every face: relu(margin − (|p| − r)) exactly
    field = _sphere_field(0.7)
    loss = bound_loss(field, geo, pts, 0.04)
    expect = torch.relu(0.04 - (pts.norm(dim=-1) - 0.7)).mean()
    assert torch.allclose(loss, expect, atol=1e-6)
    # the field that fills the cube (what PRD students collapsed to, every prompt rendering
    # as the bounding box) is pushed outward on the faces: the SDF offset's gradient is < 0
    loss.backward()
    assert float(field.sdf_mlp[-1].bias.grad) < 0


def test_prd_loss_keeps_the_surface_inside_the_cube():
    """With the containment term a few PRD steps shrink a field that fills the cube back
    inside it; without it (bound_weight 0) it stays pinned to the faces."""
    from polydiff.geometry.triplane import sdf_volume

    def faces_inside(model) -> float:
        with torch.no_grad():
            x = torch.zeros(1, 6, 4, 8, 8)
            geo, _ = model.decoder(x)
            vol = sdf_volume(model.decoder.field, geo, 20)
        sides = torch.cat([vol[[0, -1]].flatten(), vol[:, [0, -1]].flatten(),
                           vol[:, :, [0, -1]].flatten()])
        return float((sides < 0).float().mean())

    fills = []
    for weight in (0.0, 1.0):
        model = tiny_model()
        with torch.no_grad():                    # start as a sphere of radius 0.8 in [-.5, .5]
            model.decoder.field.sdf_mlp[-1].bias.fill_(0.3 - 0.8)
        cfg = DistillConfig(render="mesh", mesh_resolution=20, reg_points=256,
                            bound_weight=weight, normal_weight=0.0)
        opt = torch.optim.Adam(model.decoder.parameters(), lr=3e-2)
        for i in range(6):
            loss = prd_loss(model, [PointMassTeacher()], torch.randn(1, TEXT_DIM), ["a box"],
                            cfg, torch.Generator().manual_seed(i))
            opt.zero_grad()
            loss.total.backward()
            opt.step()
        fills.append(faces_inside(model))
    assert fills[0] > 0.5, fills
    assert fills[1] < 0.05, fills
