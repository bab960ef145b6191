"""mono: depth, surface normals and camera intrinsics from one image.

One image-conditioned diffusion UNet (the image is concatenated with the noisy target,
as in Marigold) serves three targets, picked by a task label fed through the UNet's class
embedding: affine-invariant depth, normals and DM-Calib's Camera Image.
"""
