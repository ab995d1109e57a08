"""Steps 2 and 3 of building surfaces (see `planning.surfaces.build`): the quad mesh of a label map.

`vtkSurfaceNets3D` gives one vertex per voxel corner on a boundary and quads that know the two
labels they separate; windowed-sinc smoothing moves the points, except for shells it would shrink;
each quad is then split into two triangles. Arrays are (z, y, x) label maps; points come out as
(N, 3) (x, y, z) in the label map's scaled index space (index × spacing, mm, no origin or
direction applied).
"""

from __future__ import annotations

import logging

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkFiltersCore import vtkSurfaceNets3D, vtkWindowedSincPolyDataFilter

from planning.surfaces.mesh import polydata_from_arrays
from planning.surfaces.options import SurfaceOptions

log = logging.getLogger(__name__)


def surface_nets(labels: np.ndarray, spacing: np.ndarray):
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


def connected_parts(quads: np.ndarray, n_points: int) -> np.ndarray:
    """Index (N,) of the connected part of the mesh each point belongs to."""
    from scipy import sparse
    from scipy.sparse import csgraph

    heads, tails = quads.ravel(), quads[:, [1, 2, 3, 0]].ravel()
    graph = sparse.coo_matrix((np.ones(len(heads), np.int8), (heads, tails)), shape=(n_points, n_points))
    return csgraph.connected_components(graph, directed=False)[1]


def smooth_keeping_volumes(points, quads, pairs, part, options) -> np.ndarray:
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


def triangulate(points: np.ndarray, quads: np.ndarray, pairs: np.ndarray):
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
