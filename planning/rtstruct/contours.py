"""Planar contours from masks, and masks from planar contours, on the planes of an image grid.

Coordinates here are continuous voxel indices within an image plane: ``u`` along the columns
(x index) and ``v`` along the rows (y index), pixel (row r, column c) centred at (u=c, v=r);
``plane`` is the slice index k. `planning.geometry.Grid.index_to_patient` maps (u, v, k) to LPS
millimetres, so everything here works the same for axial, coronal, sagittal and oblique images.

Tracing is marching squares on the pixel centres: each boundary vertex is the midpoint between an
inside and an outside pixel centre, so every inside centre lies inside the polygon and every
outside centre outside it. Rasterising with the pixel-centre rule (`rasterize`) gives the mask
back exactly. Diagonally touching pixels are joined (8-connected foreground), so a thin oblique
structure stays one polygon instead of a chain of one-pixel islands.

Winding: outer boundaries run counter-clockwise about the image normal (row direction × column
direction, right-hand rule), holes clockwise; islands inside holes are outer boundaries again. So
even-odd filling of all loops of a plane and the signed areas agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, depth_first_order

# Cell corners in (u, v) cell coordinates, in the bit order of the case index, and cell edges by
# the two corners they join: top (a-b), right (b-c), bottom (d-c), left (a-d).
_CORNERS = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)  # a, b, c, d
_EDGES = ((0, 1), (1, 2), (3, 2), (0, 3))
_MIDPOINTS = np.array([[0.5, 0.0], [1.0, 0.5], [0.5, 1.0], [0.0, 0.5]])
#: `simplify` moves a contour by at most this fraction of its size (2 × area / perimeter).
MAX_TOLERANCE_FRACTION = 0.05


def _segment_table() -> np.ndarray:
    """For each of the 16 corner cases, up to two oriented segments (from edge, to edge), -1 if none.

    Segments keep inside corners on their left in the (u, v) frame; the two saddle cases join the
    inside corners (they cut off the outside ones).
    """
    table = -np.ones((16, 2, 2), int)
    for case in range(1, 15):
        inside = [(case >> bit) & 1 for bit in range(4)]
        active = [e for e, (p, q) in enumerate(_EDGES) if inside[p] != inside[q]]
        if len(active) == 2:
            pairs = [tuple(active)]
        else:  # saddle: cut off each outside corner with the two edges meeting at it
            outside = [corner for corner in range(4) if not inside[corner]]
            pairs = [tuple(e for e in range(4) if corner in _EDGES[e]) for corner in outside]
        for slot, (first, second) in enumerate(pairs):
            start, direction = _MIDPOINTS[first], _MIDPOINTS[second] - _MIDPOINTS[first]
            corner = next(c for c in _EDGES[first] if inside[c])  # the first edge's inside end
            offset = _CORNERS[corner] - start
            if direction[0] * offset[1] - direction[1] * offset[0] < 0:  # inside on the right
                first, second = second, first
            table[case, slot] = (first, second)
    return table


_SEGMENTS = _segment_table()
_TOP, _RIGHT, _BOTTOM, _LEFT = range(4)
#: Edge by which a boundary walk leaves a cell, given the corner case and the edge it entered by.
_EXIT = -np.ones((16, 4), np.int64)
for _case in range(16):
    for _first, _second in _SEGMENTS[_case]:
        if _first >= 0:
            _EXIT[_case, _first] = _second


@dataclass
class Loops:
    """Closed polygons of one structure on the planes of a grid, stored as flat arrays.

    Attributes:
        points: (N, 2) vertices (u, v) in continuous index coordinates, loop after loop; the
            first vertex is not repeated at the end.
        starts: (L + 1,) index of each loop's first vertex in `points`, then N.
        planes: (L,) slice index k of each loop.
    """

    points: np.ndarray
    starts: np.ndarray
    planes: np.ndarray

    @classmethod
    def empty(cls) -> Loops:
        """No loops."""
        return cls(np.zeros((0, 2)), np.zeros(1, np.int64), np.zeros(0, np.int64))

    @classmethod
    def from_list(cls, loops: list[np.ndarray], planes: list[int]) -> Loops:
        """Loops from one (n, 2) array of (u, v) vertices per loop and each loop's plane k."""
        if not loops:
            return cls.empty()
        sizes = np.array([len(loop) for loop in loops], np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        points = np.concatenate([np.asarray(loop, float).reshape(-1, 2) for loop in loops])
        return cls(points, starts, np.asarray(planes, np.int64))

    def __len__(self) -> int:
        return len(self.planes)

    def loop(self, i: int) -> np.ndarray:
        """Loop `i`'s vertices, (n, 2) (u, v)."""
        return self.points[self.starts[i] : self.starts[i + 1]]

    def sizes(self) -> np.ndarray:
        """The number of vertices of each loop, (L,)."""
        return np.diff(self.starts)

    def areas(self) -> np.ndarray:
        """Signed area of each loop in pixel units (u·v): positive for outer boundaries."""
        if not len(self):
            return np.zeros(0)
        following = _following(self.starts)
        u, v = self.points[:, 0], self.points[:, 1]
        cross = u * v[following] - u[following] * v
        return 0.5 * np.add.reduceat(cross, self.starts[:-1])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Each loop's lowest and highest (u, v), (L, 2) each."""
        if not len(self):
            return np.zeros((0, 2)), np.zeros((0, 2))
        first = self.starts[:-1]
        return np.minimum.reduceat(self.points, first), np.maximum.reduceat(self.points, first)

    def select(self, keep: np.ndarray) -> Loops:
        """The loops where `keep` (bool, one per loop) is True."""
        keep = np.asarray(keep, bool)
        if keep.all():
            return self
        pieces = [self.loop(i) for i in np.flatnonzero(keep)]
        return Loops.from_list(pieces, self.planes[keep].tolist())

    def by_plane(self) -> dict[int, list[int]]:
        """Loop indices grouped by plane, planes in increasing order."""
        groups: dict[int, list[int]] = {}
        for i, k in enumerate(self.planes.tolist()):
            groups.setdefault(k, []).append(i)
        return dict(sorted(groups.items()))


def _following(starts: np.ndarray) -> np.ndarray:
    """Index of the next vertex of each vertex's loop (wrapping around at the loop's end)."""
    n = int(starts[-1])
    following = np.arange(1, n + 1)
    following[starts[1:] - 1] = starts[:-1]
    return following


# -- mask → loops ---------------------------------------------------------------------------


def trace(array: np.ndarray, offset_zyx=(0, 0, 0)) -> Loops:
    """Boundary polygons of every plane of a (z, y, x) bool array, collinear vertices removed.

    `offset_zyx` places the array in the grid (a cropped `Mask`); the result is in grid indices.
    """
    array = np.asarray(array, bool)
    nz, ny, nx = array.shape
    if array.size == 0 or not array.any():
        return Loops.empty()
    width, height = nx + 2, ny + 2
    padded = np.zeros((nz, height, width), np.uint8)
    padded[:, 1:-1, 1:-1] = array
    flat = padded.ravel()
    # Boundary nodes: between pixel p and its right neighbour (x-nodes), or its lower one (y-nodes),
    # named by the flat index p of the padded array.
    found = np.flatnonzero(padded[:, :, 1:] != padded[:, :, :-1])  # rows one shorter
    x_nodes = found + found // (width - 1)
    found = np.flatnonzero(padded[:, 1:, :] != padded[:, :-1, :])  # planes one row shorter
    y_nodes = found + found // ((height - 1) * width) * width
    # Each node is walked with the inside on its left; that picks the cell it leads into (named
    # by its top-left pixel) and the edge it enters by.
    inside_first = flat[x_nodes].astype(bool)
    x_cell = np.where(inside_first, x_nodes, x_nodes - width)
    x_entry = np.where(inside_first, _TOP, _BOTTOM)
    inside_first = flat[y_nodes].astype(bool)
    y_cell = np.where(inside_first, y_nodes - 1, y_nodes)
    y_entry = np.where(inside_first, _RIGHT, _LEFT)
    cell = np.concatenate([x_cell, y_cell])
    entry = np.concatenate([x_entry, y_entry])
    case = flat[cell] | (flat[cell + 1] << 1) | (flat[cell + width + 1] << 2) | (flat[cell + width] << 3)
    exit_edge = _EXIT[case, entry]
    # The node on the exit edge: top/bottom edges are x-nodes, left/right edges y-nodes.
    target = cell + np.array([0, 1, width, 0])[exit_edge]
    is_x = (exit_edge == _TOP) | (exit_edge == _BOTTOM)
    successor = np.where(
        is_x,
        np.searchsorted(x_nodes, target),
        len(x_nodes) + np.searchsorted(y_nodes, target),
    )
    order, starts = _cycle_order(successor)
    nodes = np.concatenate([x_nodes, y_nodes])[order]
    kind = (order >= len(x_nodes)).astype(np.int64)  # 0: x-node, 1: y-node
    plane, rest = np.divmod(nodes, height * width)
    row, col = np.divmod(rest, width)
    points = np.empty((len(nodes), 2))
    points[:, 0] = col + 0.5 * (1 - kind) - 1 + offset_zyx[2]
    points[:, 1] = row + 0.5 * kind - 1 + offset_zyx[1]
    loops = Loops(points, starts, plane[starts[:-1]] + offset_zyx[0])
    return drop_collinear(loops)


def _cycle_order(successor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decompose a permutation into its cycles, in compiled code (scipy's graph routines).

    Returns (order, starts): node indices cycle after cycle, each cycle from its smallest index
    and following `successor`; and each cycle's offset in `order`, then n.
    """
    n = len(successor)
    ones = np.ones(n + 1, np.int8)
    graph = csr_matrix((ones[:n], successor, np.arange(n + 1)), shape=(n, n))
    _, label = connected_components(graph, directed=True, connection="weak")
    # Labels are numbered in order of first appearance: a cycle starts where the running maximum
    # of the labels grows.
    first = np.flatnonzero(np.diff(np.maximum.accumulate(label), prepend=-1) > 0)
    # Depth-first from a virtual root whose children are the cycles' first nodes walks each
    # cycle in successor order, one cycle after the other.
    indices = np.concatenate([successor, first])
    indptr = np.concatenate([np.arange(n + 1), [n + len(first)]])
    rooted = csr_matrix((np.ones(len(indices), np.int8), indices, indptr), shape=(n + 1, n + 1))
    order = depth_first_order(rooted, n, directed=True, return_predecessors=False)[1:]
    starts = np.concatenate([[0], np.cumsum(np.bincount(label))])
    return order, starts


def drop_collinear(loops: Loops) -> Loops:
    """Remove vertices lying on the straight line between their neighbours."""
    if not len(loops):
        return loops
    following = _following(loops.starts)
    previous = np.empty_like(following)
    previous[following] = np.arange(len(following))
    p = loops.points
    before, after = p - p[previous], p[following] - p
    keep = np.abs(before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]) > 1e-9
    kept_per_loop = np.add.reduceat(keep.astype(np.int64), loops.starts[:-1])
    starts = np.concatenate([[0], np.cumsum(kept_per_loop)])
    return Loops(p[keep], starts, loops.planes)


# -- cleaning ------------------------------------------------------------------------------


def small_loops(loops: Loops, min_area_mm2: float, spacing_xy: tuple[float, float]) -> np.ndarray:
    """Which loops enclose less than `min_area_mm2` (islands and holes alike).

    A hole is always smaller than the loop around it, so dropping every small loop never leaves
    a hole without its outer boundary.
    """
    if min_area_mm2 <= 0 or not len(loops):
        return np.zeros(len(loops), bool)
    return np.abs(loops.areas()) * spacing_xy[0] * spacing_xy[1] < min_area_mm2


def touch_adjacent_planes(
    loops: Loops, which: np.ndarray, array: np.ndarray, offset_zyx=(0, 0, 0)
) -> np.ndarray:
    """Which of the outer loops `which` (bool, one per loop) enclose a piece of their plane that
    touches the structure on the plane above or below (26-connectivity: a voxel of the piece has a
    voxel of the structure among its 9 neighbours on either plane). An end cap of a round
    structure and a thin vessel's cross-section touch; a speck on its own does not.

    `array` is the structure's (z, y, x) bool mask that the loops were traced from (`trace`),
    placed at `offset_zyx` in the grid. Meant for the loops small enough to drop: those around one
    pixel (most) are looked at all at once, the others one at a time in their bounding box.
    """
    array = np.asarray(array, bool)
    result = np.zeros(len(loops), bool)
    low, high = loops.bounds()
    shift = np.array([offset_zyx[2], offset_zyx[1]])
    first = np.ceil(low - shift).astype(int)  # (column, row) of the first and last pixel centres
    last = np.floor(high - shift).astype(int)  # inside each loop, in the array
    k = loops.planes - offset_zyx[0]
    one_pixel = np.flatnonzero(which & np.all(first == last, axis=1))
    if len(one_pixel):
        padded = np.pad(array, 1)
        column, row = first[one_pixel].T
        for dz, dy, dx in np.ndindex(2, 3, 3):  # the pixel's 18 neighbours on the planes next to it
            result[one_pixel] |= padded[k[one_pixel] + 2 * dz, row + dy, column + dx]
    for i in np.flatnonzero(which & np.any(first != last, axis=1)):
        x0, y0 = np.maximum(first[i] - 1, 0)  # the loop's box and the pixels around it
        x1, y1 = last[i] + 2
        plane = array[k[i], y0:y1, x0:x1]
        labels, _ = ndimage.label(plane, structure=np.ones((3, 3), bool))  # 8-connected, as traced
        piece = labels == labels[_inside_pixel(plane, loops.loop(i)[0] - shift - (x0, y0))]
        around = np.zeros_like(plane)
        for other in (k[i] - 1, k[i] + 1):
            if 0 <= other < len(array):
                around |= array[other, y0:y1, x0:x1]
        result[i] = bool((piece & ndimage.binary_dilation(around, np.ones((3, 3), bool))).any())
    return result


def _inside_pixel(plane: np.ndarray, vertex: np.ndarray) -> tuple[int, int]:
    """(row, column) of the inside pixel next to a traced vertex (u, v): the vertex lies half-way
    between it and an outside pixel, along a row or a column."""
    for u, v in (np.floor(vertex), np.ceil(vertex)):
        row, column = int(v), int(u)
        if 0 <= row < plane.shape[0] and 0 <= column < plane.shape[1] and plane[row, column]:
            return row, column
    raise ValueError(f"{tuple(vertex)} is not a vertex traced from this plane")


def inside_any(loops: Loops, which: np.ndarray, around: np.ndarray) -> np.ndarray:
    """Which of the loops `which` lie inside one of the loops `around` of their plane (bool masks,
    one per loop). Loops never cross, so one vertex tells; bounding boxes pick the pairs to test."""
    result = np.zeros(len(loops), bool)
    if not (np.any(which) and np.any(around)):
        return result
    low, high = loops.bounds()
    for k in np.intersect1d(loops.planes[which], loops.planes[around]):
        inner = np.flatnonzero(which & (loops.planes == k))
        outer = np.flatnonzero(around & (loops.planes == k))
        boxed = (low[inner, None] > low[None, outer]) & (high[inner, None] < high[None, outer])
        for i, j in zip(*np.nonzero(boxed.all(axis=2)), strict=True):
            result[inner[i]] |= _inside(loops.loop(inner[i])[0], loops.loop(outer[j]))
    return result


def simplify(loops: Loops, tolerance_mm: float, spacing_xy: tuple[float, float]) -> Loops:
    """Douglas–Peucker on each loop, every removed vertex within the loop's tolerance of the result:
    `tolerance_mm`, but at most `MAX_TOLERANCE_FRACTION` of the loop's size (2 × area / perimeter,
    in mm: a disc's radius, about a long strip's width). Chords cut convex outlines inwards; so
    capped, a 12 mm GTV keeps its volume where 2 mm took 28 % of it.

    A loop that would fall below 4 vertices or change orientation keeps its original vertices.
    """
    if tolerance_mm <= 0 or not len(loops):
        return loops
    scale = np.asarray(spacing_xy, float)
    areas = loops.areas()
    edges = np.hypot(*((loops.points[_following(loops.starts)] - loops.points) * scale).T)
    sizes = 2 * np.abs(areas) * scale.prod() / np.add.reduceat(edges, loops.starts[:-1])
    tolerances = np.minimum(tolerance_mm, MAX_TOLERANCE_FRACTION * sizes)
    pieces = []
    for i in range(len(loops)):
        loop = loops.loop(i)
        kept = loop[_douglas_peucker_closed(loop * scale, tolerances[i])]
        if len(kept) < 4 or np.sign(_area(kept)) != np.sign(areas[i]):
            kept = loop
        pieces.append(kept)
    return Loops.from_list(pieces, loops.planes.tolist())


def _area(points: np.ndarray) -> float:
    u, v = points[:, 0], points[:, 1]
    return 0.5 * float(np.sum(u * np.roll(v, -1) - np.roll(u, -1) * v))


def _douglas_peucker_closed(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Indices of the vertices a closed polyline keeps: split at vertex 0 and the farthest one."""
    n = len(points)
    if n <= 4:
        return np.arange(n)
    far = int(np.argmax(np.sum((points - points[0]) ** 2, axis=1)))
    first = _douglas_peucker(points[: far + 1], tolerance)
    second = _douglas_peucker(np.vstack([points[far:], points[:1]]), tolerance) + far
    return np.concatenate([first[:-1], second[:-1]])


def _douglas_peucker(points: np.ndarray, tolerance: float) -> np.ndarray:
    keep = np.zeros(len(points), bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        chord = points[b] - points[a]
        offsets = points[a + 1 : b] - points[a]
        length = np.hypot(*chord)
        if length > 0:
            distance = np.abs(chord[0] * offsets[:, 1] - chord[1] * offsets[:, 0]) / length
        else:
            distance = np.hypot(offsets[:, 0], offsets[:, 1])
        worst = int(np.argmax(distance))
        if distance[worst] > tolerance:
            middle = a + 1 + worst
            keep[middle] = True
            stack += [(a, middle), (middle, b)]
    return np.flatnonzero(keep)


# -- nesting and keyholes ----------------------------------------------------------------------


def parents(loops: Loops) -> np.ndarray:
    """For each loop, the index of the smallest loop of its plane that encloses it, or -1."""
    result = -np.ones(len(loops), np.int64)
    areas = np.abs(loops.areas())
    for indices in loops.by_plane().values():
        if len(indices) < 2:
            continue
        for i in indices:
            probe = loops.loop(i)[0]
            around = [j for j in indices if j != i and areas[j] > areas[i] and _inside(probe, loops.loop(j))]
            if around:
                result[i] = min(around, key=lambda j: areas[j])
    return result


def nesting_depths(loops: Loops) -> np.ndarray:
    """How many loops of its plane enclose each loop (`parents`): odd for a hole."""
    parent = parents(loops)
    depths = np.zeros(len(loops), np.int64)
    for i in range(len(loops)):
        j = parent[i]
        while j >= 0:
            depths[i], j = depths[i] + 1, parent[j]
    return depths


def enclosed_area(loops: Loops) -> float:
    """The area inside an odd number of its plane's loops, summed over the planes (pixel units)."""
    signs = np.where(nesting_depths(loops) % 2, -1.0, 1.0)
    return float(np.sum(signs * np.abs(loops.areas())))


def _inside(point: np.ndarray, polygon: np.ndarray) -> bool:
    """Even-odd point-in-polygon test (the point is never on the boundary here)."""
    u, v = polygon[:, 0], polygon[:, 1]
    u2, v2 = np.roll(u, -1), np.roll(v, -1)
    crosses = (v <= point[1]) != (v2 <= point[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        at = u + (point[1] - v) * (u2 - u) / (v2 - v)
    return bool(np.count_nonzero(crosses & (at < point[0])) % 2)


def keyhole(loops: Loops) -> tuple[Loops, int]:
    """Join every hole to the boundary around it by a zero-width cut, one loop per outer part.

    Each cut is a horizontal segment at a quarter-pixel row offset (v ≡ 0.25 mod 0.5), so it never
    passes through a vertex or a pixel centre: filled with the pixel-centre rule, the keyholed
    polygons cover exactly the same pixels as the loops with separate holes. Returns the new loops
    and how many holes could not be joined (left as separate contours).
    """
    areas = loops.areas()
    parent = parents(loops)
    pieces: list[np.ndarray] = []
    planes: list[int] = []
    failed = 0
    for i in range(len(loops)):
        if areas[i] < 0:
            continue
        holes = [j for j in np.flatnonzero(parent == i) if areas[j] < 0]
        merged, left = _merge_holes(loops.loop(i), [loops.loop(j) for j in holes])
        pieces.append(merged)
        planes.append(int(loops.planes[i]))
        for hole in left:
            pieces.append(hole)
            planes.append(int(loops.planes[i]))
        failed += len(left)
    return Loops.from_list(pieces, planes), failed


def _merge_holes(outer: np.ndarray, holes: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Splice holes into `outer`, leftmost first; a cut that would meet a hole not yet joined
    waits until that hole is joined."""
    pending = sorted(holes, key=lambda h: float(h[:, 0].min()))
    polygon = outer
    progress = True
    while pending and progress:
        progress = False
        for index, hole in enumerate(pending):
            others = [h for h in pending if h is not hole]
            joined = _bridge(polygon, hole, others)
            if joined is not None:
                polygon = joined
                pending.pop(index)
                progress = True
                break
    return polygon, pending


def _crossings(polygon: np.ndarray, v: float) -> tuple[np.ndarray, np.ndarray]:
    """Edges of a closed polygon crossing the row v (never through a vertex), and where."""
    a, b = polygon, np.roll(polygon, -1, axis=0)
    edges = np.flatnonzero((a[:, 1] < v) != (b[:, 1] < v))
    t = (v - a[edges, 1]) / (b[edges, 1] - a[edges, 1])
    return edges, a[edges, 0] + t * (b[edges, 0] - a[edges, 0])


def _bridge(polygon: np.ndarray, hole: np.ndarray, others: list[np.ndarray]) -> np.ndarray | None:
    v = float(hole[:, 1].min()) + 0.25
    edges, at = _crossings(hole, v)
    m = int(np.argmin(at))
    start_u, hole_edge = float(at[m]), int(edges[m])
    edges, at = _crossings(polygon, v)
    left = at < start_u
    if not left.any():
        return None
    p = int(np.argmax(np.where(left, at, -np.inf)))
    end_u, outer_edge = float(at[p]), int(edges[p])
    for other in others:
        _, other_at = _crossings(other, v)
        if np.any((other_at > end_u) & (other_at < start_u)):
            return None
    cut_outer, cut_hole = np.array([[end_u, v]]), np.array([[start_u, v]])
    around_hole = np.roll(hole, -(hole_edge + 1), axis=0)  # from the vertex after the cut
    return np.vstack(
        [
            polygon[: outer_edge + 1],
            cut_outer,
            cut_hole,
            around_hole,
            cut_hole,
            cut_outer,
            polygon[outer_edge + 1 :],
        ]
    )


# -- loops → mask --------------------------------------------------------------------------


def rasterize(loops: Loops, shape_zyx: tuple[int, int, int]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Even-odd fill of every plane's loops with the pixel-centre rule.

    A pixel is inside when its centre is inside the polygons by the even-odd rule; centres are
    classified by scanlines with half-open edge spans, so a shared vertex counts once. Returns the
    filled bounding box (z, y, x) and its offset in the grid; parts outside the grid are clipped.
    """
    nz, ny, nx = shape_zyx
    empty = np.zeros((0, 0, 0), bool), (0, 0, 0)
    if not len(loops):
        return empty
    inside_grid = (loops.planes >= 0) & (loops.planes < nz)
    loops = loops.select(inside_grid)
    if not len(loops):
        return empty
    following = _following(loops.starts)
    a, b = loops.points, loops.points[following]
    plane = np.repeat(loops.planes, loops.sizes())
    low, high = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    first = np.maximum(np.ceil(low), 0).astype(np.int64)
    stop = np.minimum(np.ceil(high), ny).astype(np.int64)  # rows first … stop-1
    count = np.maximum(stop - first, 0)
    if not count.any():
        return empty
    edge = np.repeat(np.arange(len(a)), count)
    row = first[edge] + (np.arange(len(edge)) - np.repeat(np.cumsum(count) - count, count))
    t = (row - a[edge, 1]) / (b[edge, 1] - a[edge, 1])
    u = a[edge, 0] + t * (b[edge, 0] - a[edge, 0])
    column = np.clip(np.ceil(u), 0, nx).astype(np.int64)  # a crossing at column nx toggles nothing
    k = plane[edge]
    z0, z1 = int(k.min()), int(k.max()) + 1
    y0, y1 = int(row.min()), int(row.max()) + 1
    x0 = min(int(column.min()), nx - 1)  # loops wholly beyond the last column: an empty box in the grid
    x1 = max(int(column.max()), x0 + 1)
    width = x1 - x0 + 1
    flat = ((k - z0) * (y1 - y0) + (row - y0)) * width + (column - x0)
    toggles = np.zeros((z1 - z0) * (y1 - y0) * width, np.uint8)
    unique, counts = np.unique(flat, return_counts=True)
    toggles[unique] = counts & 1
    filled = np.bitwise_xor.accumulate(toggles.reshape(z1 - z0, y1 - y0, width), axis=2)[:, :, :-1]
    return filled.astype(bool), (z0, y0, x0)
