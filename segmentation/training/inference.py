"""Whole-volume prediction for training-time evaluation, following a model manifest.

The steps are the manifest's, in the engine's order: resample to the model's voxel size
(`segmentation.preprocessing.resample`), crop to the patient, normalise, sliding window with
Gaussian blending, sigmoid, probabilities resampled back onto the input grid, threshold.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from segmentation.engine.tiling import tile_starts
from segmentation.preprocessing import normalize, resample
from segmentation.training.data import AIR_HU


def body_box(image_hu: torch.Tensor, spacing_zyx, threshold_hu: float = -500.0, margin_mm: float = 20.0):
    """Slices of the box around voxels above `threshold_hu`, grown by `margin_mm` (whole image if none)."""
    inside = torch.nonzero(image_hu > threshold_hu)
    if not len(inside):
        return tuple(slice(0, n) for n in image_hu.shape)
    margin = [math.ceil(margin_mm / float(s)) for s in spacing_zyx]
    low = (inside.min(0).values - torch.tensor(margin)).clamp(min=0).tolist()
    high = [
        min(int(h) + m + 1, n) for h, m, n in zip(inside.max(0).values, margin, image_hu.shape, strict=True)
    ]
    return tuple(slice(a, b) for a, b in zip(low, high, strict=True))


def gaussian_weights(patch_zyx, sigma_fraction: float = 0.125) -> torch.Tensor:
    """Blending weights peaking at the patch centre (nnU-Net's choice of σ = patch / 8)."""
    axes = []
    for n in patch_zyx:
        x = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
        axes.append(torch.exp(-0.5 * (x / (sigma_fraction * n)) ** 2))
    weights = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return (weights / weights.max()).clamp_(min=1e-3)


@torch.no_grad()
def sliding_window(net, image: torch.Tensor, patch_zyx, overlap: float, pad_value: float) -> torch.Tensor:
    """Logits blended over overlapping patches: image (Z, Y, X) normalised → (K, Z, Y, X)."""
    size = image.shape
    padded_size = [max(n, p) for n, p in zip(size, patch_zyx, strict=True)]
    if list(size) != padded_size:
        padded = torch.full(padded_size, pad_value, dtype=image.dtype)
        padded[: size[0], : size[1], : size[2]] = image
        image = padded
    weights = gaussian_weights(patch_zyx)
    total = None
    norm = torch.zeros(padded_size)
    step = 1 - overlap
    for z in tile_starts(padded_size[0], patch_zyx[0], step):
        for y in tile_starts(padded_size[1], patch_zyx[1], step):
            for x in tile_starts(padded_size[2], patch_zyx[2], step):
                box = (slice(z, z + patch_zyx[0]), slice(y, y + patch_zyx[1]), slice(x, x + patch_zyx[2]))
                logits = net(image[box][None, None])[0]
                if total is None:
                    total = torch.zeros((logits.shape[0], *padded_size))
                total[(slice(None), *box)] += logits * weights
                norm[box] += weights
    total /= norm
    return total[:, : size[0], : size[1], : size[2]]


def predict_probabilities(net, image_hu: np.ndarray, spacing_zyx, manifest: dict) -> torch.Tensor:
    """Sigmoid probabilities (K, Z, Y, X) on the grid of `image_hu` (HU, (z, y, x), `spacing_zyx` mm)."""
    pre, inf = manifest["preprocessing"], manifest["inference"]
    model_spacing = list(reversed(pre["spacing_xyz"]))
    image = resample(
        torch.from_numpy(np.ascontiguousarray(image_hu)), spacing_zyx, model_spacing, "trilinear"
    )
    if pre.get("crop", "body") == "body":
        box = body_box(image, model_spacing)
    else:
        box = tuple(slice(0, n) for n in image.shape)
    normalised = normalize(image[box], pre["normalization"])
    pad_value = float(normalize(torch.tensor(float(AIR_HU)), pre["normalization"]))
    logits = sliding_window(net, normalised, inf["patch_size_zyx"], inf["overlap"], pad_value)
    probabilities = torch.zeros((logits.shape[0], *image.shape))
    probabilities[(slice(None), *box)] = torch.sigmoid(logits)
    return resample(probabilities, model_spacing, spacing_zyx, "trilinear", size_zyx=image_hu.shape)
