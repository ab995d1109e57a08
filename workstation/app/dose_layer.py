"""Dose shown in the 2D views: an RTDOSE sampled on each displayed slice, as a colour wash.

The dose grid is usually coarser than the CT and placed differently; each displayed pixel takes
the trilinear dose at its voxel centre (as `planning.dose.Dose.sample`), computed once per slice
and cached. When the two grids' axes are parallel (the usual case: both axial) the interpolation
is done axis by axis, a few milliseconds per slice; otherwise point by point. Colours run from
blue (low) to red (high) in steps of 10 % of the maximum dose; doses below `threshold` of the
maximum are not drawn.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PyQt6.QtGui import QImage

from workstation.app.slicing import Orientation

#: Ten colours from 10 % to 100 % of the maximum dose (blue → cyan → green → yellow → red).
_STOPS = np.array(
    [
        [0, 0, 255],
        [0, 110, 255],
        [0, 200, 255],
        [0, 230, 160],
        [0, 220, 0],
        [150, 230, 0],
        [255, 230, 0],
        [255, 160, 0],
        [255, 80, 0],
        [255, 0, 0],
    ],
    float,
)
WASH_ALPHA = 0.35


def _premultiplied_stops() -> np.ndarray:
    """The ten colours as premultiplied ARGB32 pixels of opacity WASH_ALPHA (uint32)."""
    red, green, blue = (_STOPS * WASH_ALPHA).astype(np.uint32).T
    return (np.uint32(int(255 * WASH_ALPHA)) << 24) | (red << 16) | (green << 8) | blue


_PACKED_STOPS = _premultiplied_stops()


class DoseLayer:
    """A dose distribution prepared for drawing over the slices of an image grid."""

    def __init__(self, dose, image_grid, *, threshold: float = 0.1, capacity: int = 256):
        self.dose, self.image_grid = dose, image_grid
        self.threshold = threshold
        self.maximum = max(dose.max, 1e-9)
        self._planes: OrderedDict[tuple[str, int], tuple[QImage, np.ndarray]] = OrderedDict()
        self._capacity = capacity
        self._axis_maps = _axis_maps(image_grid, dose.grid)

    def values(self, orientation: Orientation, index: int) -> np.ndarray:
        """Dose (in its units) at every display pixel of slice `index`, shape (rows, columns)."""
        if self._axis_maps is not None:
            return self._values_by_axis(orientation, index)
        rows, cols = orientation.shape[1:]
        r, c = np.meshgrid(np.arange(rows, dtype=float), np.arange(cols, dtype=float), indexing="ij")
        zyx = np.empty((rows * cols, 3))
        zyx[:, orientation.normal_axis] = index
        zyx[:, orientation.row_axis] = (rows - 1 - r if orientation.flip_rows else r).ravel()
        zyx[:, orientation.col_axis] = (cols - 1 - c if orientation.flip_cols else c).ravel()
        patient = self.image_grid.index_to_patient(zyx[:, ::-1])
        dose, _ = self.dose.sample(self.dose.grid.patient_to_index(patient))
        return dose.reshape(rows, cols)

    def _values_by_axis(self, orientation: Orientation, index: int) -> np.ndarray:
        """`values` for grids with parallel axes: image index → dose index is a scale and offset
        per array axis, so the dose is interpolated along one axis after the other, across the
        slice first (which leaves one dose plane), then along the view's rows and columns."""
        rows, cols = orientation.shape[1:]
        r, c = np.arange(rows, dtype=float), np.arange(cols, dtype=float)
        image_index = {
            orientation.normal_axis: np.array([float(index)]),
            orientation.row_axis: rows - 1 - r if orientation.flip_rows else r,
            orientation.col_axis: cols - 1 - c if orientation.flip_cols else c,
        }
        values, inside = self.dose.array, np.ones((1, 1, 1), bool)
        for axis in (orientation.normal_axis, orientation.row_axis, orientation.col_axis):
            values, inside_axis = _interpolate_along(values, axis, *self._axis_maps[axis], image_index[axis])
            inside = inside & inside_axis
        values = np.where(inside, values, 0.0)
        plane = np.squeeze(values, axis=orientation.normal_axis)
        return plane if orientation.row_axis < orientation.col_axis else plane.T

    def image(self, orientation: Orientation, index: int) -> QImage:
        """The colour wash of slice `index` (premultiplied ARGB, one pixel per display pixel)."""
        key = (orientation.view, index)
        if key in self._planes:
            self._planes.move_to_end(key)
            return self._planes[key][0]
        fraction = self.values(orientation, index) / self.maximum
        level = np.clip((fraction * 10).astype(int) - 1, 0, 9)
        # C order whatever the plane's (a transposed one is Fortran-ordered): QImage reads rows
        pixels = np.ascontiguousarray(
            np.where(fraction >= self.threshold, _PACKED_STOPS[level], np.uint32(0))
        )
        height, width = pixels.shape
        image = QImage(pixels.data, width, height, 4 * width, QImage.Format.Format_ARGB32_Premultiplied)
        self._planes[key] = (image, pixels)
        if len(self._planes) > self._capacity:
            self._planes.popitem(last=False)
        return image


def _interpolate_along(
    values: np.ndarray, axis: int, scale: float, offset: float, image_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of the (z, y, x) array `values` along `axis` at the dose indices
    scale · image_index + offset, in float64; and whether each of those lies within the dose
    (half a voxel past its outer centres at most). Both shaped to broadcast along `axis`."""
    t = scale * image_index + offset
    n = values.shape[axis]
    low = np.floor(t).astype(int)
    shape = [-1 if a == axis else 1 for a in range(3)]
    weight = (t - low).reshape(shape)
    below = np.take(values, np.clip(low, 0, n - 1), axis=axis).astype(np.float64, copy=False)
    above = np.take(values, np.clip(low + 1, 0, n - 1), axis=axis).astype(np.float64, copy=False)
    inside = ((t >= -0.5) & (t <= n - 0.5)).reshape(shape)
    return below + weight * (above - below), inside


def _axis_maps(image_grid, dose_grid) -> list[tuple[float, float]] | None:
    """Per array axis (z, y, x): (scale, offset) taking an image index to a dose index, when each
    image axis runs along one dose axis (the same array axis); None otherwise."""
    linear = np.linalg.inv(dose_grid.affine) @ image_grid.affine  # (x, y, z, 1) → (x, y, z, 1)
    matrix = linear[:3, :3]
    if np.abs(matrix - np.diag(np.diag(matrix))).max() > 1e-6 * np.abs(matrix).max():
        return None
    return [(float(matrix[k, k]), float(linear[k, 3])) for k in (2, 1, 0)]
