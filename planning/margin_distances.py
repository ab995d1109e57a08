"""Distances from the surface of a mask, located between its voxel centres, for `planning.margins`.

How distances are measured: a mask only says which voxel centres are inside, so the surface is
first placed between them, at one point on every grid edge that joins an inside and an outside
voxel. Along the slice axis the point comes from shape-based interpolation of ψ = φ (2R − φ), φ
being each slice's in-plane signed distance (mm) from the column to its boundary and R the
largest φ of the nearest piece of the structure in that slice (its inradius): for a disc of
radius R, ψ = R² − ρ² at distance ρ from its centre. Along a sphere (R² = r² − z²) ψ is a
parabola in z, which linear interpolation between slices follows closely, where a straight line
between the slices' φ cuts the bulge (about 0.6 mm deep near a 15 mm sphere's pole). A column
inside slice k and outside slice k+1 crosses the surface at the fraction ψ_k / (ψ_k − ψ_k+1) of
the way. Where a structure ends (the next slice is empty), ψ is extrapolated linearly from the
slice before, and the surface put at most half a slice past the last one (the slab convention of
planning systems and RTSTRUCT).
Within a slice the point is where the mask, smoothed by a Gaussian of one pixel, crosses 0.5,
which takes the pixel staircase out of the boundary. A voxel belongs to the expansion when its
distance (exact, in mm, or in the octant-ellipsoid gauge for six margins) to the nearest boundary
point is within the margin; the distances are computed by separable minimum convolutions.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from planning.errors import Cancelled

#: In-plane Gaussian smoothing (σ, in pixels) of a slice before its boundary is located between
#: pixel centres. Without it the boundary points follow the pixel staircase (±0.23 px on a
#: circle), whose outer envelope grows large margins by ≈1 % too much; 1 px leaves ±0.13 px and
#: a bias of −0.02 to −0.04 px on circles of 10–40 px; a larger σ starts to cut convex corners.
_INPLANE_SIGMA_PX = 1.0

#: Where a structure ends (the next slice has none of it), its surface lies at most this fraction
#: of the slice spacing past the last slice: half a slice, the slab each contour stands for.
_END_FRACTION = 0.5

#: Voxels in each slab of whole slices in which the distances (and the in-plane smoothing) are
#: computed: a body-sized structure then needs tens of MB per float32 array, not GB.
_SLAB_VOXELS = 8_000_000


class BoundaryPoints(NamedTuple):
    """Boundary points on the grid edges along one array axis: the index (z, y, x arrays, sorted
    by slice z) of the lower voxel of each edge that crosses the surface, and where on it the
    surface lies (fraction of the spacing past that voxel)."""

    lower: tuple[np.ndarray, np.ndarray, np.ndarray]
    fraction: np.ndarray


def boundary_points(mask: np.ndarray, spacing_zyx, cancel) -> list[BoundaryPoints]:
    """The surface of `mask` as points on grid edges, for array axes z, y, x (see the module doc)."""
    return [_between_slices(mask, spacing_zyx, cancel), *_within_slices(mask)]


def _slabs(shape) -> list[slice]:
    """Consecutive slabs of whole slices (array axis 0) covering an array of `shape` (z, y, x),
    each of about _SLAB_VOXELS voxels."""
    step = max(1, _SLAB_VOXELS // max(1, shape[1] * shape[2]))
    return [slice(start, min(start + step, shape[0])) for start in range(0, shape[0], step)]


def _crossing_edges(mask: np.ndarray, axis: int) -> tuple[np.ndarray, ...]:
    """Index (z, y, x arrays, sorted by z) of the lower voxel of each edge along `axis` whose two
    voxels differ."""
    lower, upper = [slice(None)] * 3, [slice(None)] * 3
    lower[axis], upper[axis] = slice(None, -1), slice(1, None)
    return np.nonzero(mask[tuple(lower)] != mask[tuple(upper)])


def _within_slices(mask: np.ndarray) -> list[BoundaryPoints]:
    """Edges along in-plane axes y and x: the 0.5 crossing of the mask smoothed slice by slice
    (computed slab by slab), or half-way where it does not straddle 0.5 (structures a pixel or
    two thin)."""
    edges = [_crossing_edges(mask, axis) for axis in (1, 2)]
    fractions = [np.empty(len(lower[0]), np.float32) for lower in edges]
    for slab in _slabs(mask.shape):
        smooth = ndimage.gaussian_filter(
            mask[slab].astype(np.float32), (0, _INPLANE_SIGMA_PX, _INPLANE_SIGMA_PX), mode="constant"
        )
        for axis, lower, fraction in zip((1, 2), edges, fractions, strict=True):
            part = slice(*np.searchsorted(lower[0], (slab.start, slab.stop)))
            here = (lower[0][part] - slab.start, lower[1][part], lower[2][part])
            fraction[part] = _half_crossing(smooth, here, axis)
    return [BoundaryPoints(lower, fraction) for lower, fraction in zip(edges, fractions, strict=True)]


def _half_crossing(smooth: np.ndarray, lower: tuple[np.ndarray, ...], axis: int) -> np.ndarray:
    """Where on each edge along `axis` from voxel `lower` the values `smooth` cross 0.5, as a
    fraction of the step (0.5 where they do not straddle it)."""
    upper = tuple(index + 1 if i == axis else index for i, index in enumerate(lower))
    below, above = smooth[lower] - 0.5, smooth[upper] - 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        straddles = (below * above <= 0) & (below != above)
        fraction = np.where(straddles, below / (below - above), 0.5)
    return fraction.astype(np.float32)


def _between_slices(mask: np.ndarray, spacing_zyx, cancel) -> BoundaryPoints:
    """Edges between slices k and k + 1, by shape-based interpolation (see the module doc)."""
    lower = _crossing_edges(mask, 0)
    fraction = np.empty(len(lower[0]), np.float32)
    shapes = SliceShapes(mask, spacing_zyx)
    starts = np.searchsorted(lower[0], np.arange(mask.shape[0] + 1))
    for k in range(mask.shape[0] - 1):
        if starts[k] == starts[k + 1]:
            continue
        if cancel is not None and cancel.is_set():
            raise Cancelled("margin computation cancelled")
        part = slice(starts[k], starts[k + 1])
        column = (lower[1][part], lower[2][part])
        psi = [shapes(j)[column] for j in (k - 1, k, k + 1, k + 2)]
        upward = _fraction_past_inside(psi[1], psi[2], psi[0])  # inside at k
        downward = 1 - _fraction_past_inside(psi[2], psi[1], psi[3])  # inside at k + 1
        fraction[part] = np.where(mask[k][column], upward, downward)
    return BoundaryPoints(lower, fraction)


class SliceShapes:
    """ψ = φ (2R − φ) of each slice (mm²; see the module doc): φ the in-plane signed distance
    (positive inside) to the boundary, taken half a pixel past the nearest pixel of the other
    kind, and R the largest φ of the nearest connected piece. +inf / −inf on a slice all inside /
    outside, NaN beyond the array. Computed on demand, the last four kept."""

    def __init__(self, mask: np.ndarray, spacing_zyx):
        self.mask = mask
        self.pixel = np.asarray(spacing_zyx[1:], float)
        self.cache: dict[int, np.ndarray] = {}

    def __call__(self, k: int) -> np.ndarray:
        if k not in self.cache:
            if len(self.cache) >= 4:
                del self.cache[min(self.cache)]
            self.cache[k] = self._compute(k)
        return self.cache[k]

    def _compute(self, k: int) -> np.ndarray:
        shape = self.mask.shape[1:]
        if not 0 <= k < self.mask.shape[0]:
            return np.full(shape, np.nan, np.float32)
        plane = self.mask[k]
        if not plane.any():
            return np.full(shape, -np.inf, np.float32)
        if plane.all():
            return np.full(shape, np.inf, np.float32)
        half = 0.5 * float(self.pixel.min())
        inside = ndimage.distance_transform_edt(plane, sampling=self.pixel)
        outside, (row, col) = ndimage.distance_transform_edt(~plane, sampling=self.pixel, return_indices=True)
        phi = np.where(plane, inside - half, half - outside)
        pieces, count = ndimage.label(plane)
        inradius = np.asarray(ndimage.maximum(phi, pieces, np.arange(1, count + 1)), float)
        nearest_inradius = inradius[pieces[row, col] - 1]
        return (phi * (2 * nearest_inradius - phi)).astype(np.float32)


def _fraction_past_inside(here: np.ndarray, after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """For columns inside one slice and outside the next (ψ in this slice, the next and the one
    before): how far towards the next slice the surface lies, as a fraction of the step.
    ψ / (ψ − ψ_next) between two contoured slices; where the structure ends (the next slice has
    none of it), ψ_next is extrapolated as 2 ψ − ψ_before, at most _END_FRACTION."""
    with np.errstate(divide="ignore", invalid="ignore"):
        between = here / (here - after)
        extrapolated = np.where(np.isfinite(before) & (before > here), here / (before - here), _END_FRACTION)
    fraction = np.where(np.isneginf(after), np.minimum(extrapolated, _END_FRACTION), between)
    return np.where(np.isfinite(fraction), fraction, 0.5)


def grow(
    seed: np.ndarray,
    points: list[BoundaryPoints],
    spacing_zyx,
    axes: list[tuple[float, float]],
    centre_weight: float,
    on_progress: Callable[[str, float, float], None] | None,
    cancel: threading.Event | None,
) -> np.ndarray:
    """`seed` plus the voxels whose estimated gauge distance to `seed`'s surface is ≤ 1.

    The gauge of a displacement d (mm per array axis) is sqrt(Σ (d_i / a_i)²) with a_i the margin
    towards the side d_i points to. The estimate is the distance to the nearest boundary point
    (see the module doc), blended with weight `centre_weight` with the distance to the nearest
    voxel centre of `seed` or boundary point where a structure ends. Distances are found along
    each source's own axis first, then along the other axes, slab by slab of slices (each with
    the slices within reach on either side), so that the float arrays hold a slab at a time.
    """
    grown = np.empty_like(seed)
    for slab, estimate in _estimates(seed, points, spacing_zyx, axes, centre_weight, on_progress, cancel):
        grown[slab] = seed[slab] | (estimate <= 1.0 + 1e-6)
    return grown


def gauge(
    seed: np.ndarray,
    points: list[BoundaryPoints],
    spacing_zyx,
    axes: list[tuple[float, float]],
    centre_weight: float,
    on_progress: Callable[[str, float, float], None] | None,
    cancel: threading.Event | None,
) -> np.ndarray:
    """`grow`'s estimate itself (float32, array axes z, y, x): 0 on `seed`, the estimated gauge
    distance elsewhere, at most 2 (also where no margin reaches), so that it can be interpolated."""
    field = np.empty(seed.shape, np.float32)
    for slab, estimate in _estimates(seed, points, spacing_zyx, axes, centre_weight, on_progress, cancel):
        field[slab] = np.where(seed[slab], np.float32(0), np.fmin(estimate, np.float32(2)))
    return field


def _estimates(seed, points, spacing_zyx, axes, centre_weight, on_progress, cancel):
    """Yield (slab, estimated gauge on its slices) for consecutive slabs of `seed` (see `grow`)."""
    if centre_weight:
        # The centre term is needed wherever the blend can be ≤ 1: up to one grid step past the
        # margin (a voxel's nearest centre is at most one step beyond its nearest boundary point),
        # and never past 1 / centre_weight. Measured with margins `reach` times as large, then
        # scaled back; beyond that reach the blend exceeds 1 anyway.
        reach = _centre_reach(spacing_zyx, axes, centre_weight)
        wide = [(negative * reach, positive * reach) for negative, positive in axes]
        ends = _structure_ends(seed, points[0])
    halo = _halo(spacing_zyx[0], wide[0] if centre_weight else axes[0])
    slabs = _slabs(seed.shape)
    for done, slab in enumerate(slabs, 1):
        window = slice(max(0, slab.start - halo), min(seed.shape[0], slab.stop + halo))
        inner = slice(slab.start - window.start, slab.stop - window.start)
        to_boundary = _to_boundary(seed.shape, points, window, inner, spacing_zyx, axes, cancel)
        estimate = np.sqrt(to_boundary, out=to_boundary)
        if centre_weight:
            to_inside = _to_inside(seed, ends, window, inner, spacing_zyx, wide, cancel)
            with np.errstate(invalid="ignore"):
                estimate = centre_weight * reach * np.sqrt(to_inside) + (1 - centre_weight) * estimate
        yield slab, estimate
        if on_progress is not None:
            on_progress("Computing margin", done, len(slabs))


def _to_boundary(shape, points, window, inner, spacing_zyx, axes, cancel) -> np.ndarray:
    """Squared gauge to the nearest boundary point, on slices `inner` of `window` (slices of an
    array of `shape`), from the points on the slices `window`."""
    extent = (window.stop - window.start, *shape[1:])
    nearest = None
    for axis in range(3):
        own = _along_own_axis(extent, _in_window(points[axis], window), axis, spacing_zyx, axes)
        squared = _spread(own, axis, spacing_zyx, axes, inner, cancel)
        nearest = squared if nearest is None else np.minimum(nearest, squared, out=nearest)
        del own, squared
    return nearest


def _to_inside(seed, ends, window, inner, spacing_zyx, wide, cancel) -> np.ndarray:
    """Squared gauge (of margins `wide`) to the nearest voxel centre of `seed` or boundary point
    where the structure `ends`, on slices `inner` of `window` (slices of `seed`)."""
    extent = (window.stop - window.start, *seed.shape[1:])
    own = _along_own_axis(extent, _in_window(ends, window), 0, spacing_zyx, wide)
    to_inside = _spread(own, 0, spacing_zyx, wide, inner, cancel)
    centres = np.where(seed[window], np.float32(0), np.float32(np.inf))
    return np.minimum(to_inside, _spread(centres, None, spacing_zyx, wide, inner, cancel), out=to_inside)


def _structure_ends(seed: np.ndarray, between_slices: BoundaryPoints) -> BoundaryPoints:
    """The boundary points between slices where the structure ends: one of the two slices is
    all inside or all outside."""
    uniform = np.array([plane.all() or not plane.any() for plane in seed])
    lower, fraction = between_slices
    at_end = uniform[lower[0]] | uniform[lower[0] + 1]
    return BoundaryPoints(tuple(index[at_end] for index in lower), fraction[at_end])


def _in_window(points: BoundaryPoints, window: slice) -> BoundaryPoints:
    """The points whose lower voxel lies on the slices `window`, numbered from its first slice."""
    part = slice(*np.searchsorted(points.lower[0], (window.start, window.stop)))
    z, y, x = (index[part] for index in points.lower)
    return BoundaryPoints((z - window.start, y, x), points.fraction[part])


def _halo(spacing_mm: float, sides: tuple[float, float]) -> int:
    """How many slices either side of a slab its distances can come from, with margins `sides`
    (mm towards lower, higher slice index) along array axis 0."""
    lowest, highest = _shifts(spacing_mm, *sides)
    return max(-lowest, highest)


def _centre_reach(spacing_zyx, axes, centre_weight: float) -> float:
    """How many times the margins the distance to voxel centres must be measured for `grow`'s
    blend: 1 plus the largest grid step in margins (sides with a margin), at most 1 / weight."""
    steps = [h / a for h, sides in zip(spacing_zyx, axes, strict=True) for a in sides if a > 0]
    return min(1 / centre_weight, 1 + max(steps, default=0.0))


def _spread(squared, done_axis, spacing_zyx, axes, inner: slice, cancel):
    """Minimum convolutions of squared gauges along every lattice axis but `done_axis`; only the
    slices `inner` of array axis 0 are kept (from the first convolution on)."""
    for axis in range(3):
        if cancel is not None and cancel.is_set():
            raise Cancelled("margin computation cancelled")
        if axis != done_axis:
            squared = _min_convolve(squared, axis, spacing_zyx[axis], *axes[axis])
        if axis == 0:
            squared = squared[inner]
    return squared


def _shifts(spacing_mm: float, negative_mm: float, positive_mm: float) -> tuple[int, int]:
    """The lowest and highest shift (in grid steps, source to target) that a margin of
    `negative_mm` / `positive_mm` towards lower / higher index can reach, with one step to spare."""
    return int(math.floor(-negative_mm / spacing_mm)) - 1, int(math.ceil(positive_mm / spacing_mm)) + 1


def _along_own_axis(shape, points: BoundaryPoints, axis, spacing_zyx, axes) -> np.ndarray:
    """Squared gauge from each voxel to the nearest boundary point on its own grid line along
    `axis` (the points' axis); inf beyond the margin."""
    spacing_mm, (negative_mm, positive_mm) = spacing_zyx[axis], axes[axis]
    out = np.full(shape, np.inf, np.float32)
    lower, fraction = points
    n = shape[axis]
    lowest, highest = _shifts(spacing_mm, negative_mm, positive_mm)
    for s in range(max(lowest, -(n - 1)), min(highest, n - 1) + 1):
        d = (s - fraction) * spacing_mm
        a = np.where(d > 0, positive_mm, negative_mm)
        target_index = lower[axis] + s
        reached = (np.abs(d) <= a * (1 + 1e-9)) & (a > 0) & (target_index >= 0) & (target_index < n)
        target = tuple(
            target_index[reached] if i == axis else index[reached] for i, index in enumerate(lower)
        )
        cost = ((d[reached] / a[reached]) ** 2).astype(np.float32)
        out[target] = np.minimum(out[target], cost)  # one point per target for a given s
    return out


def _min_convolve(values, axis, spacing_mm, negative_mm, positive_mm):
    """out[p] = min over s of values[p − s] + (d / a)², d = s·spacing the displacement from source
    to target along `axis`, a the margin on that side; only costs ≤ 1 are used."""
    out = np.full_like(values, np.inf)
    n = values.shape[axis]
    lowest, highest = _shifts(spacing_mm, negative_mm, positive_mm)
    for s in range(max(lowest, -(n - 1)), min(highest, n - 1) + 1):
        d = s * spacing_mm
        a = positive_mm if d > 0 else negative_mm
        if d == 0:
            cost = 0.0
        elif a == 0 or abs(d) > a * (1 + 1e-9):
            continue
        else:
            cost = (d / a) ** 2
        target = [slice(None)] * 3
        source = [slice(None)] * 3
        target[axis] = slice(max(0, s), n + min(0, s))
        source[axis] = slice(max(0, -s), n - max(0, s))
        view = out[tuple(target)]
        np.minimum(view, values[tuple(source)] + np.float32(cost), out=view)
    return out
