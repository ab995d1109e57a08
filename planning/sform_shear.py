"""How far a NIfTI sform's voxel axes are from right angles, and the nearest grid whose axes are.

A `planning.geometry.Grid` places voxels by an origin, voxel sizes and a rotation: axes at right
angles. An sform (3×4, voxel index (i, j, k) → mm) may hold a shear, which no grid can: a tiny one
(float rounding by the tool that wrote it) is removed by taking the nearest rotation; a larger
one is refused by `planning.imageio`, as it would move voxels away from where the file puts them.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from planning.geometry import Grid

#: The largest shear (departure of two voxel axes from a right angle, degrees) made perpendicular.
SHEAR_LIMIT_DEG = 0.01
#: A shear below this (degrees) is float rounding of the sform: made perpendicular without a word.
SHEAR_NOISE_DEG = 1e-4

_AXES = "ijk"


class Shear(NamedTuple):
    """The two voxel axes furthest from a right angle: their names ("i and j"), the angle between
    them and its departure from 90° (degrees)."""

    axes: str
    angle_deg: float
    shear_deg: float


def shear_of(matrix: np.ndarray) -> Shear:
    """The shear of the 3×3 (or 3×4) voxel-to-mm matrix `matrix`, whose columns are the i, j, k
    voxel steps (none may be zero)."""
    steps = np.asarray(matrix, np.float64)[:, :3]
    unit = steps / np.linalg.norm(steps, axis=0)
    found = Shear("i and j", 90.0, 0.0)
    for a, b in itertools.combinations(range(3), 2):
        angle = float(np.degrees(np.arccos(np.clip(unit[:, a] @ unit[:, b], -1.0, 1.0))))
        if abs(angle - 90.0) > found.shear_deg:
            found = Shear(f"{_AXES[a]} and {_AXES[b]}", angle, abs(angle - 90.0))
    return found


def perpendicular_grid(matrix: np.ndarray, shape: tuple[int, int, int]) -> Grid:
    """The grid of `shape` (z, y, x) nearest the 3×4 voxel-to-LPS-mm `matrix`: its voxel sizes
    (column lengths), its origin and the rotation nearest its axes (polar decomposition)."""
    matrix = np.asarray(matrix, np.float64)
    spacing = np.linalg.norm(matrix[:, :3], axis=0)
    u, _, vt = np.linalg.svd(matrix[:, :3] / spacing)
    return Grid(shape=shape, spacing_xyz=tuple(spacing), origin_xyz=tuple(matrix[:, 3]), direction=u @ vt)


def voxels_moved_mm(matrix: np.ndarray, grid: Grid) -> float:
    """How far (mm) `grid` puts the image's corner voxels from where the 3×4 voxel-to-mm `matrix`
    does: the most any voxel moves."""
    size = np.asarray(grid.shape[::-1], np.float64) - 1  # grid.shape is (z, y, x)
    corners = np.array(list(itertools.product(*[(0.0, n) for n in size])))
    difference = (np.asarray(matrix, np.float64)[:, :3] - grid.affine[:3, :3]) @ corners.T
    return float(np.max(np.linalg.norm(difference, axis=0)))
