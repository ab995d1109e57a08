"""Contour comparison metrics in mm on anisotropic grids: overlap, surface distances, edit effort.

Definitions (one documented set; libraries disagree, MONAI #5906):

- **Volumes** are voxel counts × voxel volume. Dice = 2|A∩B| / (|A|+|B|), Jaccard = |A∩B| / |A∪B|,
  sensitivity = |A∩B| / |A| (A the reference), precision = |A∩B| / |B| (B the test),
  volume difference = V(B) − V(A) in cc and relative to V(A).
- **Surfaces** follow DeepMind's `surface-distance` (Nikolov et al., JMIR 2021): the surface is
  made of the marching-cubes elements of every 2×2×2 voxel neighbourhood that is neither all in
  nor all out; each element has its area in mm² and sits at its neighbourhood's corner point.
  Directed distances are from each element of one surface to the nearest element of the other, in
  mm. Hausdorff = max of the two directed maxima; HD95 = max of the two directed 95th percentiles,
  percentiles weighted by element area (the first distance whose cumulative area fraction reaches
  95 %); mean surface distance = mean of the two directed area-weighted means; surface Dice at τ =
  area of both surfaces within τ of the other / total area. These equal `surface_distance`'s
  functions to rounding (tests/planning/test_metrics.py). The areas come from our own
  marching-cubes table, built with scikit-image's Lorensen marching cubes and made symmetric
  between a neighbourhood and its complement (the same surface), which reproduces that package's
  table exactly.
- **platipy** measures differently on purpose (its surface is the set of boundary voxel centres,
  each counted once, no areas; its Hausdorff is ITK's voxel-set Hausdorff): its volume metrics
  equal ours, its distances differ by up to about one voxel.
- **Added path length** (Vaassen et al., phiRO 2020): per image plane, the length in mm of the
  reference's contour that lies farther than τ from the test's contour in that plane — what a
  person must draw to turn the test into the reference. Contour elements are 2D marching-squares
  segments with their length in mm (platipy instead counts boundary pixels × mean pixel size and
  dilates by a box of whole pixels).
- **Centroid distance**: between the centres of mass in patient space, mm.

Empty structures: both empty → every overlap ratio 1, every distance 0 (perfect agreement);
exactly one empty → every overlap ratio (Dice, Jaccard, sensitivity, precision, surface Dice) 0 and
every distance `inf`; added path length is the reference's whole contour length when the test is
empty and 0 when the reference is empty. Never NaN.

Speed: everything works on the union of the two masks' bounding boxes (Masks are stored
cropped), and nearest distances come from k-d trees of the surface points, skipping the points
the two surfaces share (distance 0).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import cKDTree

from planning.errors import GeometryError
from planning.structures import Box, Mask


@dataclass(frozen=True)
class SurfaceDistances:
    """Directed surface distances, sorted ascending, with the matching element areas (mm²)."""

    a_to_b: np.ndarray
    areas_a: np.ndarray
    b_to_a: np.ndarray
    areas_b: np.ndarray


@dataclass(frozen=True)
class Comparison:
    """All metrics of a test structure against a reference one (see module docstring)."""

    reference_cc: float
    test_cc: float
    dice: float
    jaccard: float
    sensitivity: float
    precision: float
    volume_difference_cc: float
    relative_volume_difference: float
    hausdorff_mm: float
    hd95_mm: float
    mean_surface_distance_mm: float
    surface_dice: float
    tolerance_mm: float
    added_path_length_mm: float
    centroid_distance_mm: float

    def as_dict(self) -> dict:
        """The metrics as {field name: value}."""
        return asdict(self)


def compare(reference: Mask, test: Mask, *, tolerance_mm: float = 2.0) -> Comparison:
    """Every metric at once (surface distances are computed once)."""
    distances = surface_distances(reference, test)
    overlap = _overlap_counts(reference, test)
    ref_cc, test_cc = reference.volume_cc, test.volume_cc
    return Comparison(
        reference_cc=ref_cc,
        test_cc=test_cc,
        dice=_dice(*overlap),
        jaccard=_jaccard(*overlap),
        sensitivity=_ratio(overlap[2], overlap[0], overlap),
        precision=_ratio(overlap[2], overlap[1], overlap),
        volume_difference_cc=test_cc - ref_cc,
        relative_volume_difference=_relative(test_cc - ref_cc, ref_cc),
        hausdorff_mm=hausdorff(distances, 100),
        hd95_mm=hausdorff(distances, 95),
        mean_surface_distance_mm=mean_surface_distance(distances),
        surface_dice=surface_dice(distances, tolerance_mm),
        tolerance_mm=float(tolerance_mm),
        added_path_length_mm=added_path_length(reference, test, tolerance_mm),
        centroid_distance_mm=centroid_distance(reference, test),
    )


# -- overlap ------------------------------------------------------------------------------------


def dice(a: Mask, b: Mask) -> float:
    """Dice overlap 2|A∩B| / (|A|+|B|) of two masks on the same grid (1 when both are empty)."""
    return _dice(*_overlap_counts(a, b))


def centroid_distance(a: Mask, b: Mask) -> float:
    """Distance in mm between the two centres of mass (patient space)."""
    if a.is_empty and b.is_empty:
        return 0.0
    if a.is_empty or b.is_empty:
        return math.inf
    return float(np.linalg.norm(_centroid(a) - _centroid(b)))


def _centroid(mask: Mask) -> np.ndarray:
    index_zyx = np.argwhere(mask.array).mean(axis=0) + np.asarray(mask.offset)
    return mask.grid.index_to_patient(index_zyx[::-1])


def _overlap_counts(a: Mask, b: Mask) -> tuple[int, int, int]:
    """(|A|, |B|, |A∩B|) in voxels."""
    _same_grid(a, b)
    count_a, count_b = a.voxel_count, b.voxel_count
    if count_a == 0 or count_b == 0:
        return count_a, count_b, 0
    box = _union_box(a, b)
    both = np.count_nonzero(a.region(box) & b.region(box))
    return count_a, count_b, int(both)


def _dice(count_a, count_b, both) -> float:
    if count_a + count_b == 0:
        return 1.0
    return 2.0 * both / (count_a + count_b)


def _jaccard(count_a, count_b, both) -> float:
    if count_a + count_b == 0:
        return 1.0
    return both / (count_a + count_b - both)


def _ratio(numerator, denominator, counts) -> float:
    if counts[0] == 0 and counts[1] == 0:
        return 1.0
    if denominator == 0:
        return 0.0
    return numerator / denominator


def _relative(difference, reference) -> float:
    if reference == 0:
        return 0.0 if difference == 0 else math.inf
    return difference / reference


# -- surfaces -----------------------------------------------------------------------------------


def surface_distances(a: Mask, b: Mask) -> SurfaceDistances:
    """Directed distances between the surfaces of `a` and `b` (see module docstring), in mm."""
    _same_grid(a, b)
    empty = np.zeros(0)
    if a.is_empty and b.is_empty:
        return SurfaceDistances(empty, empty, empty, empty)
    box = _union_box(a, b)
    spacing = np.asarray(a.grid.spacing_zyx)
    table = _area_table(tuple(spacing))
    codes_a = _neighbour_codes(a.region(box))
    codes_b = _neighbour_codes(b.region(box))
    border_a = (codes_a != 0) & (codes_a != 255)
    border_b = (codes_b != 0) & (codes_b != 255)
    areas_a, areas_b = table[codes_a[border_a]], table[codes_b[border_b]]
    a_to_b = _directed(border_a, border_b, spacing)
    b_to_a = _directed(border_b, border_a, spacing)
    order_a, order_b = np.argsort(a_to_b, kind="stable"), np.argsort(b_to_a, kind="stable")
    return SurfaceDistances(a_to_b[order_a], areas_a[order_a], b_to_a[order_b], areas_b[order_b])


def hausdorff(distances: SurfaceDistances, percent: float = 100.0) -> float:
    """Robust Hausdorff distance: max of the two directed area-weighted `percent` percentiles."""
    sides = [(distances.a_to_b, distances.areas_a), (distances.b_to_a, distances.areas_b)]
    if all(d.size == 0 for d, _ in sides):
        return 0.0
    values = []
    for d, areas in sides:
        if d.size == 0:
            return math.inf
        cumulative = np.cumsum(areas) / np.sum(areas)
        index = int(np.searchsorted(cumulative, percent / 100.0))
        values.append(float(d[min(index, d.size - 1)]))
    return max(values)


def directed_mean_distances(distances: SurfaceDistances) -> tuple[float, float]:
    """Area-weighted mean distance from A's surface to B's and from B's to A's, mm."""
    out = []
    for d, areas in ((distances.a_to_b, distances.areas_a), (distances.b_to_a, distances.areas_b)):
        if d.size == 0:
            out.append(0.0 if distances.a_to_b.size + distances.b_to_a.size == 0 else math.inf)
        else:
            out.append(float(np.sum(d * areas) / np.sum(areas)))
    return out[0], out[1]


def mean_surface_distance(distances: SurfaceDistances) -> float:
    """Mean of the two directed area-weighted mean distances, mm."""
    forward, backward = directed_mean_distances(distances)
    return 0.5 * (forward + backward)


def surface_dice(distances: SurfaceDistances, tolerance_mm: float) -> float:
    """Fraction of the total surface area within `tolerance_mm` of the other surface."""
    total = np.sum(distances.areas_a) + np.sum(distances.areas_b)
    if distances.a_to_b.size == 0 and distances.b_to_a.size == 0:
        return 1.0
    if distances.a_to_b.size == 0 or distances.b_to_a.size == 0:
        return 0.0
    close = np.sum(distances.areas_a[distances.a_to_b <= tolerance_mm]) + np.sum(
        distances.areas_b[distances.b_to_a <= tolerance_mm]
    )
    return float(close / total)


def _directed(border_from: np.ndarray, border_to: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance in mm from each True point of `border_from` (in C order) to `border_to`."""
    count = int(np.count_nonzero(border_from))
    if count == 0:
        return np.zeros(0)
    if not border_to.any():
        return np.full(count, math.inf)
    distances = np.zeros(count)
    shared = border_to[border_from]
    if not shared.all():
        tree = cKDTree(np.argwhere(border_to) * spacing)
        query = np.argwhere(border_from & ~border_to) * spacing
        distances[~shared], _ = tree.query(query, workers=-1)
    return distances


def _neighbour_codes(region: np.ndarray) -> np.ndarray:
    """8-bit code of every 2×2×2 neighbourhood of `region` padded by one empty voxel per side;
    bit (4·dz + 2·dy + dx) is set when voxel (z+dz, y+dy, x+dx) of the padded array is inside."""
    padded = np.pad(region, 1).view(np.uint8)
    n = [s - 1 for s in padded.shape]
    codes = np.zeros(n, np.uint8)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                bit = np.uint8(1 << (4 * dz + 2 * dy + dx))
                codes |= padded[dz : dz + n[0], dy : dy + n[1], dx : dx + n[2]] * bit
    return codes


@functools.lru_cache(maxsize=1)
def _unit_normals() -> list[np.ndarray]:
    """Area vectors (z, y, x components, unit spacing) of the marching-cubes triangles of each
    code; a code with more than four corners inside uses its complement's triangles."""
    from skimage.measure import marching_cubes

    corners = np.array([[(c >> 2) & 1, (c >> 1) & 1, c & 1] for c in range(8)])
    normals = [np.zeros((0, 3))]
    for code in range(1, 255):
        shape_code = code if bin(code).count("1") <= 4 else 255 - code
        cube = np.zeros((2, 2, 2))
        for bit, (dz, dy, dx) in enumerate(corners):
            cube[dz, dy, dx] = (shape_code >> bit) & 1
        vertices, faces, _, _ = marching_cubes(cube, 0.5, method="lorensen", allow_degenerate=True)
        triangles = np.round(vertices.astype(np.float64) * 2) / 2
        triangles = triangles[faces]
        normals.append(0.5 * np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]))
    normals.append(np.zeros((0, 3)))
    return normals


@functools.lru_cache(maxsize=16)
def _area_table(spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """Surface area in mm² of each of the 256 neighbourhood codes on this grid."""
    sz, sy, sx = spacing_zyx
    scale = np.array([sy * sx, sz * sx, sz * sy])
    return np.array([np.linalg.norm(n * scale, axis=1).sum() for n in _unit_normals()])


# -- added path length ---------------------------------------------------------------------------


def added_path_length(reference: Mask, test: Mask, tolerance_mm: float = 2.0) -> float:
    """Total length in mm of the reference contour, plane by plane, farther than `tolerance_mm`
    from the test contour in the same plane (see module docstring)."""
    _same_grid(reference, test)
    if reference.is_empty:
        return 0.0
    box = _union_box(reference, test) if not test.is_empty else reference.box
    sz, sy, sx = reference.grid.spacing_zyx
    lengths = _contour_length_table(sy, sx)
    ref, tst = reference.region(box), test.region(box)
    spacing = np.array([sy, sx])
    total = 0.0
    for plane in range(ref.shape[0]):
        if not ref[plane].any():
            continue
        codes_ref = _square_codes(ref[plane])
        border_ref = (codes_ref != 0) & (codes_ref != 15)
        element_lengths = lengths[codes_ref[border_ref]]
        codes_test = _square_codes(tst[plane])
        border_test = (codes_test != 0) & (codes_test != 15)
        if not border_test.any():
            total += float(element_lengths.sum())
            continue
        far = ~border_test[border_ref]
        if far.any():
            tree = cKDTree(np.argwhere(border_test) * spacing)
            points = np.argwhere(border_ref)[far] * spacing
            distance, _ = tree.query(points, workers=-1)
            total += float(element_lengths[far][distance > tolerance_mm].sum())
    return total


def _square_codes(plane: np.ndarray) -> np.ndarray:
    """4-bit code of every 2×2 neighbourhood (bit 2·dy + dx) of the plane padded by one pixel."""
    padded = np.pad(plane, 1).view(np.uint8)
    ny, nx = padded.shape[0] - 1, padded.shape[1] - 1
    codes = np.zeros((ny, nx), np.uint8)
    for dy in (0, 1):
        for dx in (0, 1):
            codes |= padded[dy : dy + ny, dx : dx + nx] * np.uint8(1 << (2 * dy + dx))
    return codes


@functools.lru_cache(maxsize=16)
def _contour_length_table(sy: float, sx: float) -> np.ndarray:
    """Marching-squares contour length in mm of each 2×2 code (edge midpoints joined; the two
    diagonal codes are two corner segments)."""
    corners = [(0, 0), (0, 1), (1, 1), (1, 0)]  # around the square
    table = np.zeros(16)
    for code in range(1, 15):
        inside = [(code >> (2 * dy + dx)) & 1 for dy, dx in corners]
        crossings = [
            np.array(
                [
                    (corners[i][0] + corners[(i + 1) % 4][0]) / 2 * sy,
                    (corners[i][1] + corners[(i + 1) % 4][1]) / 2 * sx,
                ]
            )
            for i in range(4)
            if inside[i] != inside[(i + 1) % 4]
        ]
        if len(crossings) == 2:
            table[code] = np.linalg.norm(crossings[0] - crossings[1])
        else:  # saddle: two corner cuts
            table[code] = math.sqrt(sy**2 + sx**2)
    return table


# -- helpers ------------------------------------------------------------------------------------


def _union_box(a: Mask, b: Mask) -> Box:
    boxes = [m.box for m in (a, b) if m.box is not None]
    return tuple(slice(min(bx[i].start for bx in boxes), max(bx[i].stop for bx in boxes)) for i in range(3))


def _same_grid(a: Mask, b: Mask) -> None:
    if a.grid is not b.grid and not a.grid.same_as(b.grid):
        raise GeometryError("structures on different grids cannot be compared; resample one first")
