"""A plane's contours as polygons in dose index units (x, y): their perimeter, their even-odd area,
and which samples of a regular lattice lie inside them."""

from __future__ import annotations

import numpy as np


def perimeter_mm(polygons, grid) -> float:
    """The summed length (mm) of a plane's contours, given in dose index units (x, y)."""
    scale = np.asarray(grid.spacing_xyz[:2])
    return float(sum(np.linalg.norm((np.roll(p, -1, axis=0) - p) * scale, axis=1).sum() for p in polygons))


def polygon_area_even_odd(polygons) -> float:
    """Area (in index units²) of a plane's contours combined even-odd, for sizing the sampling
    (holes are approximated by the signed-area difference of nested contours)."""
    areas = sorted((abs(_shoelace(p)) for p in polygons), reverse=True)
    return areas[0] - sum(areas[1:]) if len(areas) > 1 else (areas[0] if areas else 0.0)


def _shoelace(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def inside_samples(polygons: list[np.ndarray], f: int):
    """Sample columns (xs) and rows (ys) in index units over the polygons' extent, and a bool
    (rows, columns) array: inside an odd number of polygons (half-open crossing rule)."""
    points = np.concatenate(polygons)
    lo = np.floor(points.min(axis=0)) - 1
    hi = np.ceil(points.max(axis=0)) + 1
    offsets = (np.arange(f) + 0.5) / f - 0.5  # sub-sample centres within a voxel
    xs = (np.arange(lo[0], hi[0] + 1)[:, None] + offsets).ravel()
    ys = (np.arange(lo[1], hi[1] + 1)[:, None] + offsets).ravel()
    x0, y0, x1, y1 = [], [], [], []
    for polygon in polygons:
        nxt = np.roll(polygon, -1, axis=0)
        x0.append(polygon[:, 0])
        y0.append(polygon[:, 1])
        x1.append(nxt[:, 0])
        y1.append(nxt[:, 1])
    x0, y0, x1, y1 = (np.concatenate(v) for v in (x0, y0, x1, y1))
    # rows crossed by each edge: ys in [min(y0, y1), max(y0, y1))
    low, high = np.minimum(y0, y1), np.maximum(y0, y1)
    first = np.searchsorted(ys, low, side="left")
    last = np.searchsorted(ys, high, side="left")
    counts = np.maximum(last - first, 0)
    edge = np.repeat(np.arange(len(x0)), counts)
    row = (
        np.concatenate([np.arange(a, b) for a, b in zip(first, last, strict=True)])
        if counts.sum()
        else np.zeros(0, int)
    )
    toggles = np.zeros((len(ys), len(xs) + 1), np.int32)
    if row.size:
        t = (ys[row] - y0[edge]) / (y1[edge] - y0[edge])
        x_cross = x0[edge] + t * (x1[edge] - x0[edge])
        column = np.searchsorted(xs, x_cross, side="right")  # first sample strictly right of it
        np.add.at(toggles, (row, column), 1)
    inside = (np.cumsum(toggles[:, :-1], axis=1) % 2).astype(bool)
    return xs, ys, inside
