"""Between surfaces and voxels: the exact boundary of a set of voxels as a surface, and the voxels
of a grid whose centres lie inside a closed surface.

Masks are (z, y, x) bool arrays on a `planning.geometry.Grid`; surfaces are in patient mm (LPS).
"""

from __future__ import annotations

import numpy as np
from vtkmodules.util.numpy_support import vtk_to_numpy

from planning.geometry import Grid
from planning.surfaces.mesh import Surface, polydata_from_arrays


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
