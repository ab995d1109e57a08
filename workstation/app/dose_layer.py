"""Dose shown in the 2D views: an RTDOSE sampled on each displayed slice, as a colour wash.

The dose grid is usually coarser than the CT and placed differently; each displayed pixel takes
the trilinear dose at its voxel centre (`planning.dose.Dose.sample`), computed once per slice and
cached. Colours run from blue (low) to red (high) in steps of 10 % of the maximum dose; doses
below `threshold` of the maximum are not drawn.
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


def level_colors() -> list[tuple[int, int, int]]:
    return [tuple(int(c) for c in row) for row in _STOPS]


class DoseLayer:
    """A dose distribution prepared for drawing over the slices of an image grid."""

    def __init__(self, dose, image_grid, *, threshold: float = 0.1, capacity: int = 256):
        self.dose, self.image_grid = dose, image_grid
        self.threshold = threshold
        self.maximum = max(dose.max, 1e-9)
        self._planes: OrderedDict[tuple[str, int], tuple[QImage, np.ndarray]] = OrderedDict()
        self._capacity = capacity

    def values(self, orientation: Orientation, index: int) -> np.ndarray:
        """Dose (in its units) at every display pixel of slice `index`, shape (rows, columns)."""
        rows, cols = orientation.shape[1:]
        r, c = np.meshgrid(np.arange(rows, dtype=float), np.arange(cols, dtype=float), indexing="ij")
        zyx = np.empty((rows * cols, 3))
        zyx[:, orientation.normal_axis] = index
        zyx[:, orientation.row_axis] = (rows - 1 - r if orientation.flip_rows else r).ravel()
        zyx[:, orientation.col_axis] = (cols - 1 - c if orientation.flip_cols else c).ravel()
        patient = self.image_grid.index_to_patient(zyx[:, ::-1])
        dose, _ = self.dose.sample(self.dose.grid.patient_to_index(patient))
        return dose.reshape(rows, cols)

    def image(self, orientation: Orientation, index: int) -> QImage:
        """The colour wash of slice `index` (premultiplied ARGB, one pixel per display pixel)."""
        key = (orientation.view, index)
        if key in self._planes:
            self._planes.move_to_end(key)
            return self._planes[key][0]
        fraction = self.values(orientation, index) / self.maximum
        level = np.clip((fraction * 10).astype(int) - 1, 0, 9)
        colours = _STOPS[level] * WASH_ALPHA
        shown = fraction >= self.threshold
        pixels = np.zeros(fraction.shape, np.uint32)
        alpha = int(255 * WASH_ALPHA)
        packed = (
            (alpha << 24)
            | (colours[..., 0].astype(np.uint32) << 16)
            | (colours[..., 1].astype(np.uint32) << 8)
            | colours[..., 2].astype(np.uint32)
        )
        pixels[shown] = packed[shown]
        height, width = pixels.shape
        image = QImage(pixels.data, width, height, 4 * width, QImage.Format.Format_ARGB32_Premultiplied)
        self._planes[key] = (image, pixels)
        if len(self._planes) > self._capacity:
            self._planes.popitem(last=False)
        return image
