"""Reorienting arrays to the orientation a network was trained on, and back.

A volume's grid says, through its direction matrix, toward which patient direction each array
index grows. A model declares the orientation it expects as three letters for its x, y, z
indices ("LPS": x toward the patient's left, y posterior, z superior — DICOM CT as loaded; "RAS"
for NIfTI data made canonical). Oblique grids take the nearest patient axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planning.errors import GeometryError
from planning.geometry import Grid
from segmentation.engine.manifest import orientation_axes


@dataclass(frozen=True)
class Reorientation:
    """How to turn a (z, y, x) array of a grid into the model's (z, y, x) array.

    Attributes:
        order: model array axis k takes volume array axis order[k] (both in (z, y, x) order).
        flip: whether model array axis k runs against that volume axis.
    """

    order: tuple[int, int, int]
    flip: tuple[bool, bool, bool]

    @classmethod
    def between(cls, direction: np.ndarray, letters: str | None) -> Reorientation:
        """From a grid's direction matrix to the orientation `letters` (None: keep as is)."""
        if letters is None:
            return cls((0, 1, 2), (False, False, False))
        direction = np.asarray(direction, dtype=float)
        # For each volume index axis (x, y, z), the LPS axis it is closest to and the sign.
        nearest = np.argmax(np.abs(direction), axis=0)
        if sorted(nearest.tolist()) != [0, 1, 2]:
            raise GeometryError(f"cannot match the image axes to patient axes: {direction.tolist()}")
        sign = np.sign(direction[nearest, np.arange(3)])
        order, flip = [], []
        for lps_axis, lps_sign in reversed(orientation_axes(letters)):  # model z, y, x
            volume_xyz = int(np.flatnonzero(nearest == lps_axis)[0])
            order.append(2 - volume_xyz)
            flip.append(bool(sign[volume_xyz] != lps_sign))
        return cls(tuple(order), tuple(flip))

    @property
    def is_identity(self) -> bool:
        """Whether the model's axes are the volume's own (no transpose, no flip)."""
        return self.order == (0, 1, 2) and not any(self.flip)

    def spacing(self, spacing_zyx) -> tuple[float, float, float]:
        """The volume's voxel size in the model's axis order."""
        return tuple(float(spacing_zyx[axis]) for axis in self.order)

    def forward(self, tensor):
        """Volume array (…, z, y, x) → model array (torch tensor; a view when possible)."""
        lead = tensor.ndim - 3
        tensor = tensor.permute(*range(lead), *(lead + a for a in self.order))
        dims = [lead + k for k in range(3) if self.flip[k]]
        return tensor.flip(dims) if dims else tensor

    def forward_array(self, array: np.ndarray) -> np.ndarray:
        """Volume array (z, y, x) → model array, as `forward` for numpy: one contiguous copy, or
        `array` itself when nothing changes."""
        if self.is_identity:
            return array
        flips = tuple(slice(None, None, -1) if flip else slice(None) for flip in self.flip)
        return np.ascontiguousarray(np.transpose(array, self.order)[flips])

    def grid_of(self, grid: Grid) -> Grid:
        """The grid of the model array of `grid`'s: the same voxels at the same patient positions."""
        shape = tuple(grid.shape[axis] for axis in self.order)
        # The volume index (z, y, x) of the model array's voxel [0, 0, 0].
        first = [0, 0, 0]
        for axis, flip in zip(self.order, self.flip, strict=True):
            first[axis] = grid.shape[axis] - 1 if flip else 0
        # Column j (index axis x, y, z) of the direction: model zyx axis 2 - j follows volume zyx
        # axis order[2 - j], which is volume index axis 2 - order[2 - j].
        columns = [
            grid.direction[:, 2 - self.order[2 - j]] * (-1.0 if self.flip[2 - j] else 1.0) for j in range(3)
        ]
        origin = grid.index_to_patient(np.asarray(first[::-1], dtype=float))
        return Grid(shape, self.spacing(grid.spacing_zyx)[::-1], tuple(origin), np.column_stack(columns))

    def backward(self, array: np.ndarray) -> np.ndarray:
        """Model array (…, z, y, x) → volume array order (numpy; flips undone, axes restored)."""
        lead = array.ndim - 3
        dims = [lead + k for k in range(3) if self.flip[k]]
        if dims:
            array = np.flip(array, axis=dims)
        inverse = np.argsort(self.order)
        return np.transpose(array, (*range(lead), *(lead + int(a) for a in inverse)))
