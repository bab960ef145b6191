"""``polydiff mesh generate | render | fuse | evaluate | train`` and the app's demo."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from polydiff.apps.contract import (
    DemoResult,
    Outputs,
    add_eval_args,
    add_number,
    add_output,
    add_resume,
    add_runtime_args,
    add_steps,
    add_train_args,
    report,
)
from polydiff.runtime import UserError

FORMATS = ("glb", "obj", "ply")
BACKENDS = ("auto", "torch", "nvdiffrast")
MAX_PROMPTS = 10_000


def register(subparsers, name: str, help_text: str) -> None:
    """Add ``polydiff mesh`` and its sub-commands."""
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    sub = p.add_subparsers(dest="mesh_command", metavar="COMMAND", required=True)

    g = sub.add_parser("generate", help="text -> coloured watertight mesh (GLB by default)")
    g.add_argument("prompt", nargs="?", default=None, help='e.g. "a tall red mug"')
    g.add_argument("--prompts", type=Path, default=None,
                   help="a text file with one prompt per line; -o is then a folder of "
                        "NNNN_<prompt>.glb (NNNN: the prompt's number), split between torchrun "
                        "processes")
    g.add_argument("--mode", choices=("triplane", "normals"), default="triplane",
                   help="triplane: 4-step triplane generator (default; a noise draw whose "
                        "field has no surface is followed by the same seed's next draw, up to "
                        "4, with a note); normals: multi-view normal maps fused by "
                        "differentiable rasterization")
    add_steps(g, None, "sampler steps (default: 4 for triplane, the model's for normals)")
    add_number(g, "--resolution", kind=int, lo=16, hi=512, default=None,
               help="marching-cubes cells per side (triplane) / carving grid (normals; "
                    "at most 128) (default: the model's)")
    add_number(g, "--views", kind=int, lo=2, hi=16, default=4,
               help="normal maps generated in normals mode")
    g.add_argument("--no-snap", dest="snap", action="store_false",
                   help="condition on the prompt as written instead of reading it as the "
                        "nearest caption of the training vocabulary, of the colour it names "
                        "(the default; colour names beyond the training words from the XKCD "
                        "colour survey; the note 'read as ...' names that caption)")
    g.add_argument("--format", choices=FORMATS, default=None,
                   help="mesh format (default: from the output suffix, else glb)")
    add_output(g, "output mesh (.glb/.obj/.ply; a folder with --prompts); a PNG turntable is "
                  "written beside each mesh")
    add_resume(g)
    add_runtime_args(g)
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("render", help="mesh -> views.npz (normals, mask, K, c2w) + PNG sheet")
    r.add_argument("mesh", type=Path, help="a .glb, .obj or .ply mesh")
    add_number(r, "--views", kind=int, lo=2, hi=64, default=4,
               help="views evenly spaced in azimuth")
    add_number(r, "--size", kind=int, lo=16, hi=2048, default=128, help="image side in pixels")
    add_number(r, "--elevation", lo=-80, hi=80, default=0.0, help="camera elevation, degrees")
    r.add_argument("--no-normalise", action="store_true",
                   help="keep the mesh's own coordinates (default: centre it in the unit cube)")
    r.add_argument("--backend", choices=BACKENDS, default="auto", help="rasterizer")
    add_output(r, "views file (.npz); a PNG contact sheet is written beside it")
    add_runtime_args(r, model=False, seed=False)
    r.set_defaults(func=cmd_render)

    f = sub.add_parser("fuse", help="views.npz -> watertight mesh (carving + optimisation)")
    f.add_argument("views", type=Path, help="views file as written by `mesh render`")
    add_number(f, "--grid", kind=int, lo=16, hi=256, default=64, help="carving grid per side")
    add_number(f, "--iterations", kind=int, lo=0, hi=5000, default=200,
               help="optimisation steps through the differentiable rasterizer (0: carving "
                    "only)")
    f.add_argument("--backend", choices=BACKENDS, default="auto", help="rasterizer")
    f.add_argument("--format", choices=FORMATS, default=None,
                   help="mesh format (default: from the output suffix, else glb)")
    add_output(f, "output mesh (.glb/.obj/.ply); a PNG turntable is written beside it")
    add_runtime_args(f, model=False)
    f.set_defaults(func=cmd_fuse)

    e = sub.add_parser("evaluate", help="Chamfer distance, normal consistency and F-score")
    add_eval_args(e, truth="reference mesh", pred="mesh to score")
    add_number(e, "--threshold", lo=0, lo_open=True, hi=1, default=0.02,
               help="F-score distance threshold (unit-cube units)")
    add_number(e, "--samples", kind=int, lo=1000, hi=2_000_000, default=50_000,
               help="surface samples per mesh")
    add_runtime_args(e, model=False, device=False)
    e.set_defaults(func=cmd_evaluate)

    t = sub.add_parser("train", help="train the normal model or the triplane generator "
                                     "(torchrun-ready)")
    add_train_args(t, "mesh")
    t.set_defaults(func=cmd_train)


# ----------------------------------------------------------------------------- commands
def _format(path: Path, fmt: str | None) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if fmt is None:
        return suffix if suffix in FORMATS else "glb"
    if suffix in FORMATS and suffix != fmt:
        raise UserError(f"--format {fmt} disagrees with the output name {path.name}")
    return fmt


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit] or "mesh"


def _prompts(args: argparse.Namespace) -> list[str]:
    if (args.prompt is None) == (args.prompts is None):
        raise UserError("give a prompt or --prompts FILE (one of the two)")
    if args.prompt is not None:
        if not args.prompt.strip():
            raise UserError("empty prompt: describe the object to generate")
        return [args.prompt]
    from polydiff.runtime import require_file

    path = require_file(args.prompts, "prompts")
    if path.stat().st_size > 10_000_000:
        raise UserError(f"{path} is larger than 10 MB; split it")
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text: {err.reason}") from None
    lines = [line for line in lines if line]
    if not lines:
        raise UserError(f"{path} holds no prompts (no non-empty line)")
    if len(lines) > MAX_PROMPTS:
        raise UserError(f"{path} holds {len(lines)} prompts; at most {MAX_PROMPTS} per run")
    return lines


def cmd_generate(args: argparse.Namespace) -> int:
    from polydiff.apps.contract import PerInput
    from polydiff.runtime import pick_device

    prompts = _prompts(args)
    batch = args.prompts is not None
    if args.mode == "normals" and args.resolution is not None and args.resolution > 128:
        raise UserError("--resolution is the carving grid in normals mode: at most 128")
    if args.resume and not batch:
        raise UserError("--resume goes with --prompts (a single prompt's -o is replaced)")
    fmt = _format(args.output, None if batch else args.format) if not batch else \
        (args.format or "glb")
    device = pick_device(args.device)
    if not batch:
        with Outputs(overwrite=args.overwrite) as out:
            mesh_tmp = out.file(args.output, named=True)
            png_tmp = out.file(args.output.with_suffix(".png"))
            _generate_one(_generator(args, device), prompts[0], mesh_tmp, png_tmp, args, fmt)
        report(out.summary())
        return 0

    def files(item: tuple[int, str]) -> list[Path]:  # numbered by the prompt's line
        mesh = args.output / f"{item[0]:04d}_{_slug(item[1])}.{fmt}"
        return [mesh, mesh.with_suffix(".png")]

    work = PerInput(list(enumerate(prompts)), files, inputs=[args.prompts],
                    overwrite=args.overwrite, resume=args.resume)
    generator = _generator(args, device) if work.todo else None
    for item in work.todo:
        with work.outputs(item) as (mesh_tmp, png_tmp):
            _generate_one(generator, item[1], mesh_tmp, png_tmp, args, fmt)
    work.print_summary()
    return 0


def _generator(args: argparse.Namespace, device):
    from polydiff.apps.mesh.generate import MeshGenerator

    return MeshGenerator(args.mode, args.model, device, snap=args.snap)


def _generate_one(generator, prompt: str, mesh_tmp: Path, png_tmp: Path,
                  args: argparse.Namespace, fmt: str) -> None:
    """One prompt's mesh and its turntable picture, written to the temporary paths."""
    from polydiff.apps.mesh.generate import mesh_file_bytes, turntable
    from polydiff.apps.mesh.plots import contact_sheet

    result = generator(prompt, steps=args.steps, resolution=args.resolution, views=args.views,
                       seed=args.seed)
    mesh_tmp.write_bytes(mesh_file_bytes(result.verts, result.faces, result.colors, fmt))
    contact_sheet(png_tmp, {prompt: turntable(result.verts, result.faces, result.colors)},
                  title=f"{args.mode} mode, seed {args.seed}")
    for note in result.notes:
        report(f"note: {note}")
    report(f"{prompt!r}: {len(result.verts)} vertices, {len(result.faces)} faces, "
           f"{result.seconds:.2f} s")


def cmd_render(args: argparse.Namespace) -> int:
    import torch

    from polydiff.apps.mesh.plots import contact_sheet, normal_image
    from polydiff.apps.mesh.views import views_from_cameras, write_views
    from polydiff.geometry.meshes import load_mesh, mesh_tensors, normalise_to_unit_cube
    from polydiff.geometry.render import orbit_cameras, render_mesh
    from polydiff.runtime import check_memory, pick_device

    if args.output.suffix.lower() != ".npz":
        raise UserError(f"the views file must end in .npz, got {args.output.name}")
    check_memory(args.views * args.size**2 * 200.0, f"{args.views} views of {args.size}^2")
    with Outputs(inputs=[args.mesh], overwrite=args.overwrite) as out:
        npz, png = out.file(args.output, named=True), out.file(args.output.with_suffix(".png"))
        mesh = load_mesh(args.mesh)
        if not args.no_normalise:
            mesh = normalise_to_unit_cube(mesh)
        device = pick_device(args.device)
        verts, faces, colors = mesh_tensors(mesh, device)
        azimuths = [360.0 * i / args.views for i in range(args.views)]
        cams = orbit_cameras(args.elevation, azimuths, size=args.size)
        with torch.no_grad():
            got = render_mesh(verts, faces, cams, colors=colors, backend=args.backend)
        color = None if got.color is None else \
            (got.color / got.mask.clamp_min(1e-6)[..., None]).clamp(0, 1)
        views = views_from_cameras(got.normals, got.depth > 0, cams, color)
        write_views(npz, views)
        contact_sheet(png, {"normals": [normal_image(n, m) for n, m in
                                        zip(views.normals, views.mask)]},
                      title=f"{args.mesh.name}: {args.views} views")
    report(out.summary())
    return 0


def cmd_fuse(args: argparse.Namespace) -> int:
    import torch

    from polydiff.apps.mesh.generate import mesh_file_bytes, turntable
    from polydiff.apps.mesh.plots import contact_sheet
    from polydiff.apps.mesh.views import read_views
    from polydiff.geometry.fusion import carve_only, fuse_views
    from polydiff.runtime import check_finite, make_generator, pick_device

    fmt = _format(args.output, args.format)
    with Outputs(inputs=[args.views], overwrite=args.overwrite) as out:
        mesh_tmp = out.file(args.output, named=True)
        png_tmp = out.file(args.output.with_suffix(".png"))
        views = read_views(args.views)
        device = pick_device(args.device)
        if args.iterations == 0:
            verts, faces = carve_only(views.mask, views.K, views.c2w, grid=args.grid)
        else:
            verts, faces = fuse_views(views.normals, views.mask, views.K, views.c2w,
                                      grid=args.grid, iterations=args.iterations,
                                      backend=args.backend, device=device,
                                      generator=make_generator(args.seed), progress=True)
        verts = torch.as_tensor(verts, dtype=torch.float32)
        faces = torch.as_tensor(faces, dtype=torch.int64)
        check_finite(verts, "the fused mesh", "views whose cameras disagree with the normals")
        mesh_tmp.write_bytes(mesh_file_bytes(verts, faces, None, fmt))
        contact_sheet(png_tmp, {args.views.name: turntable(verts, faces, None)},
                      title=f"fused from {len(views.mask)} views")
    report(f"{len(verts)} vertices, {len(faces)} faces")
    report(out.summary())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from polydiff.apps.contract import default_json, write_json
    from polydiff.geometry.mesh_metrics import compare_to_truth, sample_surface
    from polydiff.geometry.meshes import load_mesh, mesh_tensors
    from polydiff.runtime import make_generator

    json_path = args.json or default_json(args.pred, args.truth)
    with Outputs(inputs=[args.truth, args.pred], overwrite=args.overwrite) as out:
        out.check(json_path, named=args.json is not None)
        truth_v, truth_f, _ = mesh_tensors(load_mesh(args.truth))
        pred_v, pred_f, _ = mesh_tensors(load_mesh(args.pred))
        truth = sample_surface(truth_v, truth_f, args.samples, make_generator(args.seed))
        m = compare_to_truth(pred_v, pred_f, truth, threshold=args.threshold,
                             generator=make_generator(args.seed + 1))
        metrics = {k: float(v) for k, v in m._asdict().items()}
        report("  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        write_json(json_path, metrics, out, named=args.json is not None)
    report(out.summary())
    return 0


def train_module(config):
    """The training module a config file is for: a ``distill`` block means the triplane
    generator (PRD), otherwise the multi-view normal model."""
    from polydiff.diffusion.config import read_yaml

    if "distill" in read_yaml(config):
        from polydiff.apps.mesh import train_triplane as module
    else:
        from polydiff.apps.mesh import train_normals as module
    return module


def cmd_train(args: argparse.Namespace) -> int:
    """The config says which model: a ``distill`` block trains the triplane generator by
    PRD from its teacher; otherwise the multi-view normal model."""
    from polydiff.apps.contract import apply_train_args
    from polydiff.diffusion.config import load_config
    from polydiff.runtime import is_main_process

    module = train_module(args.config)
    try:
        cfg = load_config(args.config, module.CONFIG_CLASS)
    except ValueError as err:
        raise UserError(f"{args.config}: {err}") from err
    apply_train_args(cfg.train, args)
    folder = module.run_training(cfg, progress=is_main_process())
    report(f"checkpoint written to {folder}")
    return 0


def demo(out_dir: Path, *, device, seed: int) -> DemoResult:
    """A mesh from a prompt in both modes; the key number is the 4-step triplane mode's time
    per mesh against the multi-view normals mode's (its baseline)."""
    from polydiff.apps.mesh.generate import MeshGenerator, mesh_file_bytes, turntable
    from polydiff.apps.mesh.plots import contact_sheet

    prompt = "a tall red mug"
    lines, seconds = [], {}
    with Outputs(overwrite=True) as out:
        for mode in ("triplane", "normals"):
            mesh = out.file(out_dir / f"{mode}.glb", named=True)
            png = out.file(out_dir / f"{mode}.png", named=True)
            result = MeshGenerator(mode, None, device)(prompt, steps=None, resolution=None,
                                                      views=4, seed=seed, fuse_iterations=60)
            mesh.write_bytes(mesh_file_bytes(result.verts, result.faces, result.colors, "glb"))
            contact_sheet(png, {prompt: turntable(result.verts, result.faces, result.colors)},
                          title=f"{mode} mode")
            seconds[mode] = result.seconds
            lines.append(f"{mode} {result.seconds:.1f} s ({len(result.faces)} faces)")
    key = "seconds per mesh"
    return DemoResult(f"{prompt!r}: " + "; ".join(lines) + f"; {out.summary()}",
                      list(out.written), [out_dir / "triplane.png", out_dir / "normals.png"],
                      {key: seconds["triplane"]}, {key: seconds["normals"]})
