"""Overlap and surface-distance metrics between a predicted and a reference mask."""

from __future__ import annotations

import numpy as np


def dice(predicted: np.ndarray, reference: np.ndarray) -> float:
    """2|A∩B| / (|A| + |B|); 1.0 when both masks are empty."""
    total = int(predicted.sum()) + int(reference.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(predicted, reference).sum()) / total


def hd95(predicted: np.ndarray, reference: np.ndarray, spacing_zyx) -> float:
    """95th-percentile Hausdorff distance in mm between the masks' surfaces, as `delineo compare`
    reports it (`planning.metrics`: the larger of the two directed 95th percentiles of surface
    elements weighted by their area, DeepMind surface-distance's "robust Hausdorff"). inf when
    exactly one mask is empty, nan when both are."""
    from planning import metrics
    from planning.geometry import Grid
    from planning.structures import Mask

    predicted, reference = predicted.astype(bool), reference.astype(bool)
    if not predicted.any() and not reference.any():
        return float("nan")
    if not predicted.any() or not reference.any():
        return float("inf")
    grid = Grid(predicted.shape, tuple(float(s) for s in reversed(spacing_zyx)))
    distances = metrics.surface_distances(Mask.from_full(grid, predicted), Mask.from_full(grid, reference))
    return metrics.hausdorff(distances, 95.0)
