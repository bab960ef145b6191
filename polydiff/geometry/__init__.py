"""Geometry shared by the mesh and mono apps (OpenCV camera convention: x right, y down,
z forward; z-depth; pixel centres at (u + 0.5, v + 0.5)).

cameras       intrinsics JSON, batched pinhole cameras with look-at extrinsics, rays,
              projection and unprojection
normals       normals from depth by finite differences
camera_image  DM-Calib's Camera Image and intrinsics from it by RANSAC
scenes        procedural ray-cast rooms and streets with exact depth, normals and K
textures      procedural and photographic (scikit-image's photos) surface textures
pointcloud    coloured point clouds from depth, PLY via trimesh
metrics       depth / normal / intrinsics metrics of monocular geometry
raster        one rasterizer interface (nvdiffrast's rasterize / interpolate / antialias),
              backend choice, OpenCV K [R|t] -> clip space (images row 0 = top)
raster_torch  the pure-PyTorch backend (z-buffer, differentiable barycentrics, analytic AA)
raster_nvdiffrast  the nvdiffrast CUDA backend (RasterizeCudaContext only)
render        orbit camera rigs (world +z up) and normal / depth / mask / colour renders
meshes        GLB (glTF y-up on write only) / OBJ / PLY via trimesh, unit-cube normalising
fusion        multi-view normals + masks -> watertight mesh (carve, marching cubes, optimise)
mesh_metrics  Chamfer / normal consistency / F-score and analytic reference shapes
"""
