"""Topology of voxel regions and triangle meshes: what makes a surface closed and manifold.

Two halves:

- `make_well_composed` edits a label map so that every label's voxel region is *well composed*
  (Latecki 1997): in every 2×2×2 block of voxels, the label's voxels and the other voxels are each
  face-connected. Such a region's boundary is a closed 2-manifold, so the surface built on it
  (surface nets, one vertex per voxel corner) is watertight and manifold. Regions that are not
  well composed touch themselves along an edge or at a corner (two voxels meeting diagonally);
  the repair bridges each such contact with the fewest voxels (one to three), which moves the
  boundary by at most one voxel.
- `mesh_topology` counts what a 3D printer or a volume computation cares about: open edges,
  edges shared by more than two triangles, vertices where two sheets touch, inconsistent
  orientation, the number of shells and, given the points, shells that enclose no volume (two
  triangles back to back pass every edge test) and a mesh turned inside out.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

log = logging.getLogger(__name__)

#: Corner j of a 2×2×2 block sits at (dz, dy, dx) = bits 2, 1, 0 of j.
CORNERS = tuple((j >> 2 & 1, j >> 1 & 1, j & 1) for j in range(8))
_WEIGHTS = (1 << np.arange(8)).astype(np.int32)


def _face_connected(bits: int) -> bool:
    """Whether the corners set in `bits` form one face-connected group (empty counts as yes)."""
    if bits == 0:
        return True
    start = (bits & -bits).bit_length() - 1
    seen, stack = 1 << start, [start]
    while stack:
        j = stack.pop()
        for k in (j ^ 1, j ^ 2, j ^ 4):
            if bits >> k & 1 and not seen >> k & 1:
                seen |= 1 << k
                stack.append(k)
    return seen == bits


def _well_composed_block(bits: int) -> bool:
    return _face_connected(bits) and _face_connected(255 & ~bits)


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
    """(critical[256], fills[256], cuts[256]) for the 256 patterns of one label in a 2×2×2 block:
    whether the pattern is critical and, for critical ones, every smallest set of corners (bit
    masks) whose addition to (fills) or removal from (cuts) the label makes the block well
    composed."""
    critical = np.zeros(256, bool)
    fills: list[tuple[int, ...]] = [()] * 256
    cuts: list[tuple[int, ...]] = [()] * 256
    for bits in range(1, 255):
        if _well_composed_block(bits):
            continue
        critical[bits] = True
        fills[bits] = _smallest_changes(bits, [k for k in range(8) if not bits >> k & 1], add=True)
        cuts[bits] = _smallest_changes(bits, [k for k in range(8) if bits >> k & 1], add=False)
    return critical, tuple(fills), tuple(cuts)


def _smallest_changes(bits: int, candidates: list[int], add: bool) -> tuple[int, ...]:
    for size in range(1, len(candidates) + 1):
        found = []
        for subset in itertools.combinations(candidates, size):
            change = sum(1 << k for k in subset)
            if _well_composed_block(bits | change if add else bits & ~change):
                found.append(change)
        if found:
            return tuple(found)
    return ()


def _block_views(array: np.ndarray) -> list[np.ndarray]:
    nz, ny, nx = array.shape
    return [array[a : nz - 1 + a, b : ny - 1 + b, c : nx - 1 + c] for a, b, c in CORNERS]


def critical_blocks(labels: np.ndarray) -> dict[int, np.ndarray]:
    """Where each non-zero label is not well composed: {label: (n, 3) origins of its critical
    2×2×2 blocks}, found in one vectorised pass over the blocks where labels differ."""
    critical = _tables()[0]
    views = _block_views(labels)
    mixed = np.zeros(views[0].shape, bool)
    for view in views[1:]:
        mixed |= view != views[0]
    where = np.nonzero(mixed)
    del mixed
    corners = np.stack([view[where] for view in views], axis=1)
    where = np.stack(where, axis=1)
    found: dict[int, list[np.ndarray]] = {}
    for k in range(8):
        pattern = (corners == corners[:, k : k + 1]).astype(np.int32) @ _WEIGHTS
        hits = np.flatnonzero(critical[pattern] & (corners[:, k] != 0))
        for value in np.unique(corners[hits, k]).tolist():
            found.setdefault(value, []).append(where[hits[corners[hits, k] == value]])
    return {value: np.unique(np.concatenate(parts), axis=0) for value, parts in found.items()}


def _patterns(labels: np.ndarray, value: int, origins: np.ndarray) -> np.ndarray:
    """Pattern (bit j: corner j holds `value`) of the blocks at `origins` (n, 3)."""
    pattern = np.zeros(len(origins), np.int32)
    for j, (a, b, c) in enumerate(CORNERS):
        corner = labels[origins[:, 0] + a, origins[:, 1] + b, origins[:, 2] + c]
        pattern |= (corner == value).astype(np.int32) << j
    return pattern


def _blocks_around(voxels: list[tuple[int, int, int]], shape) -> np.ndarray:
    """Origins of the blocks holding any of `voxels`, inside the array."""
    if not voxels:
        return np.zeros((0, 3), np.int64)
    points = np.asarray(voxels, np.int64)
    origins = (points[:, None, :] - np.asarray(CORNERS)[None]).reshape(-1, 3)
    inside = np.all((origins >= 0) & (origins <= np.asarray(shape) - 2), axis=1)
    return np.unique(origins[inside], axis=0)


def make_well_composed(labels: np.ndarray, max_rounds: int = 50) -> tuple[int, list[int]]:
    """Make every non-zero label's region well composed, in place.

    Labels are repaired smallest first. Each diagonal contact is mended by adding one to three
    voxels to the label, taken from background or from labels not yet repaired; where that is
    impossible (only already repaired labels around), by giving the label's voxels there to
    background. Labels already repaired are never changed again. The outermost layer of
    `labels` must be background (pad by one voxel).

    Returns:
        (number of voxels changed, labels still not well composed after `max_rounds` rounds:
        mesh those on their own, from a binary array, where growth alone always succeeds).
    """
    critical, fills, cuts = _tables()
    todo = {value: [origins] for value, origins in critical_blocks(labels).items()}
    if not todo:
        return 0, []
    counts = np.bincount(labels.ravel())
    queue = sorted(todo, key=lambda v: counts[v])
    frozen: set[int] = set()
    failed: list[int] = []
    changed = 0
    while queue:
        value = queue.pop(0)
        candidates = np.unique(np.concatenate(todo.pop(value)), axis=0)
        removed: set[tuple[int, int, int]] = set()  # never re-added, so no fill/cut cycles
        for _ in range(max_rounds):
            candidates = candidates[critical[_patterns(labels, value, candidates)]]
            if len(candidates) == 0:
                break
            touched: list[tuple[int, int, int]] = []
            for z, y, x in candidates.tolist():
                block = labels[z : z + 2, y : y + 2, x : x + 2]
                flat = block.reshape(8)  # corner j ↔ flat index j (dz, dy, dx bits)
                now = int(sum(1 << j for j in range(8) if flat[j] == value))
                if not critical[now]:
                    continue  # mended by an earlier fix in this round
                voxels = [(z + (j >> 2 & 1), y + (j >> 1 & 1), x + (j & 1)) for j in range(8)]
                fill = _cheapest_fill(flat, fills[now], frozen, voxels, removed)
                change, new = (fill, value) if fill is not None else (cuts[now][0], 0)
                for j in range(8):
                    if change >> j & 1:
                        victim, voxel = int(flat[j]), voxels[j]
                        if new == 0:
                            removed.add(voxel)
                        if victim and victim != value:
                            todo.setdefault(victim, []).append(_blocks_around([voxel], labels.shape))
                            if victim not in queue:
                                queue.append(victim)
                        labels[voxel] = new
                        touched.append(voxel)
                        changed += 1
            candidates = _blocks_around(touched, labels.shape)
        else:
            failed.append(value)
        frozen.add(value)
    if failed:
        log.info("labels %s need their own surface pass to be made manifold", failed)
    return changed, failed


def _cheapest_fill(flat, options, frozen, voxels, removed) -> int | None:
    """The fill taking no voxel from a frozen label nor one removed before, and the fewest
    from any label."""
    best, best_cost = None, None
    for fill in options:
        chosen = [j for j in range(8) if fill >> j & 1]
        taken = [int(flat[j]) for j in chosen if flat[j]]
        if any(t in frozen for t in taken) or any(voxels[j] in removed for j in chosen):
            continue
        if best_cost is None or len(taken) < best_cost:
            best, best_cost = fill, len(taken)
    return best


# -- meshes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeshTopology:
    """Topological health of a triangle mesh.

    Attributes:
        boundary_edges: edges used by one triangle (holes).
        nonmanifold_edges: edges used by more than two triangles.
        nonmanifold_vertices: vertices where separate fans of triangles meet (pinches).
        misoriented_edges: edges two triangles traverse in the same direction.
        shells: connected pieces.
        euler: V − E + F (2 per sphere-like shell).
        flat_shells: shells enclosing no volume (flat or collapsed); 0 when the points are
            unknown or the mesh is open.
        inside_out: a closed mesh enclosing a negative volume (its triangles face inward).
    """

    boundary_edges: int
    nonmanifold_edges: int
    nonmanifold_vertices: int
    misoriented_edges: int
    shells: int
    euler: int
    flat_shells: int = 0
    inside_out: bool = False

    @property
    def closed(self) -> bool:
        """Whether every edge has a triangle on both sides (no open edges)."""
        return self.boundary_edges == 0

    @property
    def manifold(self) -> bool:
        """Whether no edge has more than two triangles and no vertex is a pinch between separate fans."""
        return self.nonmanifold_edges == 0 and self.nonmanifold_vertices == 0

    @property
    def watertight(self) -> bool:
        """Closed, manifold, consistently oriented outward, every shell enclosing a volume: a
        valid solid."""
        return (
            self.closed
            and self.manifold
            and self.misoriented_edges == 0
            and self.flat_shells == 0
            and not self.inside_out
        )

    def describe(self) -> str:
        """The topology in words: "closed manifold, N shell(s)", or the problems found."""
        if self.watertight:
            return f"closed manifold, {self.shells} shell(s)"
        problems = [
            f"{n} {what}"
            for n, what in (
                (self.boundary_edges, "open edges"),
                (self.nonmanifold_edges, "non-manifold edges"),
                (self.nonmanifold_vertices, "non-manifold vertices"),
                (self.misoriented_edges, "flipped edges"),
                (self.flat_shells, "flat shell(s) enclosing no volume"),
            )
            if n
        ]
        if self.inside_out:
            problems.append("inside out (triangles face inward: negative volume)")
        return ", ".join(problems)


def mesh_topology(
    triangles: np.ndarray, n_points: int | None = None, points: np.ndarray | None = None
) -> MeshTopology:
    """Count holes, non-manifold edges and vertices, orientation faults and shells; given the
    (N, 3) `points` (mm), also flat shells and whether the mesh is inside out."""
    triangles = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    if points is not None:
        n_points = len(points)
    if n_points is None:
        n_points = int(triangles.max()) + 1 if len(triangles) else 0
    if len(triangles) == 0:
        return MeshTopology(0, 0, 0, 0, 0, 0)
    n_tri = len(triangles)
    heads = triangles.ravel()  # corner (t, k) is vertex triangles[t, k]
    tails = triangles[:, [1, 2, 0]].ravel()  # directed edge k of t: corner k → corner k+1
    low, high = np.minimum(heads, tails), np.maximum(heads, tails)
    key = low * n_points + high
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    counts = np.diff(np.r_[starts, len(key)])
    edge_of = np.empty(len(key), np.int64)
    edge_of[order] = np.repeat(np.arange(len(starts)), counts)
    # orientation: of two triangles sharing an edge, one must run it low→high and one high→low
    forward = (heads < tails).astype(np.int64)
    forward_count = np.bincount(edge_of, weights=forward, minlength=len(starts))
    misoriented = int(np.count_nonzero((counts == 2) & (forward_count != 1)))
    # vertex fans: the corners of a vertex are linked across each edge two triangles share
    two = starts[counts == 2]
    e1, e2 = order[two], order[two + 1]
    next1, next2 = e1 - e1 % 3 + (e1 + 1) % 3, e2 - e2 % 3 + (e2 + 1) % 3
    same_direction = heads[e1] == heads[e2]
    rows = np.concatenate([e1, next1])
    cols = np.concatenate([np.where(same_direction, e2, next2), np.where(same_direction, next2, e2)])
    corners = 3 * n_tri
    graph = sparse.coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(corners, corners))
    _, fan = csgraph.connected_components(graph, directed=False)
    vertex_fans = np.unique(heads * corners + fan) // corners
    nonmanifold_vertices = int(np.count_nonzero(np.bincount(vertex_fans) > 1))
    # shells: triangles linked through shared edges
    tri_graph = sparse.coo_matrix((np.ones(len(e1), np.int8), (e1 // 3, e2 // 3)), shape=(n_tri, n_tri))
    shells, shell_of = csgraph.connected_components(tri_graph, directed=False)
    used = np.unique(triangles).size
    boundary = int(np.count_nonzero(counts == 1))
    flat, inside_out = 0, False
    if points is not None and boundary == 0:  # volumes mean something for closed meshes only
        flat, inside_out = _shell_volumes(points, triangles, shell_of, shells)
    return MeshTopology(
        boundary_edges=boundary,
        nonmanifold_edges=int(np.count_nonzero(counts > 2)),
        nonmanifold_vertices=nonmanifold_vertices,
        misoriented_edges=misoriented,
        shells=int(shells),
        euler=int(used - len(starts) + n_tri),
        flat_shells=flat,
        inside_out=inside_out,
    )


#: A shell whose |volume| is below this share of area^1.5 is flat (a sphere: 0.094, one voxel:
#: 0.068, a one-voxel-thick 500 × 500 voxel sheet: 7e-4).
_FLAT = 1e-6


def _shell_volumes(points, triangles, shell_of, shells: int) -> tuple[int, bool]:
    """(number of shells enclosing no volume, whether the total volume is negative)."""
    p = np.asarray(points, np.float64)[triangles]
    p = p - p.reshape(-1, 3).mean(axis=0)  # volumes about the centre: less cancellation
    volume = np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])) / 6
    area = np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1) / 2
    shell_volume = np.bincount(shell_of, volume, shells)
    shell_area = np.bincount(shell_of, area, shells)
    flat = np.abs(shell_volume) <= _FLAT * shell_area**1.5
    return int(np.count_nonzero(flat)), bool(shell_volume.sum() < 0)
