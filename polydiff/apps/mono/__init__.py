"""mono: depth, surface normals and camera intrinsics from one image.

One image-conditioned diffusion UNet (the image is concatenated with the noisy target,
as in Marigold) serves three targets, picked by a task label fed through the UNet's class
embedding: affine-invariant depth, normals and DM-Calib's Camera Image.

Modules: ``cli`` (the commands), ``config`` (typed configs), ``model`` (network, loading),
``targets`` (the three targets), ``predict`` (the network's inference modes), ``estimate``
(one image -> all results, metric scale), ``metric_depth`` (scale from the floor),
``images`` (input images), ``results`` (result files), ``plots`` (pictures), ``testset``
(test sets with ground truth), ``evaluate`` (metrics), ``train`` (training),
``marigold`` (a user's Marigold folder).
"""
