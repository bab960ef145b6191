"""Mesh fusion: analytic shapes rendered from V views, fused back, against carving alone.

For each reference shape (sphere, ellipsoid, torus, two spheres) and view count V (rig:
azimuths 360 k / V, elevations alternating +25 / -25 degrees, 96^2, 40-degree fov), reports
Chamfer distance, normal consistency and F-score at 0.02 (unit-cube units) of the fused mesh
and of the carved mesh (carving + marching cubes only) against 30k samples of the true
surface, and seconds per mesh per backend (goal: < 60 s on the 2-core CPU for 6 views of
96^2, < 10 s on a GPU). The row "truth" gives each metric's sampling floor (the true mesh
against its own independent sample). Writes benchmarks/results/mesh_fusion.json and .png.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from benchmarks.common import figure_path, write_json
from polydiff.geometry.fusion import carve_only, fuse_views
from polydiff.geometry.mesh_metrics import compare_to_truth, reference_shapes
from polydiff.geometry.render import orbit_cameras, render_mesh
from polydiff.plotting import pyplot, save_figure

SIZE, GRID, ITERATIONS, SAMPLES = 96, 64, 200, 30000
GOAL_CPU_S, GOAL_GPU_S = 60.0, 10.0


def rig(V: int, size: int = SIZE):
    az = np.arange(V) * 360.0 / V
    el = np.where(np.arange(V) % 2 == 0, 25.0, -25.0)
    return orbit_cameras(el.tolist(), az.tolist(), size=size)


def views(shape, cams) -> dict:
    res = render_mesh(torch.tensor(shape.verts, dtype=torch.float32),
                      torch.tensor(shape.faces), cams, backend="torch")
    c2w = torch.eye(4, dtype=torch.float64).repeat(len(cams.R), 1, 1)
    c2w[:, :3, :3] = cams.R.transpose(1, 2)
    c2w[:, :3, 3] = cams.centres
    return {"normals": res.normals, "mask": res.depth > 0, "K": cams.K, "c2w": c2w}


def run_one(shape, V: int, backend: str, device: str, truth) -> dict:
    v = views(shape, rig(V))
    gen = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    carved = carve_only(v["mask"], v["K"], v["c2w"], grid=GRID)
    t_carve = time.perf_counter() - t
    t = time.perf_counter()
    c0 = time.process_time()
    fused = fuse_views(v["normals"], v["mask"], v["K"], v["c2w"], grid=GRID,
                       iterations=ITERATIONS, backend=backend, device=device)
    t_fuse, cpu_fuse = time.perf_counter() - t, time.process_time() - c0
    return {"shape": shape.name, "views": V, "backend": backend, "device": device,
            "faces": int(fused[1].shape[0]), "seconds_fuse": t_fuse,
            "process_cpu_seconds_fuse": cpu_fuse, "seconds_carve": t_carve,
            "fused": compare_to_truth(*fused, truth, generator=gen)._asdict(),
            "carved": compare_to_truth(*carved, truth, generator=gen)._asdict(),
            "meshes": {"fused": fused, "carved": carved}}


def main(quick: bool = True) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    shapes = reference_shapes()
    view_counts = [4, 6] if quick else [2, 4, 6, 8]
    backends = [("torch", "cpu")]
    if torch.cuda.is_available():
        backends.append(("nvdiffrast", "cuda"))
    rows, floors = [], {}
    try:
        for shape in shapes.values():
            gen = torch.Generator().manual_seed(1)
            truth = shape.sample(SAMPLES, gen)
            if shape.name != "two_spheres":  # its render mesh keeps the inner caps
                floors[shape.name] = compare_to_truth(shape.verts, shape.faces, truth,
                                                      generator=gen)._asdict()
            for V in view_counts:
                for backend, device in backends:
                    row = run_one(shape, V, backend, device, truth)
                    rows.append(row)
                    fu, ca = row["fused"], row["carved"]
                    print(f"   {shape.name:12s} V={V} {backend:10s} fused CD {fu['chamfer']:.4f}"
                          f" NC {fu['normal_consistency']:.3f} F {fu['f_score']:.3f} | carved"
                          f" CD {ca['chamfer']:.4f} NC {ca['normal_consistency']:.3f}"
                          f" F {ca['f_score']:.3f} | {row['seconds_fuse']:.1f} s", flush=True)
    finally:
        torch.set_num_threads(threads)
    six = [r for r in rows if r["views"] == 6 and r["device"] == "cpu"]
    worst = max(r["seconds_fuse"] for r in six)
    result = {
        "settings": {"size": SIZE, "grid": GRID, "iterations": ITERATIONS, "samples": SAMPLES,
                     "f_threshold": 0.02, "torch_threads": 2},
        "goal_cpu_6_views_s": GOAL_CPU_S, "goal_gpu_s": GOAL_GPU_S,
        "worst_cpu_seconds_6_views": worst, "goal_met_cpu": worst < GOAL_CPU_S,
        "load_average_1min": os.getloadavg()[0],
        "sampling_floor_truth": floors,
        "rows": [{k: v for k, v in r.items() if k != "meshes"} for r in rows],
    }
    write_json("mesh_fusion", result)
    draw(shapes, [r for r in rows if r["views"] == 6 and r["device"] == "cpu"])
    return result


def draw(shapes, rows: list[dict]) -> None:
    """Rows: shapes; columns: truth, carved, fused normals from an unseen view (az 30, el 10)."""
    plt = pyplot()
    cam = orbit_cameras(10.0, 30.0, size=160)
    fig, axes = plt.subplots(len(rows), 3, figsize=(8, 2.7 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        shape = shapes[row["shape"]]
        meshes = [(torch.tensor(shape.verts, dtype=torch.float32), torch.tensor(shape.faces)),
                  row["meshes"]["carved"], row["meshes"]["fused"]]
        titles = ["truth", f"carved CD {row['carved']['chamfer']:.4f}",
                  f"fused CD {row['fused']['chamfer']:.4f}"]
        for j, ((v, f), title) in enumerate(zip(meshes, titles)):
            res = render_mesh(v, f, cam, backend="torch")
            m = res.mask[0, ..., None]
            axes[i, j].imshow(((res.normals[0] * 0.5 + 0.5) * m + (1 - m)).clamp(0, 1))
            axes[i, j].set_title(f"{row['shape']}: {title}", fontsize=8)
            axes[i, j].axis("off")
    save_figure(fig, figure_path("mesh_fusion"),
                title="6 views of 96^2 -> mesh (normals from an unseen view)")


if __name__ == "__main__":
    main(quick=False)
