"""Measurements in patient millimetres: ruler and angle, structure volume and surface area, the
minimum distance between two structures with its closest points, and the distance of every
vertex of one surface to another (a margin map) with the area each vertex stands for.

Distances between surfaces are exact point-to-triangle distances (VTK's implicit poly-data
distance); the minimum distance between two surfaces is refined from the closest vertex pair by
alternating projections, so it is not limited to vertex positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkDoubleArray
from vtkmodules.vtkFiltersCore import vtkImplicitPolyDataDistance

from planning.structures import Structure
from planning.surfaces.mesh import Surface

# -- points ----------------------------------------------------------------------------------


def ruler_mm(start, end) -> float:
    """Distance in mm between two LPS points (mm)."""
    return float(np.linalg.norm(np.asarray(end, float) - np.asarray(start, float)))


def angle_deg(first, vertex, second) -> float:
    """Angle in degrees at `vertex` between the rays to `first` and `second` (LPS mm points)."""
    u = np.asarray(first, float) - np.asarray(vertex, float)
    v = np.asarray(second, float) - np.asarray(vertex, float)
    norms = np.linalg.norm(u) * np.linalg.norm(v)
    if norms == 0:
        raise ValueError("an angle needs two points distinct from its vertex")
    return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / norms, -1.0, 1.0))))


# -- structures -------------------------------------------------------------------------------


def mesh_volume_cc(surface: Surface) -> float:
    """Volume enclosed by a closed, outward-oriented surface, in cm³ (divergence theorem)."""
    p = surface.points[surface.triangles]
    return float(np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() / 6.0 / 1000.0)


def mesh_area_cm2(surface: Surface) -> float:
    """Surface area in cm²."""
    p = surface.points[surface.triangles]
    return float(np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum() / 2 / 100.0)


def vertex_areas(surface: Surface) -> np.ndarray:
    """The area (mm²) each vertex stands for, (N,): a third of each triangle it is a corner of.
    They sum to the surface's area; weighting a per-vertex value by them gives its share of the
    area, whatever the vertices' density (simplification leaves more on curved parts)."""
    p = surface.points[surface.triangles]
    thirds = np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1) / 6.0
    return np.bincount(surface.triangles.ravel(), np.repeat(thirds, 3), minlength=len(surface.points))


@dataclass(frozen=True)
class StructureMeasures:
    """Size of one structure.

    Attributes:
        name: the structure's name.
        voxel_volume_cc: voxel count × voxel volume.
        mesh_volume_cc: volume enclosed by its surface.
        area_cm2: area of its surface.
    """

    name: str
    voxel_volume_cc: float
    mesh_volume_cc: float
    area_cm2: float


def measure_structure(structure: Structure, surface: Surface) -> StructureMeasures:
    """The voxel volume, mesh volume (cc) and surface area (cm²) of a structure and its surface."""
    return StructureMeasures(
        structure.name, structure.mask.volume_cc, mesh_volume_cc(surface), mesh_area_cm2(surface)
    )


# -- distances between surfaces ------------------------------------------------------------------


def _implicit(surface: Surface) -> vtkImplicitPolyDataDistance:
    if surface.is_empty:
        raise ValueError(f"surface {surface.name!r} is empty")
    distance = vtkImplicitPolyDataDistance()
    distance.SetInput(surface.to_polydata())
    return distance


def point_distances(points: np.ndarray, surface: Surface, *, signed: bool = False) -> np.ndarray:
    """Distance in mm from each LPS point (N, 3) to `surface`; signed: negative inside it."""
    points = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
    values = vtkDoubleArray()
    _implicit(surface).FunctionValue(numpy_to_vtk(points, deep=True), values)
    result = vtk_to_numpy(values).copy()
    return result if signed else np.abs(result)


def surface_distances(surface: Surface, to: Surface, *, signed: bool = False) -> np.ndarray:
    """Per-vertex distance in mm of `surface` to `to` (a margin map); signed: negative where
    the vertex lies inside `to`."""
    return point_distances(surface.points, to, signed=signed)


@dataclass(frozen=True)
class ClosestPoints:
    """The minimum distance between two structures.

    Attributes:
        distance_mm: the gap between the surfaces; 0 when they touch or overlap.
        point_a: LPS point (mm) on the first surface.
        point_b: LPS point (mm) on the second surface.
        overlapping: whether one surface reaches inside the other.
    """

    distance_mm: float
    point_a: np.ndarray
    point_b: np.ndarray
    overlapping: bool


def minimum_distance(a: Surface, b: Surface, refinements: int = 30) -> ClosestPoints:
    """Closest points of two closed surfaces and the gap between them, in mm."""
    to_a, to_b = _implicit(a), _implicit(b)
    from_a = point_distances(a.points, b, signed=True)
    from_b = point_distances(b.points, a, signed=True)
    if from_a.min() <= 0 or from_b.min() <= 0:
        i = int(np.argmin(from_a))
        return ClosestPoints(0.0, a.points[i].copy(), _closest(to_b, a.points[i]), True)
    best = None
    for start, on_a in ((a.points[int(np.argmin(from_a))], True), (b.points[int(np.argmin(from_b))], False)):
        p = start.copy()
        q = _closest(to_b if on_a else to_a, p)
        for _ in range(refinements):
            p_next = _closest(to_a if on_a else to_b, q)
            q_next = _closest(to_b if on_a else to_a, p_next)
            converged = np.linalg.norm(p_next - p) < 1e-6 and np.linalg.norm(q_next - q) < 1e-6
            p, q = p_next, q_next
            if converged:
                break
        pa, pb = (p, q) if on_a else (q, p)
        gap = float(np.linalg.norm(pb - pa))
        if best is None or gap < best.distance_mm:
            best = ClosestPoints(gap, pa, pb, False)
    return best


def _closest(distance: vtkImplicitPolyDataDistance, point: np.ndarray) -> np.ndarray:
    closest = [0.0, 0.0, 0.0]
    distance.EvaluateFunctionAndGetClosestPoint(list(map(float, point)), closest)
    return np.asarray(closest)
