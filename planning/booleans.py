"""Boolean and clean-up operations on masks: union, intersection, subtraction, XOR, fill holes,
remove small islands, keep the largest.

All work on the masks' bounding boxes (never on the whole grid) and return new Masks. Sizes are
in cc; connectivity is face-connected (6-neighbourhood) in 3D, as in 3D Slicer's Islands effect.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from planning.errors import GeometryError
from planning.structures import Box, Mask

log = logging.getLogger(__name__)


def union(*masks: Mask) -> Mask:
    """Voxels in any of the masks."""
    return _combine(masks, np.logical_or, "union")


def intersect(*masks: Mask) -> Mask:
    """Voxels in every mask."""
    return _combine(masks, np.logical_and, "intersection")


def subtract(mask: Mask, *others: Mask) -> Mask:
    """Voxels of `mask` in none of `others` (e.g. PTV minus rectum)."""
    _same_grid((mask, *others))
    if mask.is_empty:
        return mask.copy()
    box = mask.box
    out = mask.array.copy()
    for other in others:
        out &= ~other.region(box)
    return _from_box(mask, box, out)


def xor(a: Mask, b: Mask) -> Mask:
    """Voxels in exactly one of the two masks."""
    return _combine((a, b), np.logical_xor, "XOR")


def fill_holes(mask: Mask, *, per_slice: bool = False) -> Mask:
    """Fill cavities enclosed by the structure (in 3D, or plane by plane with `per_slice`, which
    also closes holes that open to another plane)."""
    if mask.is_empty:
        return mask.copy()
    array = np.pad(mask.array, 1)
    if per_slice:
        filled = np.stack([ndimage.binary_fill_holes(plane) for plane in array])
    else:
        filled = ndimage.binary_fill_holes(array)
    return _from_box(mask, mask.box, filled[1:-1, 1:-1, 1:-1])


def remove_islands(mask: Mask, min_cc: float) -> Mask:
    """Drop connected parts smaller than `min_cc` cm³ (an empty mask if all are)."""
    labels, sizes = _components(mask)
    if labels is None:
        return mask.copy()
    keep_sizes = sizes * mask.grid.voxel_volume_cc >= min_cc
    removed = int(np.count_nonzero(~keep_sizes[1:]))
    if removed:
        log.info("removed %d island(s) smaller than %g cc", removed, min_cc)
    keep_sizes[0] = False
    return _from_box(mask, mask.box, keep_sizes[labels])


def keep_largest(mask: Mask, count: int = 1) -> Mask:
    """Keep only the `count` largest connected parts."""
    labels, sizes = _components(mask)
    if labels is None:
        return mask.copy()
    order = np.argsort(sizes[1:])[::-1][:count] + 1
    keep = np.zeros(sizes.shape, bool)
    keep[order] = True
    return _from_box(mask, mask.box, keep[labels])


# -- helpers ------------------------------------------------------------------------------------


def _components(mask: Mask):
    if mask.is_empty:
        return None, None
    labels, count = ndimage.label(mask.array)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    return labels, sizes


def _combine(masks, operation, what: str) -> Mask:
    if not masks:
        raise ValueError(f"{what} needs at least one mask")
    _same_grid(masks)
    boxes = [m.box for m in masks if m.box is not None]
    if not boxes:
        return Mask(masks[0].grid)
    if operation is np.logical_and:
        lo = [max(b[i].start for b in boxes) for i in range(3)]
        hi = [min(b[i].stop for b in boxes) for i in range(3)]
        if len(boxes) < len(masks) or any(h <= low for low, h in zip(lo, hi, strict=True)):
            return Mask(masks[0].grid)
    else:
        lo = [min(b[i].start for b in boxes) for i in range(3)]
        hi = [max(b[i].stop for b in boxes) for i in range(3)]
    box = tuple(slice(low, h) for low, h in zip(lo, hi, strict=True))
    out = masks[0].region(box)
    for other in masks[1:]:
        operation(out, other.region(box), out=out)
    return _from_box(masks[0], box, out)


def _from_box(like: Mask, box: Box | None, values: np.ndarray) -> Mask:
    result = Mask(like.grid)
    if box is not None:
        result.replace_region(box, values)
    return result


def _same_grid(masks) -> None:
    grid = masks[0].grid
    for other in masks[1:]:
        if other.grid is not grid and not other.grid.same_as(grid):
            raise GeometryError("masks on different grids cannot be combined; resample one first")
