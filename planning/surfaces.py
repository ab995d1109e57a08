"""Surface meshes of structures: one closed, manifold triangle mesh per structure, in patient mm.

All structures of a label map are meshed in one pass (VTK's multi-label surface nets), so the
boundary two touching organs share is built, smoothed and simplified once and the two surfaces
meet without gaps or overlaps. The steps:

1. make every label's voxel region well composed (`planning.surface_topology`): diagonal voxel
   contacts are bridged, which is what makes every surface a closed 2-manifold;
2. `vtkSurfaceNets3D` on the label map (padded by one voxel so structures touching the grid's
   edge are closed): a quad mesh with one vertex per voxel corner on a boundary, each quad knowing
   the two labels it separates;
3. windowed-sinc smoothing (`vtkWindowedSincPolyDataFilter`, Slicer's default pass band) of the
   whole multi-label mesh; edges where three regions meet are smoothed along themselves;
4. the mesh is cut into patches, one per pair of touching labels (large ones into parts); each
   patch is simplified by quadric edge collapse (pyfqmr) with an error bound in mm, its rim,
   the points it shares with other patches, held in place; a simplified patch is kept only if
   no edge is shared by more than two of its triangles and its rim is intact (else it is
   simplified again at half the bound, a few times), so the structures' surfaces, assembled
   from their patches and oriented outward, stay closed and manifold;
5. points are mapped to patient coordinates (LPS mm) through the grid's direction matrix, so the
   meshes sit exactly on the image (a mirrored grid reverses the triangles' winding), and vertex
   normals are computed.

Structures of a `StructureSet` may overlap (a PTV over an organ, BODY around everything): they are
sorted into layers of mutually disjoint structures and each layer is meshed in one pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkSurfaceNets3D, vtkWindowedSincPolyDataFilter

from planning.errors import Cancelled
from planning.geometry import Grid
from planning.structures import Structure, StructureSet, bounding_box
from planning.surface_topology import MeshTopology, make_well_composed, mesh_topology

log = logging.getLogger(__name__)

#: pyfqmr, the simplifier, keeps the mesh it works on in global state: two threads simplifying
#: at once (the 3D view building while a dialog measures) swap their results. Every use holds it.
#: (It also holds Python's GIL while it works: only small patches are given to it.)
PYFQMR_LOCK = threading.Lock()

Progress = Callable[[str, float, float], None]


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


@dataclass(frozen=True)
class SurfaceOptions:
    """How surfaces are built.

    Attributes:
        smoothing_iterations: windowed-sinc iterations (0: no smoothing).
        smoothing_pass_band: windowed-sinc pass band; 0.01 is 3D Slicer's default smoothing.
        decimation_tolerance_mm: largest distance a simplified vertex may move away from the
            planes of the triangles it replaces (0: no simplification).
        normals: compute vertex normals.
        patch_triangles: simplify at most this many triangles at a time (a shared boundary
            larger than this is cut into parts whose seams stay unsimplified); bounds how long
            the simplifier holds Python's GIL, so a GUI stays responsive.
    """

    smoothing_iterations: int = 20
    smoothing_pass_band: float = 0.01
    decimation_tolerance_mm: float = 0.25
    normals: bool = True
    patch_triangles: int = 20000

    def __post_init__(self) -> None:
        if self.smoothing_iterations < 0 or not 0 < self.smoothing_pass_band <= 2:
            raise ValueError("smoothing needs iterations ≥ 0 and a pass band in (0, 2]")
        if self.patch_triangles < 100:
            raise ValueError("patches must be allowed at least 100 triangles")
        if self.decimation_tolerance_mm < 0:
            raise ValueError("the decimation tolerance is a distance in mm, ≥ 0")


# -- public entry points -----------------------------------------------------------------------


def build_surfaces(
    structures: StructureSet | Iterable[Structure],
    options: SurfaceOptions = SurfaceOptions(),
    *,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Surface]:
    """One surface per non-empty structure, keyed by structure name.

    Overlapping structures are meshed in separate passes (see the module docstring).

    Raises:
        Cancelled: when `cancel` is set.
    """
    structures = [s for s in structures if not s.mask.is_empty]
    if not structures:
        return {}
    grid = structures[0].mask.grid
    layers = disjoint_layers(structures)
    progress = _Stages(on_progress, len(layers))
    surfaces: dict[str, Surface] = {}
    for members in layers:
        box = _union_box([s.mask.box for s in members])
        labels = np.zeros(tuple(s.stop - s.start + 2 for s in box), _label_type(len(members)))
        for value, structure in enumerate(members, start=1):
            mask = structure.mask
            target = tuple(
                slice(o - b.start + 1, o - b.start + 1 + n)
                for o, b, n in zip(mask.offset, box, mask.array.shape, strict=True)
            )
            labels[target][mask.array] = value
        offset = tuple(s.start - 1 for s in box)
        meshes = _mesh_layer(labels, offset, grid, options, progress, cancel)
        for value, structure in enumerate(members, start=1):
            if value in meshes:
                points, triangles, normals = meshes[value]
                surfaces[structure.name] = Surface(
                    structure.name, points, triangles, structure.color, normals
                )
    return surfaces


def surfaces_from_label_map(
    labels: np.ndarray,
    grid: Grid,
    names: dict[int, str] | None = None,
    colors: dict[int, tuple[int, int, int]] | None = None,
    options: SurfaceOptions = SurfaceOptions(),
    *,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> dict[int, Surface]:
    """One surface per non-zero label of a (z, y, x) label map on `grid`, in one pass.

    Names default to "Label_<value>", colours to the TG-263 style of the name.
    """
    from planning.tg263 import style_for

    if tuple(labels.shape) != grid.shape:
        raise ValueError(f"label map of shape {labels.shape} does not fit grid {grid.shape}")
    if labels.dtype.kind not in "iub" or (labels.size and labels.min() < 0):
        raise ValueError(f"a label map holds non-negative integers, not {labels.dtype} values")
    box = bounding_box(labels != 0)
    if box is None:
        return {}
    labels = labels[box]
    if labels.max() <= np.iinfo(np.uint16).max:
        values, compact = np.arange(int(labels.max()) + 1), labels
    else:
        values, compact = np.unique(labels, return_inverse=True)
        compact = compact.reshape(labels.shape)
    padded = np.pad(compact.astype(_label_type(int(compact.max())), copy=False), 1)
    offset = tuple(s.start - 1 for s in box)
    meshes = _mesh_layer(padded, offset, grid, options, _Stages(on_progress, 1), cancel)
    surfaces = {}
    for index, (points, triangles, normals) in meshes.items():
        value = int(values[index])
        name = (names or {}).get(value, f"Label_{value}")
        color = (colors or {}).get(value) or style_for(name)[0]
        surfaces[value] = Surface(name, points, triangles, color, normals)
    return surfaces


def voxel_boundary(mask: np.ndarray, offset_zyx, grid: Grid, name: str = "voxels") -> Surface:
    """The exact boundary of a set of voxels (the faces between inside and outside voxels) as
    a triangle surface in patient mm, outward oriented. Corners are not shared between faces,
    so this is for display and for measuring how far a mesh strays from its voxels.

    Args:
        mask: bool (z, y, x) array, voxel [0, 0, 0] being grid voxel `offset_zyx`.
    """
    padded = np.pad(np.asarray(mask, bool), 1)
    corners, triangles = [], []
    for axis in range(3):
        step = np.diff(padded.astype(np.int8), axis=axis)  # +1: outside→inside, −1: inside→outside
        for sign in (1, -1):
            where = np.argwhere(step == sign).astype(np.float64)  # (k, 3) zyx of the lower voxel
            if not len(where):
                continue
            where[:, axis] += 0.5  # the face lies between voxel i and i + 1 (padded indices)
            others = [a for a in range(3) if a != axis]
            quad = np.repeat(where[:, None, :], 4, axis=1)
            for k, (du, dv) in enumerate(((-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5))):
                quad[:, k, others[0]] += du
                quad[:, k, others[1]] += dv
            # padded zyx index → grid (x, y, z) index
            quad = quad - 1 + np.asarray(offset_zyx, float)
            base = sum(len(c) for c in corners)
            ids = base + np.arange(len(quad) * 4).reshape(-1, 4)
            # corners run counter-clockwise in (others[0], others[1]); in (x, y, z) index order
            # that turns towards −axis except for the middle (y) axis
            outward = (sign == -1) == (axis == 1)
            tris = np.concatenate([ids[:, [0, 1, 2]], ids[:, [0, 2, 3]]])
            triangles.append(tris if outward else tris[:, ::-1])
            corners.append(quad.reshape(-1, 3)[:, ::-1])
    points = grid.index_to_patient(np.concatenate(corners)) if corners else np.zeros((0, 3))
    triangles = np.concatenate(triangles) if triangles else np.zeros((0, 3), np.int64)
    if np.linalg.det(grid.direction) < 0:
        triangles = triangles[:, ::-1]
    return Surface(name, points, triangles)


def voxelize(surface: Surface, grid: Grid, box=None) -> np.ndarray:
    """Voxels of `grid` (within `box`, (z, y, x) slices; default all) whose centre lies inside a
    closed surface, as a bool array of the box's shape. Scan conversion in index space, so
    oblique and flipped grids are handled."""
    from vtkmodules.vtkImagingStencil import vtkImageStencilToImage, vtkPolyDataToImageStencil

    box = box or tuple(slice(0, n) for n in grid.shape)
    shape = tuple(s.stop - s.start for s in box)
    indices = grid.patient_to_index(surface.points) - [s.start for s in box[::-1]]
    stencil = vtkPolyDataToImageStencil()
    stencil.SetInputData(polydata_from_arrays(indices, surface.triangles))
    stencil.SetOutputOrigin(0, 0, 0)
    stencil.SetOutputSpacing(1, 1, 1)
    stencil.SetOutputWholeExtent(0, shape[2] - 1, 0, shape[1] - 1, 0, shape[0] - 1)
    to_image = vtkImageStencilToImage()
    to_image.SetInputConnection(stencil.GetOutputPort())
    to_image.SetInsideValue(1)
    to_image.SetOutsideValue(0)
    to_image.SetOutputScalarTypeToUnsignedChar()
    to_image.Update()
    return vtk_to_numpy(to_image.GetOutput().GetPointData().GetScalars()).reshape(shape).astype(bool)


def disjoint_layers(structures: list[Structure]) -> list[list[Structure]]:
    """Group structures into layers in which no two share a voxel (first fit, in the given
    order): each layer can be meshed as one label map."""
    if not structures:
        return []
    shape = structures[0].mask.grid.shape
    layers: list[tuple[np.ndarray, list[Structure]]] = []
    for structure in structures:
        mask = structure.mask
        for occupied, members in layers:
            if not occupied[mask.box][mask.array].any():
                occupied[mask.box] |= mask.array
                members.append(structure)
                break
        else:
            occupied = np.zeros(shape, bool)
            occupied[mask.box] = mask.array
            layers.append((occupied, [structure]))
    return [members for _, members in layers]


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


# -- the pipeline --------------------------------------------------------------------------


class _Stages:
    """Reports (stage, done, total) for a run of several layers."""

    def __init__(self, on_progress: Progress | None, layers: int):
        self.on_progress = on_progress or (lambda stage, done, total: None)
        self.layers = layers
        self.layer = 0

    def __call__(self, stage: str, done: float, total: float) -> None:
        if self.layers > 1:
            stage = f"{stage} ({self.layer + 1}/{self.layers})"
        self.on_progress(stage, done, total)


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("surface building was cancelled")


def _mesh_layer(
    labels: np.ndarray,
    offset_zyx: tuple[int, int, int],
    grid: Grid,
    options: SurfaceOptions,
    progress: _Stages,
    cancel: threading.Event | None,
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Mesh every label of a padded (z, y, x) label array whose voxel [0, 0, 0] is grid voxel
    `offset_zyx`. Returns {label: (points LPS mm, triangles, normals)}."""
    progress("Repairing voxel topology", 0, 1)
    original = labels
    labels = labels.copy()
    changed, failed = make_well_composed(labels)
    if changed:
        log.debug("bridged diagonal voxel contacts with %d voxels", changed)
    _check(cancel)
    for value in failed:
        labels[labels == value] = 0
    meshes = _mesh_well_composed(labels, offset_zyx, grid, options, progress, cancel)
    for value in failed:  # alone, a region can always be repaired
        box = bounding_box(original == value)
        box = tuple(
            slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, original.shape, strict=True)
        )
        binary = np.pad((original[box] == value).astype(np.uint8), 1)
        make_well_composed(binary, max_rounds=1000)
        corner = tuple(o + s.start - 1 for o, s in zip(offset_zyx, box, strict=True))
        alone = _mesh_well_composed(binary, corner, grid, options, progress, cancel)
        if 1 in alone:
            meshes[value] = alone[1]
    progress.layer += 1
    return meshes


def _mesh_well_composed(labels, offset_zyx, grid, options, progress, cancel):
    spacing = np.asarray(grid.spacing_xyz)
    progress("Extracting surfaces", 0, 1)
    points, quads, pairs = _surface_nets(labels, spacing)
    _check(cancel)
    if len(quads) == 0:
        return {}
    progress("Smoothing surfaces", 0, 1)
    part = _connected_parts(quads, len(points))
    if options.smoothing_iterations:
        points = _smooth_keeping_volumes(points, quads, pairs, part, options)
    _check(cancel)
    triangles, pairs = _triangulate(points, quads, pairs)
    patches = _patches(triangles, pairs, points, options.patch_triangles)
    held = _small_parts(points, part, _HELD_EXTENT * options.decimation_tolerance_mm)
    simplified = _simplify_patches(points, triangles, patches, held, options, progress, cancel)
    # scaled index of the padded array → patient: origin + D (spacing * (index + offset))
    matrix = grid.direction
    translation = np.asarray(grid.origin_xyz) + matrix @ (spacing * np.asarray(offset_zyx[::-1], float))
    mirrored = np.linalg.det(matrix) < 0
    meshes = {}
    values = sorted({int(v) for key in patches for v in key[:2] if v})
    for done, value in enumerate(values):
        progress("Assembling surfaces", done, len(values))
        _check(cancel)
        local_points, local_triangles = _assemble(value, points, simplified)
        patient = local_points @ matrix.T + translation
        if mirrored:
            local_triangles = local_triangles[:, ::-1]
        normals = vertex_normals(patient, local_triangles) if options.normals else None
        meshes[value] = (patient, local_triangles, normals)
    progress("Assembling surfaces", len(values), len(values))
    return meshes


def _surface_nets(labels: np.ndarray, spacing: np.ndarray):
    """Unsmoothed surface nets of all labels: (points (N, 3) in scaled index mm of `labels`,
    quads (M, 4), label pairs (M, 2)); coincident points the filter duplicates are merged."""
    image = vtkImageData()
    image.SetDimensions(labels.shape[2], labels.shape[1], labels.shape[0])
    image.SetSpacing(*spacing)
    scalars = numpy_to_vtk(np.ascontiguousarray(labels).ravel(), deep=False)
    image.GetPointData().SetScalars(scalars)
    nets = vtkSurfaceNets3D()
    nets.SetInputData(image)
    nets.SmoothingOff()
    nets.SetOutputMeshTypeToQuads()
    nets.SetBackgroundLabel(0)
    values = np.flatnonzero(np.bincount(labels.ravel()))
    values = values[values != 0]
    nets.SetNumberOfLabels(len(values))
    for i, value in enumerate(values):
        nets.SetLabel(i, float(value))
    nets.Update()
    output = nets.GetOutput()
    if output.GetNumberOfCells() == 0:
        return np.zeros((0, 3)), np.zeros((0, 4), np.int64), np.zeros((0, 2), np.int64)
    points = vtk_to_numpy(output.GetPoints().GetData()).astype(np.float64)
    quads = vtk_to_numpy(output.GetPolys().GetConnectivityArray()).astype(np.int64).reshape(-1, 4)
    pairs = vtk_to_numpy(output.GetCellData().GetArray("BoundaryLabels")).astype(np.int64).reshape(-1, 2)
    # points lie on voxel corners: merge the copies surface nets makes at complex corners
    corner = np.rint(points / (spacing / 2)).astype(np.int64)
    dims = corner.max(axis=0) + 1
    key = (corner[:, 2] * dims[1] + corner[:, 1]) * dims[0] + corner[:, 0]
    unique, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return points[first], inverse[quads], pairs


def _smooth(points: np.ndarray, cells: np.ndarray, options: SurfaceOptions) -> np.ndarray:
    smoother = vtkWindowedSincPolyDataFilter()
    smoother.SetInputData(polydata_from_arrays(points, cells))
    smoother.SetNumberOfIterations(options.smoothing_iterations)
    smoother.SetPassBand(options.smoothing_pass_band)
    smoother.NormalizeCoordinatesOn()
    smoother.NonManifoldSmoothingOn()
    smoother.FeatureEdgeSmoothingOff()
    smoother.BoundarySmoothingOff()
    smoother.Update()
    return vtk_to_numpy(smoother.GetOutput().GetPoints().GetData()).astype(np.float64)


#: Smoothing may shrink one label's shells in one connected part of the mesh by at most this
#: share of their volume; beyond it (a speck of a few voxels shrinks to a point) they keep their
#: unsmoothed surface.
_MOST_SHRINKAGE = 0.1

#: Connected parts of the mesh smaller than this many times the simplification tolerance (their
#: largest extent) are not simplified: a voxel or two would collapse to a flat sliver.
_HELD_EXTENT = 8


def _connected_parts(quads: np.ndarray, n_points: int) -> np.ndarray:
    """Index (N,) of the connected part of the mesh each point belongs to."""
    from scipy import sparse
    from scipy.sparse import csgraph

    heads, tails = quads.ravel(), quads[:, [1, 2, 3, 0]].ravel()
    graph = sparse.coo_matrix((np.ones(len(heads), np.int8), (heads, tails)), shape=(n_points, n_points))
    return csgraph.connected_components(graph, directed=False)[1]


def _smooth_keeping_volumes(points, quads, pairs, part, options) -> np.ndarray:
    """Smoothed points, except for the shells of a label in one connected part of the mesh that
    smoothing shrinks by more than `_MOST_SHRINKAGE` of their volume: those keep their points."""
    smoothed = _smooth(points, quads, options)
    labels = int(pairs.max()) + 1
    keys = part[quads[:, 0]][:, None] * labels + pairs  # (M, 2): (part, label) each side
    before = _piece_volumes(points, quads, keys, labels * (int(part.max()) + 1))
    after = _piece_volumes(smoothed, quads, keys, len(before))
    shrunk = (after < (1 - _MOST_SHRINKAGE) * before) & (np.arange(len(before)) % labels != 0)
    if shrunk.any():
        keep = np.unique(quads[shrunk[keys].any(axis=1)])
        log.debug("%d shells kept unsmoothed: smoothing would shrink them", np.count_nonzero(shrunk))
        smoothed[keep] = points[keep]
    return smoothed


def _piece_volumes(points, quads, keys, n_keys: int) -> np.ndarray:
    """Volume (mm³) enclosed by the quads of each key; quads face out of their first key's
    region and into their second's."""
    # the triangles (0, 1, 2) and (0, 2, 3): p0·(p1 × p2 + p2 × p3) = p0·(p2 × (p3 − p1))
    x0, y0, z0 = points[quads[:, 0]].T
    x2, y2, z2 = points[quads[:, 2]].T
    dx, dy, dz = (points[quads[:, 3]] - points[quads[:, 1]]).T
    volume = (x0 * (y2 * dz - z2 * dy) + y0 * (z2 * dx - x2 * dz) + z0 * (x2 * dy - y2 * dx)) / 6
    return np.bincount(keys[:, 0], volume, n_keys) - np.bincount(keys[:, 1], volume, n_keys)


def _small_parts(points, part, extent_mm: float) -> np.ndarray:
    """Whether each point's connected part spans less than `extent_mm` along every axis."""
    order = np.argsort(part, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(part[order]) != 0])
    sorted_points = points[order]
    extent = np.maximum.reduceat(sorted_points, starts) - np.minimum.reduceat(sorted_points, starts)
    return extent.max(axis=1)[part] < extent_mm


def _triangulate(points: np.ndarray, quads: np.ndarray, pairs: np.ndarray):
    """Split each quad along its shorter diagonal; the triangles keep the quad's orientation."""
    d02 = np.square(points[quads[:, 0]] - points[quads[:, 2]]).sum(axis=1)
    d13 = np.square(points[quads[:, 1]] - points[quads[:, 3]]).sum(axis=1)
    swap = d13 < d02
    triangles = np.empty((2 * len(quads), 3), np.int64)
    triangles[0::2] = quads[:, :3]
    triangles[1::2] = quads[:, [0, 2, 3]]
    triangles[0::2][swap] = quads[swap][:, [0, 1, 3]]
    triangles[1::2][swap] = quads[swap][:, 1:]
    return triangles, np.repeat(pairs, 2, axis=0)


def _patches(triangles: np.ndarray, pairs: np.ndarray, points: np.ndarray, largest: int) -> dict:
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


def _simplify_patches(points, triangles, patches, held, options, progress, cancel) -> dict:
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
        _check(cancel)
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


def _assemble(value: int, points: np.ndarray, patches: dict) -> tuple[np.ndarray, np.ndarray]:
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


def _label_type(largest: int) -> type:
    return np.uint8 if largest <= np.iinfo(np.uint8).max else np.uint16


def _union_box(boxes) -> tuple[slice, slice, slice]:
    return tuple(
        slice(min(b[axis].start for b in boxes), max(b[axis].stop for b in boxes)) for axis in range(3)
    )
