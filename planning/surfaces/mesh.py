"""The `Surface` type: one structure's triangle mesh in patient coordinates (DICOM LPS, mm).

Points are (N, 3) float64 (x, y, z) positions in mm, triangles (M, 3) int64 point indices,
counter-clockwise seen from outside; normals (N, 3) outward unit vectors. Also here: conversions
between (points, cells) arrays and vtkPolyData, and area-weighted vertex normals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

from planning.surface_topology import MeshTopology, mesh_topology
from planning.surfaces.options import SurfaceOptions
from planning.surfaces.simplify import assemble, simplify_patches, split_into_patches


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
        """A coarser copy of about `max_triangles` triangles, for display while the camera
        moves; closed and manifold where this surface is (see `coarse_shell`). Self when
        already small.

        Each connected shell is decimated by itself to its share of `max_triangles` (at least
        `SHELL_TRIANGLES`), mostly in VTK, which leaves Python's GIL free; pyfqmr, which holds
        it, is given a large shell only in patches (`coarse_shell`): given a whole surface it
        held the GIL for seconds, freezing the window while the 3D view built its meshes."""
        if len(self.triangles) <= max_triangles:
            return self
        count, shell_of = connected_components(
            _vertex_graph(self.triangles, len(self.points)), directed=False
        )
        shell_of = shell_of[self.triangles[:, 0]]
        sizes = np.bincount(shell_of, minlength=count)
        blocks, offset = [], 0
        for shell in np.argsort(-sizes):
            target = max(SHELL_TRIANGLES, round(max_triangles * sizes[shell] / len(self.triangles)))
            points, triangles = coarse_shell(self.points, self.triangles[shell_of == shell], target)
            blocks.append((points, triangles + offset))
            offset += len(points)
        points = np.concatenate([b[0] for b in blocks])
        triangles = np.concatenate([b[1] for b in blocks])
        return Surface(self.name, points, triangles, self.color, vertex_normals(points, triangles))

    @classmethod
    def from_polydata(cls, polydata: vtkPolyData, name: str, color=(255, 0, 0)) -> Surface:
        """A surface from a vtkPolyData made of triangles (other cells are ignored)."""
        points, triangles = arrays_from_polydata(polydata)
        normals = polydata.GetPointData().GetNormals()
        return cls(name, points, triangles, color, None if normals is None else vtk_to_numpy(normals).copy())


#: A shell is decimated to no fewer triangles than this (ribs of a Bone structure, say: a share
#: of a few triangles each would collapse them).
SHELL_TRIANGLES = 40
#: A shell is decimated in steps, each to this many times fewer triangles, the last to its target.
_STEPS = (8, 4, 2, 1)
#: A shell of more than this many times its target triangles is first simplified within
#: `PRE_TOLERANCE_MM` by pyfqmr, some four times faster than VTK's decimation (`_pre_reduced`).
PRE_REDUCE = 16
#: How far (mm) that first simplification may move a point off the planes of its triangles:
#: well within the coarse mesh's own error (several mm at 1,500 triangles for a body).
PRE_TOLERANCE_MM = 2.0


def coarse_shell(points: np.ndarray, triangles: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """One closed shell decimated to about `target` triangles: (points, triangles), compacted.

    Quadric edge collapse (VTK's `vtkQuadricDecimation`, volume preserving) can pinch a thin
    part, open a hole or fold a shell flat. It runs in steps (to 8, 4, 2 and 1 times `target`
    triangles), each from the last; a step's result is kept only if, once fins are cut off
    (`_without_fins`), it is one closed, manifold, consistently oriented shell enclosing a
    volume, facing the same way as before (a cavity's shell faces inward); else the last sound
    one is returned (the shell as it is if none). (Vertex clustering, used before, merged
    points across thin parts and close folds: open, non-manifold meshes whose holes and flipped
    triangles showed as dark specks.) A shell of more than `PRE_REDUCE` times `target`
    triangles is first simplified by pyfqmr (`_pre_reduced`), kept if just as sound: VTK's
    decimation of a 117-organ CT's surfaces (6.9 million triangles) took 110 s of CPU.
    """
    from vtkmodules.vtkFiltersCore import vtkQuadricDecimation

    points, triangles = _compact(points, triangles)
    outward = _volume(points, triangles) > 0  # a cavity's shell faces inward
    if len(triangles) > PRE_REDUCE * target:
        reduced = _pre_reduced(points, triangles)
        if _sound(*reduced, outward):
            points, triangles = reduced
    for step in _STEPS:
        if len(triangles) <= step * target:
            continue
        decimation = vtkQuadricDecimation()
        decimation.SetInputData(polydata_from_arrays(points, triangles))
        decimation.SetTargetReduction(1 - step * target / len(triangles))
        decimation.VolumePreservationOn()
        decimation.Update()
        new_points, new_triangles = arrays_from_polydata(decimation.GetOutput())
        if not len(new_triangles):
            break
        new_points, new_triangles = _compact(new_points, _without_fins(new_triangles))
        if not _sound(new_points, new_triangles, outward):
            break
        points, triangles = new_points, new_triangles
    return points, triangles


def _sound(points: np.ndarray, triangles: np.ndarray, outward: bool) -> bool:
    """Whether a mesh is one closed, manifold, consistently oriented shell enclosing a volume,
    facing outward (`outward`) or inward."""
    if not len(triangles):
        return False
    topology = mesh_topology(triangles, points=points)
    return (
        topology.closed
        and topology.manifold
        and topology.misoriented_edges == topology.flat_shells == 0
        and topology.shells == 1
        and topology.inside_out != outward  # its signed volume, which `mesh_topology` computes
    )


def _pre_reduced(points: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A closed shell simplified within `PRE_TOLERANCE_MM` by pyfqmr as surfaces are built
    (`planning.surfaces.simplify`): in patches of at most `SurfaceOptions.patch_triangles`, the
    seams between them held, so that pyfqmr never holds Python's GIL long. (points, triangles)."""
    options = SurfaceOptions(decimation_tolerance_mm=PRE_TOLERANCE_MM)
    pairs = np.tile([1, 0], (len(triangles), 1))  # label 1 against the outside
    patches = split_into_patches(triangles, pairs, points, options.patch_triangles)
    held = np.zeros(len(points), bool)
    simplified = simplify_patches(points, triangles, patches, held, options, lambda *_: None, None)
    return assemble(1, points, simplified)


def _volume(points: np.ndarray, triangles: np.ndarray) -> float:
    """Signed volume (mm³) a closed mesh encloses: negative if its triangles face inward."""
    p = points[triangles] - points.mean(axis=0)
    return float(np.einsum("ij,ij->", p[:, 0], np.cross(p[:, 1], p[:, 2]))) / 6


def _without_fins(triangles: np.ndarray) -> np.ndarray:
    """The triangles less those with an open edge: vtkQuadricDecimation now and then leaves a
    fin, one triangle hanging off an edge of an otherwise closed shell."""
    a, b = triangles.ravel(), triangles[:, [1, 2, 0]].ravel()
    key = np.minimum(a, b) * (int(triangles.max()) + 1) + np.maximum(a, b)
    _, edge, count = np.unique(key, return_inverse=True, return_counts=True)
    return triangles[~(count[edge.reshape(-1, 3)] == 1).any(axis=1)]


def _compact(points: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Only the points the triangles use, renumbered."""
    used, triangles = np.unique(triangles, return_inverse=True)
    return points[used], triangles.reshape(-1, 3)


def _vertex_graph(triangles: np.ndarray, n_points: int) -> sparse.coo_matrix:
    """Points linked along the triangles' edges."""
    rows, cols = triangles.ravel(), triangles[:, [1, 2, 0]].ravel()
    return sparse.coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n_points, n_points))


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
