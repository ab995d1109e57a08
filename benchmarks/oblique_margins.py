"""Direction-dependent margins on oblique grids: does "superior 10 mm" grow superior, whatever the
image axes?

A sphere (r 15 mm) and a box (22 × 14 × 27 mm), both voxelised on 1 × 1 × 3 mm grids tilted 0°,
10°, 18° and 30° about the patient's x (left) or z (superior) axis, are grown by each of the six
margins alone (10 mm) and by a prostate-like margin (5 mm posterior, 10 mm elsewhere) with
`planning.margins.expand`. For each case it prints, per patient direction R L A P I S, the extent
gained (mm, furthest voxel centre of the result minus that of the input along the direction),
the largest gap between those and the gains of the exact answer on the grid (the analytic
Minkowski sum voxelised at the same centres), the voxels that differ from that exact answer
(% of its count) and the volume error against it; for the box also against the analytic volume.

    python benchmarks/oblique_margins.py [--angles 0 10 18 30]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.spatial import cKDTree

from planning.geometry import Grid
from planning.margins import Margins, expand
from planning.structures import Mask

CENTRE_MM = np.array([0.3, -0.4, 1.1])
RADIUS_MM = 15.0
BOX_MM = (np.array([-10.0, -8.0, -12.0]), np.array([12.0, 6.0, 15.0]))
#: patient axes (x, y, z) and sides (−, +) of the Margins fields
SIDES = (("right", "left"), ("anterior", "posterior"), ("inferior", "superior"))
CASES = {f"{side[0].upper()} 10": Margins(**{side: 10.0}) for pair in SIDES for side in pair}
CASES["P 5, others 10"] = Margins(10, 10, 10, 5, 10, 10)
CASES["uniform 10"] = Margins.uniform(10)  # the exact path: what the grid itself allows


def tilted_grid(degrees: float, about: int) -> Grid:
    """1 × 1 × 3 mm voxels reaching ±60 mm, the index axes rotated `degrees` about patient axis
    `about` (0 x, 2 z) and centred on the origin."""
    t = np.radians(degrees)
    c, s = np.cos(t), np.sin(t)
    i, j = [(1, 2), None, (0, 1)][about]
    rotation = np.eye(3)
    rotation[i, i], rotation[i, j], rotation[j, i], rotation[j, j] = c, -s, s, c
    shape = (42, 120, 120)
    spacing = np.array([1.0, 1.0, 3.0])
    half = (np.array(shape[::-1]) - 1) / 2 * spacing
    origin = -rotation @ half
    return Grid(shape, tuple(spacing), tuple(origin), rotation)


def centres(grid: Grid) -> np.ndarray:
    z, y, x = np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij")
    return grid.index_to_patient(np.stack([x, y, z], -1).astype(float))


def side_margins(margins: Margins) -> np.ndarray:
    """(3, 2) margins in mm: patient axis x, y, z; towards −, +."""
    return np.array([[getattr(margins, side) for side in pair] for pair in SIDES])


def gauge_sq(d: np.ndarray, margins: Margins) -> np.ndarray:
    """Squared octant-ellipsoid gauge of displacements d (..., 3) in patient mm (inf where a
    component points to a side without margin)."""
    a = side_margins(margins)
    total = np.zeros(d.shape[:-1])
    for j in range(3):
        side = np.where(d[..., j] > 0, a[j, 1], a[j, 0])
        with np.errstate(divide="ignore", invalid="ignore"):
            term = np.where(d[..., j] == 0, 0.0, (d[..., j] / side) ** 2)
        total += np.where(np.isnan(term), np.inf, term)
    return total


def element_surface(margins: Margins, n: int = 160) -> np.ndarray:
    """Points (m, 3) densely on the boundary of the margin element (eight ellipsoid octants)."""
    a = side_margins(margins)
    u, v = np.meshgrid(np.linspace(0, np.pi / 2, n), np.linspace(0, np.pi / 2, n))
    unit = np.stack([np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v)], -1).reshape(-1, 3)
    parts = [
        unit * [a[0, int(sx > 0)], a[1, int(sy > 0)], a[2, int(sz > 0)]] * [sx, sy, sz]
        for sx in (-1, 1)
        for sy in (-1, 1)
        for sz in (-1, 1)
    ]
    return np.concatenate(parts)


def exact_sphere(points: np.ndarray, margins: Margins) -> np.ndarray:
    """Whether each point lies in the sphere ⊕ element: within r of the element, centred."""
    q = points - CENTRE_MM
    inside = gauge_sq(q, margins) <= 1
    near = cKDTree(element_surface(margins)).query(q.reshape(-1, 3), distance_upper_bound=RADIUS_MM)[0]
    return inside | (near.reshape(q.shape[:-1]) <= RADIUS_MM)


def exact_box(points: np.ndarray, margins: Margins) -> np.ndarray:
    lo, hi = BOX_MM
    return gauge_sq(points - np.clip(points, lo, hi), margins) <= 1


def box_volume_cc(margins: Margins) -> float:
    """The analytic volume of the box ⊕ element (faces, quarter-elliptic edges, octant corners)."""
    size = BOX_MM[1] - BOX_MM[0]
    a = side_margins(margins)
    sums = a.sum(1)
    volume = np.prod(size) + sum(sums[j] * np.prod(np.delete(size, j)) for j in range(3))
    for j in range(3):
        k, m = [i for i in range(3) if i != j]
        volume += size[j] * np.pi / 4 * sums[k] * sums[m]
    volume += np.pi / 6 * np.prod(sums)
    return volume / 1000


def extents(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(3, 2): furthest voxel centre towards −, + along patient x, y, z (mm, positive outwards)."""
    p = points[mask]
    return np.stack([-p.min(0), p.max(0)], -1)


def run_case(grid, points, shape, shape_mask, margins):
    exact_fn = exact_sphere if shape == "sphere" else exact_box
    start = time.perf_counter()
    grown = expand(Mask.from_full(grid, shape_mask), margins).full()
    seconds = time.perf_counter() - start
    exact = exact_fn(points, margins)
    base = extents(shape_mask, points)
    gain, exact_gain = extents(grown, points) - base, extents(exact, points) - base
    differ = 100 * np.count_nonzero(grown != exact) / np.count_nonzero(exact)
    volume = 100 * (np.count_nonzero(grown) / np.count_nonzero(exact) - 1)
    analytic = ""
    if shape == "box":
        analytic = f" {100 * (grown.sum() * grid.voxel_volume_cc / box_volume_cc(margins) - 1):+6.2f}%"
    gains = " ".join(f"{g:5.1f}" for g in gain.reshape(-1))
    worst = np.abs(gain - exact_gain).max()
    return f"{gains}   {worst:4.1f}  {differ:6.2f}%  {volume:+6.2f}%{analytic:>8}  {1000 * seconds:5.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--angles", type=float, nargs="+", default=[0, 10, 18, 30])
    args = parser.parse_args()
    print(
        "tilt      shape   margin mm        gained mm:  R     L     A     P     I     S"
        "   worst gap  voxels ≠ exact  vol vs exact  vs analytic  ms"
    )
    for degrees in args.angles:
        for about, axis_name in ((0, "x"), (2, "z")) if degrees else ((0, "-"),):
            grid = tilted_grid(degrees, about)
            points = centres(grid)
            shapes = {
                "sphere": ((points - CENTRE_MM) ** 2).sum(-1) <= RADIUS_MM**2,
                "box": np.all((points >= BOX_MM[0]) & (points <= BOX_MM[1]), -1),
            }
            for shape, shape_mask in shapes.items():
                for name, margins in CASES.items():
                    row = run_case(grid, points, shape, shape_mask, margins)
                    print(f"{degrees:4g}° {axis_name}  {shape:6s}  {name:15s}  {row}")


if __name__ == "__main__":
    main()
