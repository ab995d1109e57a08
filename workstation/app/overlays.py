"""Structure overlays for the 2D views: a translucent fill image plus an exact voxel-edge outline.

Each overlay is built from the structure's cropped mask on one slice only (never a full-size
array), and cached per (structure, slice). An edit invalidates just the slices inside its
bounding box. The outline follows voxel edges (what you paint is what you see) and is drawn as
vector lines with a cosmetic pen, so it stays one crisp line at any zoom.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PyQt6 import sip
from PyQt6.QtCore import QLineF
from PyQt6.QtGui import QImage

from planning.structures import Structure
from workstation.app.slicing import Orientation

#: Opacity of the fill (the outline is opaque); outlines only for these RT ROI types.
FILL_ALPHA = 0.25
OUTLINE_ONLY_TYPES = frozenset({"EXTERNAL", "SUPPORT", "FIXATION", "BOLUS"})


@dataclass
class Overlay:
    """One structure on one slice, in display pixel units (column = x, row = y).

    Attributes:
        image: premultiplied ARGB fill of the mask's box on this slice (None: outline only).
        row0, col0: display position of the image's top-left pixel.
        lines: outline segments (sip.array of QLineF for QPainter.drawLines), display coordinates.
    """

    image: QImage | None
    row0: int
    col0: int
    lines: object
    buffer: np.ndarray | None  # keeps the QImage's pixels alive


def lines_from_array(segments: np.ndarray):
    """A sip.array of QLineF from (2n, 2) (x, y) point pairs, filled through its buffer: what
    QPainter.drawLines takes without converting point by point."""
    count = len(segments) // 2
    lines = sip.array(QLineF, count)
    if count:
        buffer = sip.voidptr(lines, count * 32)
        np.frombuffer(buffer, np.float64)[:] = segments.ravel()
    return lines


def outline_segments(plane: np.ndarray) -> np.ndarray:
    """Voxel-edge boundary of a 2D bool mask as (2n, 2) (x, y) point pairs, runs merged.

    Pixel (r, c) covers x ∈ [c, c+1), y ∈ [r, r+1).
    """
    height, width = plane.shape
    padded = np.zeros((height + 2, width + 2), bool)
    padded[1:-1, 1:-1] = plane
    # Horizontal edges at y = r lie between plane rows r-1 and r (padded rows r and r+1).
    horizontal = padded[1:, 1:-1] != padded[:-1, 1:-1]
    vertical = padded[1:-1, 1:] != padded[1:-1, :-1]
    return np.concatenate([_runs(horizontal, transpose=False), _runs(vertical.T, transpose=True)])


def _runs(edges: np.ndarray, transpose: bool) -> np.ndarray:
    """Merge runs of True along axis 1 of `edges` into segments (2n, 2) in (x, y) order."""
    rows, length = edges.shape
    flags = np.zeros((rows, length + 2), bool)
    flags[:, 1:-1] = edges
    changes = np.flatnonzero(flags[:, 1:] != flags[:, :-1])
    # In row-major order every run's start is followed by its stop, in the same row.
    row, position = np.divmod(changes, length + 1)
    segments = np.empty((len(changes), 2), np.float64)
    if transpose:  # rows of `edges` are x positions, its columns run along y
        segments[:, 0], segments[:, 1] = row, position
    else:
        segments[:, 0], segments[:, 1] = position, row
    return segments


def build_overlay(
    plane: np.ndarray, row0: int, col0: int, color: tuple[int, int, int], alpha: float = FILL_ALPHA
) -> Overlay:
    """The fill image and outline of a bool plane placed at display (row0, col0)."""
    image, pixels = None, None
    if alpha > 0:
        r, g, b = color
        fill = (int(255 * alpha) << 24) | (int(r * alpha) << 16) | (int(g * alpha) << 8) | int(b * alpha)
        pixels = np.where(plane, np.uint32(fill), np.uint32(0))
        height, width = pixels.shape
        image = QImage(pixels.data, width, height, 4 * width, QImage.Format.Format_ARGB32_Premultiplied)
    segments = outline_segments(plane)
    segments[:, 0] += col0
    segments[:, 1] += row0
    return Overlay(image, row0, col0, lines_from_array(segments), pixels)


class OverlayCache:
    """Overlays of one view, per (structure, slice), least recently used dropped first."""

    def __init__(self, orientation: Orientation, capacity: int = 6000):
        self.orientation = orientation
        self.capacity = capacity
        self._items: OrderedDict[tuple[int, int], Overlay | None] = OrderedDict()

    def get(self, structure: Structure, index: int) -> Overlay | None:
        key = (id(structure), index)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        region = self.orientation.mask_region(structure.mask, index)
        overlay = None
        if region is not None and region[0].any():
            alpha = 0.0 if structure.roi_type.value in OUTLINE_ONLY_TYPES else FILL_ALPHA
            overlay = build_overlay(region[0], region[1], region[2], structure.color, alpha)
        self._items[key] = overlay
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return overlay

    def invalidate(self, structure: Structure, first: int | None = None, stop: int | None = None) -> None:
        """Forget a structure's overlays on slices [first, stop) (all slices when None)."""
        ident = id(structure)
        for key in [k for k in self._items if k[0] == ident]:
            if first is None or first <= key[1] < stop:
                del self._items[key]

    def clear(self) -> None:
        self._items.clear()
