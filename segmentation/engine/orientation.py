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

    def backward(self, array: np.ndarray) -> np.ndarray:
        """Model array (…, z, y, x) → volume array order (numpy; flips undone, axes restored)."""
        lead = array.ndim - 3
        dims = [lead + k for k in range(3) if self.flip[k]]
        if dims:
            array = np.flip(array, axis=dims)
        inverse = np.argsort(self.order)
        return np.transpose(array, (*range(lead), *(lead + int(a) for a in inverse)))
