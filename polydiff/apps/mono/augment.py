"""Photometric augmentation of rendered training images towards camera photographs.

Each image, with probability ``p``, gets a colour change (per-channel gain, exposure,
gamma, saturation), and then independently defocus blur, sensor noise (signal-dependent
shot noise plus read noise) and JPEG compression at a random quality. Geometry is left
alone, so depth, normals and intrinsics targets stay exact. Seeded by the
``np.random.Generator`` passed in.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def degrade(image: np.ndarray, rng: np.random.Generator, p: float = 0.8) -> np.ndarray:
    """(H, W, 3) float RGB in [0, 1] -> the same image as a camera might have taken it
    (float32 in [0, 1]); unchanged with probability 1 - ``p`` (no draws when ``p`` is 0)."""
    x = np.asarray(image, np.float32)
    if p <= 0 or rng.uniform() >= p:
        return x
    # colour: white balance, exposure, tone curve, saturation
    x = x * rng.uniform(0.85, 1.15, 3).astype(np.float32) * np.float32(rng.uniform(0.7, 1.3))
    x = np.clip(x, 0, 1) ** np.float32(rng.uniform(0.8, 1.25))
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = gray[..., None] + np.float32(rng.uniform(0.6, 1.3)) * (x - gray[..., None])
    x = np.clip(x, 0, 1)
    if rng.uniform() < 0.3:  # defocus / motion-free blur
        img = Image.fromarray((x * 255).round().astype(np.uint8))
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
        x = np.asarray(img, np.float32) / 255
    if rng.uniform() < 0.6:  # shot noise (variance ~ signal) and read noise
        shot, read = rng.uniform(0.0, 0.02), rng.uniform(0.0, 0.02)
        sigma = np.sqrt(shot * x + read**2).astype(np.float32)
        x = np.clip(x + sigma * rng.standard_normal(x.shape).astype(np.float32), 0, 1)
    if rng.uniform() < 0.5:  # JPEG
        buf = io.BytesIO()
        Image.fromarray((x * 255).round().astype(np.uint8)).save(
            buf, format="JPEG", quality=int(rng.integers(30, 96)))
        with Image.open(buf) as img:
            x = np.asarray(img.convert("RGB"), np.float32) / 255
    return x.astype(np.float32)
