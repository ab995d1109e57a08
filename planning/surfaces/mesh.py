"""The `Surface` type: one structure's triangle mesh in patient coordinates (DICOM LPS, mm).

Points are (N, 3) float64 (x, y, z) positions in mm, triangles (M, 3) int64 point indices,
counter-clockwise seen from outside; normals (N, 3) outward unit vectors. Also here: conversions
between (points, cells) arrays and vtkPolyData, and area-weighted vertex normals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

from planning.surface_topology import MeshTopology, mesh_topology


@dataclass(eq=False)
class Surface:
    """A triangle mesh of one structure in patient coordinates.

    Attributes:
        name: the structure's name.
        points: (N, 3) float64 LPS positions in mm.
        triangles: (M, 3) int64 point indices, counter-clockwise seen from outside.
        color: display colour (r, g, b), 0–255.
        normals: (N, 3) outward unit vertex normals, or None.
    """

    name: str
    points: np.ndarray
    triangles: np.ndarray
    color: tuple[int, int, int] = (255, 0, 0)
    normals: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.points = np.ascontiguousarray(self.points, dtype=np.float64).reshape(-1, 3)
        self.triangles = np.ascontiguousarray(self.triangles, dtype=np.int64).reshape(-1, 3)
        if len(self.triangles) and (self.triangles.min() < 0 or self.triangles.max() >= len(self.points)):
            raise ValueError(f"surface {self.name!r}: triangle indices outside its {len(self.points)} points")

    @property
    def is_empty(self) -> bool:
        return len(self.triangles) == 0

    def topology(self) -> MeshTopology:
        """Whether the mesh is closed, manifold and oriented outward (`planning.surface_topology`)."""
        return mesh_topology(self.triangles, points=self.points)

    def to_polydata(self) -> vtkPolyData:
        """A vtkPolyData copy (points, triangles, normals when known)."""
        polydata = polydata_from_arrays(self.points, self.triangles)
        if self.normals is not None:
            normals = numpy_to_vtk(np.ascontiguousarray(self.normals, dtype=np.float32), deep=True)
            normals.SetName("Normals")
            polydata.GetPointData().SetNormals(normals)
        return polydata

    def level_of_detail(self, max_triangles: int) -> Surface:
        """A coarser copy of about `max_triangles` triangles (within 30 %), for display while the
        camera moves; not guaranteed closed. Self when already small.

        Vertex clustering (VTK's quadric clustering on a grid of cells, made coarser until few
        enough triangles remain): a few tens of ms without holding Python's GIL. Quadric edge
        collapse (pyfqmr) held it for 0.3–2.5 s per large surface, freezing the window while the
        3D view prepared its surfaces in the background."""
        if len(self.triangles) <= max_triangles:
            return self
        from vtkmodules.vtkFiltersCore import vtkQuadricClustering

        polydata = self.to_polydata()
        divisions = max(4, int(np.sqrt(max_triangles / 2)))
        for _ in range(4):
            clustering = vtkQuadricClustering()
            clustering.SetInputData(polydata)
            clustering.SetNumberOfDivisions(divisions, divisions, divisions)
            clustering.AutoAdjustNumberOfDivisionsOn()
            clustering.Update()
            points, triangles = arrays_from_polydata(clustering.GetOutput())
            if len(triangles) <= 1.3 * max_triangles or divisions == 4:
                break
            divisions = max(4, int(divisions * np.sqrt(max_triangles / len(triangles))))
        return Surface(self.name, points, triangles, self.color, vertex_normals(points, triangles))

    @classmethod
    def from_polydata(cls, polydata: vtkPolyData, name: str, color=(255, 0, 0)) -> Surface:
        """A surface from a vtkPolyData made of triangles (other cells are ignored)."""
        points, triangles = arrays_from_polydata(polydata)
        normals = polydata.GetPointData().GetNormals()
        return cls(name, points, triangles, color, None if normals is None else vtk_to_numpy(normals).copy())


# -- VTK conversions -------------------------------------------------------------------------


def polydata_from_arrays(points: np.ndarray, cells: np.ndarray) -> vtkPolyData:
    """vtkPolyData with (N, 3) points and (M, k) polygons (k = 3 for triangles)."""
    cells = np.asarray(cells, dtype=np.int64)
    polydata = vtkPolyData()
    vtk_points = vtkPoints()
    vtk_points.SetData(numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True))
    polydata.SetPoints(vtk_points)
    polys = vtkCellArray()
    offsets = np.arange(0, cells.size + 1, max(cells.shape[1], 1) if cells.ndim == 2 else 3, dtype=np.int64)
    polys.SetData(
        numpy_to_vtkIdTypeArray(offsets, deep=True), numpy_to_vtkIdTypeArray(cells.ravel(), deep=True)
    )
    polydata.SetPolys(polys)
    return polydata


def arrays_from_polydata(polydata: vtkPolyData) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 3), triangles (M, 3)) of a polydata; polygons with more sides are fanned."""
    if polydata.GetNumberOfPoints() == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    points = vtk_to_numpy(polydata.GetPoints().GetData()).astype(np.float64)
    polys = polydata.GetPolys()
    offsets = vtk_to_numpy(polys.GetOffsetsArray()).astype(np.int64)
    connectivity = vtk_to_numpy(polys.GetConnectivityArray()).astype(np.int64)
    sizes = np.diff(offsets)
    if len(sizes) and np.all(sizes == 3):
        return points, connectivity.reshape(-1, 3)
    fans = []
    for n in np.unique(sizes[sizes >= 3]):
        starts = offsets[:-1][sizes == n]
        for k in range(1, n - 1):
            fans.append(
                np.stack([connectivity[starts], connectivity[starts + k], connectivity[starts + k + 1]], 1)
            )
    triangles = np.concatenate(fans) if fans else np.zeros((0, 3), np.int64)
    return points, triangles


def vertex_normals(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (N, 3); counter-clockwise triangles give outward ones."""
    p = points[triangles]
    face = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    normals = np.zeros_like(points)
    for k in range(3):
        for axis in range(3):
            normals[:, axis] += np.bincount(triangles[:, k], weights=face[:, axis], minlength=len(points))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.where(length > 0, length, 1.0)
