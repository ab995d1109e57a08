"""Step 4 of building surfaces (see `planning.surfaces.build`): simplification and assembly.

The triangle mesh of all labels is cut into patches, one per pair of touching labels (large ones
into parts); each patch is simplified by quadric edge collapse (pyfqmr) within a tolerance in mm,
its rim (the points it shares with other patches) and small connected parts held in place. Each
label's closed surface is then assembled from its patches, oriented outward. Points are (N, 3)
(x, y, z) in mm, in the scaled index space of the label map being meshed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from planning.surfaces.options import check_cancelled

log = logging.getLogger(__name__)


#: pyfqmr, the simplifier, keeps the mesh it works on in global state: two threads simplifying
#: at once (the 3D view building while a dialog measures) swap their results. Every use holds it.
#: (It also holds Python's GIL while it works: only small patches are given to it.)
PYFQMR_LOCK = threading.Lock()


#: Connected parts of the mesh smaller than this many times the simplification tolerance (their
#: largest extent) are not simplified: a voxel or two would collapse to a flat sliver.
HELD_EXTENT = 8


def small_parts(points, part, extent_mm: float) -> np.ndarray:
    """Whether each point's connected part spans less than `extent_mm` along every axis."""
    order = np.argsort(part, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(part[order]) != 0])
    sorted_points = points[order]
    extent = np.maximum.reduceat(sorted_points, starts) - np.minimum.reduceat(sorted_points, starts)
    return extent.max(axis=1)[part] < extent_mm


def split_into_patches(triangles: np.ndarray, pairs: np.ndarray, points: np.ndarray, largest: int) -> dict:
    """Row indices of the triangles of each label pair, keyed (label, neighbour or 0, part).

    A pair with more than `largest` triangles is cut into parts (slabs along its longest extent)
    so that no single simplification call runs long: the simplifier holds Python's GIL, and a
    GUI thread waiting on it would freeze.
    """
    key = pairs[:, 0] * (int(pairs.max()) + 1) + pairs[:, 1]
    order = np.argsort(key, kind="stable")
    starts = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1]])
    ends = np.r_[starts[1:], len(order)]
    patches = {}
    for a, b in zip(starts, ends, strict=True):
        rows = order[a:b]
        pair = (int(pairs[rows[0], 0]), int(pairs[rows[0], 1]))
        parts = -(-len(rows) // largest)
        if parts == 1:
            patches[(*pair, 0)] = rows
            continue
        centres = points[triangles[rows]].mean(axis=1)
        axis = int(np.argmax(np.ptp(centres, axis=0)))
        for part, chunk in enumerate(np.array_split(rows[np.argsort(centres[:, axis])], parts)):
            patches[(*pair, part)] = chunk
    return patches


@dataclass
class _Patch:
    """A simplified patch: `rim` global point ids (its first points), then its own points."""

    rim: np.ndarray
    inner: np.ndarray
    triangles: np.ndarray


def _unsimplified(triangles: np.ndarray) -> _Patch:
    used = np.unique(triangles)
    return _Patch(used, np.zeros((0, 3)), np.searchsorted(used, triangles))


def _junctions(triangles: np.ndarray, patches: dict, n_points: int) -> np.ndarray:
    """Points whose triangles belong to more than one patch: the patches' rims (bool (N,))."""
    patch_of = np.empty(len(triangles), np.float64)
    for index, rows in enumerate(patches.values()):
        patch_of[rows] = index
    count = np.zeros(n_points)
    total = np.zeros(n_points)
    squares = np.zeros(n_points)
    for k in range(3):
        count += np.bincount(triangles[:, k], minlength=n_points)
        total += np.bincount(triangles[:, k], weights=patch_of, minlength=n_points)
        squares += np.bincount(triangles[:, k], weights=patch_of**2, minlength=n_points)
    return count * squares != total * total  # exact in float64: a zero variance or not


def simplify_patches(points, triangles, patches, held, options, progress, cancel) -> dict:
    """Simplify each patch, its rim (points shared with other patches) and the `held` points
    (bool (N,)) kept in place.

    A simplified patch is kept only if no edge is used by more than two of its triangles and
    every edge used once runs along the rim; otherwise it is simplified again at half the
    tolerance, up to `_RETRIES` times, and only then left as it was.
    """
    junction = _junctions(triangles, patches, len(points)) | held
    result = {}
    tolerance = options.decimation_tolerance_mm
    for done, (pair, rows) in enumerate(patches.items()):
        progress("Simplifying surfaces", done, len(patches))
        check_cancelled(cancel)
        patch = triangles[rows]
        used = np.unique(patch)
        rim, inner = used[junction[used]], used[~junction[used]]
        simplified = None
        if tolerance and len(patch) >= 8 and len(inner):
            for attempt in range(_RETRIES + 1):
                simplified = _simplified(points, patch, rim, inner, tolerance / 2**attempt)
                if simplified is not None:
                    break
                log.debug("patch %s: simplification at %g mm not kept", pair, tolerance / 2**attempt)
        result[pair] = simplified or _unsimplified(patch)
    progress("Simplifying surfaces", len(patches), len(patches))
    return result


#: Times a patch whose simplification is not sound is simplified again at half the tolerance.
_RETRIES = 3


def _simplified(points, patch, rim, inner, tolerance: float) -> _Patch | None:
    """Quadric simplification of one patch (global point ids) within `tolerance` mm, its `rim`
    points held; None when the result is not a sound patch (see `_sound_patch`)."""
    import pyfqmr

    used = np.concatenate([rim, inner])
    local_of = np.empty(int(used.max()) + 1, np.int64)
    local_of[used] = np.arange(len(used))
    # a one-triangle flag on every rim point makes it a border point, which is never moved
    n_rim, n_used = len(rim), len(used)
    flags = np.arange(n_rim)[:, None] + [0, n_used, n_used + n_rim]
    flag_points = np.concatenate([points[rim] + [1e-3, 0, 0], points[rim] + [0, 1e-3, 0]])
    with PYFQMR_LOCK:
        simplifier = pyfqmr.Simplify()
        simplifier.setMesh(
            np.concatenate([points[used], flag_points]),
            np.concatenate([local_of[patch], flags]).astype(np.int32),
        )
        simplifier.simplify_mesh_lossless(
            verbose=False, epsilon=tolerance**2, max_iterations=100, preserve_border=True
        )
        new_points, new_triangles, _ = simplifier.getMesh()
    new_points, new_triangles = new_points[: -2 * n_rim or None], new_triangles[: -n_rim or None]
    new_triangles = np.asarray(new_triangles, np.int64)
    if not (
        len(new_points) >= n_rim
        and np.array_equal(new_points[:n_rim], points[rim])
        and len(new_triangles)
        and new_triangles.max() < len(new_points)
        and _sound_patch(new_triangles, n_rim)
    ):
        return None
    return _Patch(rim, np.asarray(new_points[n_rim:], float), new_triangles)


def _sound_patch(triangles: np.ndarray, n_rim: int) -> bool:
    """No edge used by more than two triangles, and the edges used once run between rim points
    (local indices below `n_rim`)."""
    a = triangles.ravel()
    b = triangles[:, [1, 2, 0]].ravel()
    low, high = np.minimum(a, b), np.maximum(a, b)
    keys, counts = np.unique(low * (int(high.max()) + 1) + high, return_counts=True)
    if counts.max() > 2:
        return False
    single = keys[counts == 1]
    return bool(
        np.all(single // (int(high.max()) + 1) < n_rim) and np.all(single % (int(high.max()) + 1) < n_rim)
    )


def assemble(value: int, points: np.ndarray, patches: dict) -> tuple[np.ndarray, np.ndarray]:
    """The closed surface of label `value` from its patches, outward oriented, compacted."""
    shared_ids, inner_blocks, triangle_blocks = [], [], []
    inner_count = 0
    for (first, second, _), patch in patches.items():
        if value not in (first, second):
            continue
        n_rim = len(patch.rim)
        # local index < n_rim: a shared rim point (global id); else an inner point of this patch
        local = patch.triangles
        rim = patch.rim if n_rim else np.zeros(1, np.int64)
        encoded = np.where(
            local < n_rim, rim[np.minimum(local, len(rim) - 1)], n_rim - 1 - local - inner_count
        )
        triangle_blocks.append(encoded if value == first else encoded[:, ::-1])
        inner_blocks.append(patch.inner)
        inner_count += len(patch.inner)
        shared_ids.append(patch.rim)
    if not triangle_blocks:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    encoded = np.concatenate(triangle_blocks)
    rim_ids = np.unique(encoded[encoded >= 0])
    inner_points = np.concatenate(inner_blocks) if inner_blocks else np.zeros((0, 3))
    new_points = np.concatenate([points[rim_ids], inner_points])
    triangles = np.where(
        encoded >= 0, np.searchsorted(rim_ids, np.maximum(encoded, 0)), len(rim_ids) - 1 - encoded
    )
    used = np.unique(triangles)
    if len(used) != len(new_points):
        remap = np.full(len(new_points), -1, np.int64)
        remap[used] = np.arange(len(used))
        new_points, triangles = new_points[used], remap[triangles]
    return new_points, triangles
