"""Overlap and surface-distance metrics between a predicted and a reference mask."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def dice(predicted: np.ndarray, reference: np.ndarray) -> float:
    """2|A∩B| / (|A| + |B|); 1.0 when both masks are empty."""
    total = int(predicted.sum()) + int(reference.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(predicted, reference).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1))


def hd95(predicted: np.ndarray, reference: np.ndarray, spacing_zyx) -> float:
    """95th-percentile symmetric Hausdorff distance in mm between the masks' surfaces.

    Surface voxels are mask voxels with a face neighbour outside; distances are between voxel
    centres (Euclidean, anisotropic spacing). The larger of the two directed 95th percentiles is
    returned (the "robust Hausdorff" of DeepMind's surface-distance). inf when exactly one mask is
    empty, nan when both are.
    """
    predicted, reference = predicted.astype(bool), reference.astype(bool)
    if not predicted.any() and not reference.any():
        return float("nan")
    if not predicted.any() or not reference.any():
        return float("inf")
    box = _joint_box(predicted | reference)
    predicted, reference = predicted[box], reference[box]
    surface_p, surface_r = _surface(predicted), _surface(reference)
    to_r = ndimage.distance_transform_edt(~surface_r, sampling=spacing_zyx)
    to_p = ndimage.distance_transform_edt(~surface_p, sampling=spacing_zyx)
    return float(max(np.percentile(to_r[surface_p], 95), np.percentile(to_p[surface_r], 95)))


def _joint_box(mask: np.ndarray, margin: int = 2):
    where = np.argwhere(mask)
    low = np.maximum(where.min(0) - margin, 0)
    high = np.minimum(where.max(0) + margin + 1, mask.shape)
    return tuple(slice(a, b) for a, b in zip(low, high, strict=True))
