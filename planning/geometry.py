"""Image grids in patient space.

Conventions used everywhere in Delineo:

- numpy arrays are indexed ``[z, y, x]`` (slice, row, column);
- grid geometry follows DICOM and SimpleITK: ``spacing_xyz`` and ``origin_xyz`` are ordered
  (x, y, z) = (column, row, slice) and given in millimetres; ``origin_xyz`` is the patient
  position of the centre of voxel ``[0, 0, 0]``;
- patient coordinates are DICOM LPS (x to the patient's left, y posterior, z superior), in mm;
- ``direction`` is a 3×3 matrix whose columns are the unit vectors, in patient space, along
  which the column, row and slice indices grow (SimpleITK's direction matrix).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from planning.errors import GeometryError

#: Geometry agreeing within this many millimetres is considered identical.
GEOMETRY_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class Grid:
    """A regular voxel grid placed in patient space.

    Attributes:
        shape: number of voxels (z, y, x).
        spacing_xyz: voxel size in mm along (column, row, slice).
        origin_xyz: LPS position in mm of the centre of voxel [0, 0, 0].
        direction: 3×3 matrix; column k is the LPS unit vector of index axis k (x, y, z).
    """

    shape: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    origin_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        spacing = tuple(float(s) for s in self.spacing_xyz)
        origin = tuple(float(o) for o in self.origin_xyz)
        direction = np.array(self.direction, dtype=np.float64).reshape(3, 3)
        if len(shape) != 3 or min(shape) < 1:
            raise GeometryError(f"grid shape must be three positive sizes (z, y, x), got {shape}")
        if len(spacing) != 3 or min(spacing) <= 0 or not np.all(np.isfinite(spacing)):
            raise GeometryError(f"voxel spacing must be three positive sizes in mm, got {spacing}")
        if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
            raise GeometryError(f"direction matrix is not orthonormal: {direction.tolist()}")
        direction.setflags(write=False)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing_xyz", spacing)
        object.__setattr__(self, "origin_xyz", origin)
        object.__setattr__(self, "direction", direction)

    # -- derived ------------------------------------------------------------------------------

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Voxel size in mm in array order (slice, row, column)."""
        return self.spacing_xyz[::-1]

    @property
    def voxel_volume_cc(self) -> float:
        """Volume of one voxel in cm³."""
        return float(np.prod(self.spacing_xyz)) / 1000.0

    @property
    def slice_normal(self) -> np.ndarray:
        """LPS unit vector along which the slice index grows."""
        return self.direction[:, 2]

    @property
    def affine(self) -> np.ndarray:
        """4×4 matrix mapping homogeneous index (x, y, z, 1) to LPS mm (x, y, z, 1)."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction * np.asarray(self.spacing_xyz)
        affine[:3, 3] = self.origin_xyz
        return affine

    # -- transforms ---------------------------------------------------------------------------

    def index_to_patient(self, index_xyz: np.ndarray) -> np.ndarray:
        """Map continuous voxel indices (..., 3) in (x, y, z) order to LPS points in mm."""
        index_xyz = np.asarray(index_xyz, dtype=np.float64)
        matrix = self.direction * np.asarray(self.spacing_xyz)
        return index_xyz @ matrix.T + np.asarray(self.origin_xyz)

    def patient_to_index(self, points_xyz: np.ndarray) -> np.ndarray:
        """Map LPS points (..., 3) in mm to continuous voxel indices in (x, y, z) order."""
        points_xyz = np.asarray(points_xyz, dtype=np.float64)
        inverse = np.linalg.inv(self.direction * np.asarray(self.spacing_xyz))
        return (points_xyz - np.asarray(self.origin_xyz)) @ inverse.T

    def slice_position(self, k: int | np.ndarray) -> np.ndarray:
        """LPS position in mm of the centre of voxel [k, 0, 0] (the slice's DICOM position)."""
        k = np.asarray(k, dtype=np.float64)
        return (
            np.asarray(self.origin_xyz) + np.multiply.outer(k, self.direction[:, 2]) * (self.spacing_xyz[2])
        )

    def same_as(self, other: Grid, tolerance_mm: float = GEOMETRY_TOLERANCE_MM) -> bool:
        """Whether two grids have the same shape and place every voxel at the same point."""
        if self.shape != other.shape:
            return False
        corners = np.array(
            [[0, 0, 0], [self.shape[2] - 1, self.shape[1] - 1, self.shape[0] - 1]], dtype=float
        )
        gap = self.index_to_patient(corners) - other.index_to_patient(corners)
        return bool(np.abs(gap).max() <= tolerance_mm)

    def with_shape(self, shape: tuple[int, int, int], offset_zyx=(0, 0, 0)) -> Grid:
        """A grid of another shape whose voxel [0, 0, 0] sits at voxel ``offset_zyx`` of this one."""
        origin = self.index_to_patient(np.asarray(offset_zyx, dtype=float)[::-1])
        return Grid(shape, self.spacing_xyz, tuple(origin), self.direction)
