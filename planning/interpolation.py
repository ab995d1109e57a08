"""Interpolation between contoured slices (morphological contour interpolation).

A person contours every few image planes; the planes between are filled by blending the shapes:
each contoured plane's signed distance map (mm, negative inside) is computed in-plane, and an
empty plane between two contoured planes k0 < k1 gets the zero level of
(1 − t)·d(k0) + t·d(k1), t = (k − k0)/(k1 − k0), the two maps first aligned on the centroid
interpolated for that plane (so a shape that moves between drawn planes follows its centre
instead of vanishing half-way). Shapes that grow or change topology blend smoothly; holes are
kept. Planes outside the first and last contoured ones are left empty,
and gaps longer than `max_gap_mm` (two separate parts of a structure) are not bridged.

A plane may hold several pieces (both parotids in one structure, a node beside a tumour). Each
piece is blended with the pieces it overlaps on the other plane (a piece that splits blends into
both parts), a piece overlapping none with the nearest such piece when each is the other's
nearest (a piece that moved), and a piece left over tapers to a point at its centre: it ends
between the two planes. Each such group is aligned on its own centroid, so a piece that ends
does not drag the others.

The planes are those across one axis of the (z, y, x) grid: `axis` 0 (z, the default) for planes
drawn on axial images, 1 (y) for coronal ones, 2 (x) for sagittal ones when the image was
acquired axially (the workstation's views say which array axis each of them slices across).

Interpolating again after editing a drawn plane must redo the planes between from the drawn
ones, not take the planes an earlier interpolation filled as drawn: `plane_digests` records what
an interpolation put in the planes it filled, `key_planes` tells the planes drawn (or edited
since) by hand from those, and `interpolate(mask, planes=...)` recomputes the others.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable

import numpy as np
from scipy import ndimage

from planning.errors import Cancelled
from planning.structures import Box, Mask

Progress = Callable[[str, float, float], None]


#: A gap between drawn planes longer than this many times the structure's shortest gap, and
#: than SEPARATE_MIN_MM, separates two parts of it (two nodes drawn apart): it is not bridged.
SEPARATE_FACTOR = 4.0
SEPARATE_MIN_MM = 30.0


def bridging_limit_mm(planes: list[int], spacing_mm: float) -> float | None:
    """The longest gap (mm along the axis) to fill between drawn `planes`: longer ones separate
    parts of the structure (see SEPARATE_FACTOR); None (no limit) with fewer than two gaps."""
    gaps = np.diff(sorted(set(planes)))
    if len(gaps) < 2:
        return None
    return max(SEPARATE_MIN_MM, SEPARATE_FACTOR * float(gaps.min()) * spacing_mm)


def contoured_planes(mask: Mask, axis: int = 0) -> list[int]:
    """Grid plane indices along `axis` (0 = z, 1 = y, 2 = x) where the mask has any voxel."""
    if mask.is_empty:
        return []
    across = tuple(a for a in range(3) if a != axis)
    hits = np.flatnonzero(mask.array.any(axis=across))
    return [int(k) + mask.offset[axis] for k in hits]


def axes_with_gaps(mask: Mask) -> list[int]:
    """The axes (0 = z, 1 = y, 2 = x) along which the mask has empty planes between contoured
    ones: those it can be interpolated along. A shape drawn every few sagittal planes has gaps
    along x only."""
    gapped = []
    for axis in range(3):
        planes = contoured_planes(mask, axis)
        if any(b - a > 1 for a, b in zip(planes, planes[1:], strict=False)):
            gapped.append(axis)
    return gapped


def interpolate(
    mask: Mask,
    *,
    axis: int = 0,
    planes: list[int] | None = None,
    max_gap_mm: float | None = None,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Mask:
    """Fill the empty planes between contoured planes across `axis`; returns a new Mask.

    Args:
        mask: the structure, contoured on some planes.
        axis: the array axis the planes are across: 0 = z (axial), 1 = y, 2 = x.
        planes: the plane indices along `axis` to treat as drawn (default: every non-empty
            plane); what the planes between two of them hold is replaced by the blend.
        max_gap_mm: leave gaps longer than this along `axis` empty (default: no limit).
    """
    drawn = sorted(contoured_planes(mask, axis) if planes is None else planes)
    result = mask.copy()
    if len(drawn) < 2:
        return result
    spacing = mask.grid.spacing_zyx
    in_plane_mm = tuple(s for a, s in enumerate(spacing) if a != axis)
    ny, nx = (n for a, n in enumerate(mask.grid.shape) if a != axis)
    gaps = [(a, b) for a, b in zip(drawn, drawn[1:], strict=False) if b - a > 1]
    if max_gap_mm is not None:
        gaps = [(a, b) for a, b in gaps if (b - a) * spacing[axis] <= max_gap_mm]
    for n, (k0, k1) in enumerate(gaps):
        if cancel is not None and cancel.is_set():
            raise Cancelled("slice interpolation cancelled")
        lower, upper = _plane(mask, axis, k0), _plane(mask, axis, k1)
        if not lower.any() or not upper.any():
            continue
        both = lower | upper
        rows, columns = np.flatnonzero(both.any(axis=1)), np.flatnonzero(both.any(axis=0))
        # room for the blended shape, which stays within the union of the two boxes
        y0, y1 = max(0, rows[0] - 2), min(ny, rows[-1] + 3)
        x0, x1 = max(0, columns[0] - 2), min(nx, columns[-1] + 3)
        blends = [
            _PieceBlend(part0, part1, in_plane_mm)
            for part0, part1 in _matched_pieces(lower[y0:y1, x0:x1], upper[y0:y1, x0:x1])
        ]
        _clear_planes(result, axis, k0 + 1, k1)
        for k in range(k0 + 1, k1):
            t = (k - k0) / (k1 - k0)
            plane = np.logical_or.reduce([blend.at(t) for blend in blends])
            box = _box(axis, slice(k, k + 1), (slice(y0, y1), slice(x0, x1)))
            result.replace_region(box, np.expand_dims(plane, axis))
        if on_progress is not None:
            on_progress("Interpolating slices", n + 1, len(gaps))
    return result


def _matched_pieces(
    lower: np.ndarray, upper: np.ndarray
) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    """The (lower, upper) shapes to blend with each other, one pair per group of pieces (in-plane
    8-connected): pieces that overlap, directly or through others, form one group; a piece
    overlapping none pairs with the nearest such piece of the other plane when each is the
    other's nearest (it moved), else with None (it ends between the planes)."""
    eight = np.ones((3, 3), bool)
    labels0, count0 = ndimage.label(lower, eight)
    labels1, count1 = ndimage.label(upper, eight)
    group = list(range(count0 + count1))  # union-find over the pieces: lower 0.., upper count0..

    def root(node: int) -> int:
        while group[node] != node:
            node = group[node]
        return node

    both = lower & upper
    for a, b in set(zip(labels0[both].tolist(), labels1[both].tolist(), strict=True)):
        group[root(a - 1)] = root(count0 + b - 1)
    members: dict[int, list[int]] = {}
    for node in range(count0 + count1):
        members.setdefault(root(node), []).append(node)
    pairs, alone0, alone1 = [], [], []
    for nodes in members.values():
        part0 = np.isin(labels0, [n + 1 for n in nodes if n < count0])
        part1 = np.isin(labels1, [n - count0 + 1 for n in nodes if n >= count0])
        if part0.any() and part1.any():
            pairs.append((part0, part1))
        else:
            (alone0 if part0.any() else alone1).append(part0 if part0.any() else part1)
    nearest0 = [_nearest(piece, alone1) for piece in alone0]
    nearest1 = [_nearest(piece, alone0) for piece in alone1]
    moved = [(i, j) for i, j in enumerate(nearest0) if j is not None and nearest1[j] == i]
    pairs += [(alone0[i], alone1[j]) for i, j in moved]
    moved0, moved1 = {i for i, _ in moved}, {j for _, j in moved}
    pairs += [(piece, None) for i, piece in enumerate(alone0) if i not in moved0]
    pairs += [(None, piece) for j, piece in enumerate(alone1) if j not in moved1]
    return pairs


def _nearest(piece: np.ndarray, others: list[np.ndarray]) -> int | None:
    """The index of the piece among `others` whose centroid is nearest `piece`'s, None if none."""
    if not others:
        return None
    centre = _centroid(piece)
    return int(np.argmin([np.linalg.norm(_centroid(other) - centre) for other in others]))


class _PieceBlend:
    """Two shapes (or one and None: a shape that ends at its centre) blended between their planes,
    aligned on their interpolated centroid, so a shape that moves between the drawn planes
    follows its centre instead of vanishing half-way."""

    def __init__(self, lower: np.ndarray | None, upper: np.ndarray | None, in_plane_mm):
        self.c0 = _centroid(lower) if lower is not None else _centroid(upper)
        self.c1 = _centroid(upper) if upper is not None else self.c0
        self.d0 = _signed_distance(lower, in_plane_mm) if lower is not None else None
        self.d1 = _signed_distance(upper, in_plane_mm) if upper is not None else None
        shape = (lower if lower is not None else upper).shape
        if self.d0 is None:
            self.d0 = _distance_to_point(shape, self.c1, in_plane_mm)
        if self.d1 is None:
            self.d1 = _distance_to_point(shape, self.c0, in_plane_mm)

    def at(self, t: float) -> np.ndarray:
        """The blended shape at fraction `t` (0 < t < 1) of the way from the lower plane."""
        centre = (1 - t) * self.c0 + t * self.c1
        blended = (1 - t) * _shifted(self.d0, centre - self.c0) + t * _shifted(self.d1, centre - self.c1)
        return blended <= 0


def plane_digests(mask: Mask, planes: Iterable[int], axis: int = 0) -> dict[int, str]:
    """A short digest of what each of `planes` (indices along `axis`) holds (to tell later
    whether it was edited)."""
    return {int(k): _digest(_plane(mask, axis, k)) for k in planes}


def key_planes(mask: Mask, filled: dict[int, str], axis: int = 0) -> list[int]:
    """The planes across `axis` drawn by hand: the contoured planes, less those still holding
    what an interpolation put there (`filled`, from `plane_digests` along the same axis); a filled
    plane edited since counts as drawn."""
    return [k for k in contoured_planes(mask, axis) if filled.get(k) != _digest(_plane(mask, axis, k))]


def _plane(mask: Mask, axis: int, k: int) -> np.ndarray:
    """Plane k across `axis` as a full bool array of the two other axes, in (z, y, x) order."""
    across = tuple(slice(0, n) for a, n in enumerate(mask.grid.shape) if a != axis)
    return np.take(mask.region(_box(axis, slice(k, k + 1), across)), 0, axis=axis)


def _box(axis: int, along: slice, across: tuple[slice, slice]) -> Box:
    """The (z, y, x) box spanning `along` on `axis` and `across` on the two others, in order."""
    parts = list(across)
    parts.insert(axis, along)
    return tuple(parts)


def _digest(plane: np.ndarray) -> str:
    return hashlib.sha1(np.packbits(plane).tobytes()).hexdigest()[:16]


def _clear_planes(mask: Mask, axis: int, first: int, stop: int) -> None:
    """Empty planes [first, stop) across `axis` of `mask` (only its stored box is touched)."""
    box = mask.box
    if box is None or first >= stop:
        return
    low, high = max(first, box[axis].start), min(stop, box[axis].stop)
    if low < high:
        region = tuple(slice(low, high) if a == axis else part for a, part in enumerate(box))
        mask.replace_region(region, np.zeros(tuple(s.stop - s.start for s in region), bool))


def fill_planes_without_images(mask: Mask, slices, drawn: Iterable[int] = ()) -> Mask:
    """`mask` with its planes that have no source image (`slices[k]` None: planes the loader
    interpolated in a gap of the series) filled by the same shape blending from the nearest
    planes that have one. Contours and segmentations reference images only, so a structure read
    from them is empty there until filled; `drawn` are the z planes that hold the structure's own
    contours (drawn on the image missing from this series), kept as they are."""
    if mask.is_empty:
        return mask
    real = [k for k, ref in enumerate(slices) if ref is not None]
    # the blend is inside where one of the two shapes is: the mask's own box suffices, one voxel
    # wider so that the distances inside are measured to outside voxels as on the whole plane
    box = tuple(
        slice(max(part.start - 1, 0), min(part.stop + 1, size))
        for part, size in zip(mask.box, mask.grid.shape, strict=True)
    )
    region = mask.region(box)
    base = box[0].start
    spacing_yx = mask.grid.spacing_xyz[1::-1]
    changed = False
    drawn = set(drawn)
    for k in range(box[0].start, box[0].stop):
        if slices[k] is not None or k in drawn:
            continue
        below = max((j for j in real if j < k), default=None)
        above = min((j for j in real if j > k), default=None)
        if below is None or above is None or below < base or above - base >= len(region):
            continue
        lower, upper = region[below - base], region[above - base]
        if not lower.any() or not upper.any():
            continue
        t = (k - below) / (above - below)
        distance = (1 - t) * _signed_distance(lower, spacing_yx) + t * _signed_distance(upper, spacing_yx)
        region[k - base] = distance <= 0
        changed = True
    if not changed:
        return mask
    result = mask.copy()
    result.replace_region(box, region)
    return result


def _signed_distance(plane: np.ndarray, spacing_yx) -> np.ndarray:
    """In-plane signed distance in mm: to the nearest inside pixel centre for outside pixels,
    minus the distance to the nearest outside pixel centre for inside ones."""
    outside = ndimage.distance_transform_edt(~plane, sampling=spacing_yx)
    inside = ndimage.distance_transform_edt(plane, sampling=spacing_yx)
    return outside - inside


def _distance_to_point(shape: tuple[int, int], point: np.ndarray, spacing) -> np.ndarray:
    """In-plane distance in mm of every pixel centre to `point` (pixel indices)."""
    rows, columns = np.indices(shape, dtype=float)
    return np.hypot((rows - point[0]) * spacing[0], (columns - point[1]) * spacing[1])


def _centroid(plane: np.ndarray) -> np.ndarray:
    return np.argwhere(plane).mean(axis=0)


def _shifted(distance: np.ndarray, shift_yx: np.ndarray) -> np.ndarray:
    if np.allclose(shift_yx, 0):
        return distance
    return ndimage.shift(distance, shift_yx, order=1, mode="nearest")
