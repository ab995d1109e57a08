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
from PyQt6.QtCore import QPointF
from PyQt6.QtGui import QImage, QPolygonF

from planning.structures import Structure
from workstation.app.slicing import Orientation

#: Opacity of the fill (the outline is opaque); outlines only for these RT ROI types.
FILL_ALPHA = 0.25
OUTLINE_ONLY_TYPES = frozenset({"EXTERNAL", "SUPPORT", "FIXATION", "BOLUS"})


@dataclass
class Overlay:
    """One structure on one slice, in display pixel units (column = x, row = y).

    Attributes:
        image: premultiplied ARGB fill of the mask's box on this slice.
        row0, col0: display position of the image's top-left pixel.
        lines: outline as point pairs (QPolygonF for QPainter.drawLines), display coordinates.
    """

    image: QImage
    row0: int
    col0: int
    lines: QPolygonF
    buffer: np.ndarray  # keeps the QImage's pixels alive


def polygon_from_array(points: np.ndarray) -> QPolygonF:
    """A QPolygonF holding (n, 2) float (x, y) points, filled through its buffer (no Python loop)."""
    polygon = QPolygonF()
    polygon.fill(QPointF(), len(points))
    if len(points):
        buffer = polygon.data()
        buffer.setsize(len(points) * 16)
        np.frombuffer(buffer, np.float64).reshape(-1, 2)[:] = points
    return polygon


def outline_segments(plane: np.ndarray) -> np.ndarray:
    """Voxel-edge boundary of a 2D bool mask as (2n, 2) (x, y) point pairs, runs merged.

    Pixel (r, c) covers x ∈ [c, c+1), y ∈ [r, r+1).
    """
    padded = np.pad(plane, 1)
    pieces = []
    # Horizontal edges at y = r between padded rows r and r+1, i.e. between plane rows r-1 and r.
    horizontal = padded[1:, 1:-1] != padded[:-1, 1:-1]
    pieces.append(_runs(horizontal, transpose=False))
    vertical = padded[1:-1, 1:] != padded[1:-1, :-1]
    pieces.append(_runs(vertical.T, transpose=True))
    return np.concatenate(pieces) if pieces else np.zeros((0, 2))


def _runs(edges: np.ndarray, transpose: bool) -> np.ndarray:
    """Merge runs of True along axis 1 of `edges` into segments (2n, 2) in (x, y) order."""
    flags = np.zeros((edges.shape[0], edges.shape[1] + 2), np.int8)
    flags[:, 1:-1] = edges
    steps = np.diff(flags, axis=1)
    start_rows, starts = np.nonzero(steps == 1)
    _, stops = np.nonzero(steps == -1)
    count = len(starts)
    segments = np.empty((2 * count, 2), np.float64)
    if transpose:  # rows of `edges` are x positions, its columns run along y
        segments[0::2, 0] = start_rows
        segments[1::2, 0] = start_rows
        segments[0::2, 1] = starts
        segments[1::2, 1] = stops
    else:
        segments[0::2, 1] = start_rows
        segments[1::2, 1] = start_rows
        segments[0::2, 0] = starts
        segments[1::2, 0] = stops
    return segments


def build_overlay(
    plane: np.ndarray, row0: int, col0: int, color: tuple[int, int, int], alpha: float = FILL_ALPHA
) -> Overlay:
    """The fill image and outline of a bool plane placed at display (row0, col0)."""
    r, g, b = color
    a = alpha
    fill = (int(255 * a) << 24) | (int(r * a) << 16) | (int(g * a) << 8) | int(b * a)
    pixels = np.where(plane, np.uint32(fill), np.uint32(0)).astype(np.uint32)
    height, width = pixels.shape
    image = QImage(pixels.data, width, height, 4 * width, QImage.Format.Format_ARGB32_Premultiplied)
    segments = outline_segments(plane)
    segments[:, 0] += col0
    segments[:, 1] += row0
    return Overlay(image, row0, col0, polygon_from_array(segments), pixels)


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
