"""Brush and eraser: a disk on the view's slice or a sphere in 3D, sized in mm, optionally limited
to an HU range (paint only voxels whose value lies in [min, max])."""

from __future__ import annotations

import math

import numpy as np
from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QPainter, QPen
from PyQt6.QtWidgets import QCheckBox, QDoubleSpinBox, QFormLayout, QWidget

from workstation.app.tools.base import ValueRangeTool, add_value_limit_rows, paint_not_allowed


def ball(grid_spacing_zyx, centre_zyx, radius_mm: float, shape_zyx, flat_axis: int | None):
    """Box and bool values of the voxels whose centres lie within `radius_mm` of `centre_zyx`.

    `flat_axis` keeps the ball to one plane (a 2D disk on the slice through the centre).
    Returns None when the ball misses the grid.
    """
    spacing = np.asarray(grid_spacing_zyx, float)
    centre = np.asarray(centre_zyx, float)
    reach = radius_mm / spacing
    low = np.floor(centre - reach).astype(int)
    high = np.ceil(centre + reach).astype(int) + 1
    if flat_axis is not None:
        low[flat_axis] = int(round(centre[flat_axis]))
        high[flat_axis] = low[flat_axis] + 1
    low = np.maximum(low, 0)
    high = np.minimum(high, shape_zyx)
    if np.any(high <= low):
        return None
    axes = [(np.arange(a, b) - c) * s for a, b, c, s in zip(low, high, centre, spacing, strict=True)]
    if flat_axis is not None:
        axes[flat_axis] = np.zeros(1)
    distance2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
    inside = distance2 <= radius_mm**2
    if not inside.any():  # smaller than a voxel: take the voxel under the centre
        inside[tuple(np.clip(np.rint(centre).astype(int) - low, 0, np.asarray(inside.shape) - 1))] = True
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True)), inside


#: Structures whose stored box holds more voxels than this (a body outline on a large CT) are
#: painted in one edit when the stroke ends: editing such a mask costs ~0.1 s, too slow per dab.
#: Meanwhile the stroke's footprint is drawn as a preview.
LIVE_EDIT_VOXELS = 4_000_000


class BrushTool(ValueRangeTool):
    key = "brush"
    title = "Brush"
    shortcut = "B"
    tip = "Paint the selected structure (Ctrl: erase; [ and ]: size)"
    erase = False
    defaults = {"radius_mm": 5.0, "sphere": False, "hu_limit": False, "hu_min": -200, "hu_max": 300}
    keys = frozenset({Qt.Key.Key_BracketLeft, Qt.Key.Key_BracketRight})

    def __init__(self, context):
        super().__init__(context)
        self._stroke = None
        self._last: np.ndarray | None = None
        self._erasing = self.erase
        self._deferred: list | None = None  # (box, inside, centre, flat) dabs of a deferred stroke
        self._target: str | None = None
        self._hover_modifiers = Qt.KeyboardModifier.NoModifier  # Ctrl swaps paint and erase

    # -- painting ------------------------------------------------------------------------------

    def press(self, view, event) -> bool:
        name = self.target()
        if name is None or not view.inside(event.zyx):
            return False
        self._erasing = self.erase != bool(event.modifiers & Qt.KeyboardModifier.ControlModifier)
        self._target = name
        large = self.case().structures[name].mask.array.size > LIVE_EDIT_VOXELS
        self._deferred = [] if large else None
        label = f"{'Erase' if self._erasing else 'Paint'} {name}"
        self._stroke = self.case().stroke(label, name)
        self._last = None
        self._dab(view, event.zyx)
        return True

    def move(self, view, event) -> None:
        self.pointer = (view, event.pos)
        if self._stroke is not None:
            self._dab(view, event.zyx)
        view.update()

    def release(self, view, event) -> None:
        self._finish()

    def deactivate(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if self._deferred:
            self._commit_deferred()
        if self._stroke is not None:
            self._stroke.finish()
        self._stroke, self._last, self._deferred = None, None, None
        for view in self.context.views():
            view.update()

    def _commit_deferred(self) -> None:
        """Apply a deferred stroke's dabs as one edit of their union box."""
        union = tuple(
            slice(min(d[0][a].start for d in self._deferred), max(d[0][a].stop for d in self._deferred))
            for a in range(3)
        )
        values = self.case().structures[self._target].mask.region(union)
        for box, inside, _, _ in self._deferred:
            local = tuple(slice(b.start - u.start, b.stop - u.start) for b, u in zip(box, union, strict=True))
            if self._erasing:
                values[local] &= ~inside
            else:
                values[local] |= inside
        self._stroke.apply(union, values)

    def _dab(self, view, zyx: np.ndarray) -> None:
        case = self.case()
        radius = float(self.setting("radius_mm"))
        spacing = np.asarray(case.grid.spacing_zyx)
        centre = np.asarray(zyx, float)
        flat = None if self.setting("sphere") else view.orientation.normal_axis
        if flat is not None:
            centre[flat] = view.slice_index
        # Fill the gap since the last dab so fast drags leave no holes.
        if self._last is None:
            centres = [centre]
        else:
            distance = float(np.linalg.norm((centre - self._last) * spacing))
            steps = max(1, math.ceil(distance / max(radius * 0.5, 0.5 * spacing.min())))
            centres = [self._last + (centre - self._last) * (i / steps) for i in range(1, steps + 1)]
        self._last = centre
        for point in centres:
            self._apply(case, point, radius, flat)

    def _apply(self, case, centre, radius: float, flat) -> None:
        found = ball(case.grid.spacing_zyx, centre, radius, case.grid.shape, flat)
        if found is None:
            return
        box, inside = found
        if self.setting("hu_limit"):
            values = case.volume.array[box]
            inside &= (values >= self.setting("hu_min")) & (values <= self.setting("hu_max"))
        if self._deferred is not None:
            self._deferred.append((box, inside, np.asarray(centre, float), flat))
            return
        current = case.structures[self._stroke.name].mask.region(box)
        updated = (current & ~inside) if self._erasing else (current | inside)
        self._stroke.apply(box, updated)

    # -- preview and keys ----------------------------------------------------------------------

    def hover(self, view, event) -> None:
        self.pointer = (view, event.pos)
        self._hover_modifiers = event.modifiers
        view.update()

    def _would_erase(self) -> bool:
        """What the stroke under way does, or what a press would do now (Ctrl swaps)."""
        if self._stroke is not None:
            return self._erasing
        return self.erase != bool(self._hover_modifiers & Qt.KeyboardModifier.ControlModifier)

    def key_pressed(self, view, key: int) -> bool:
        radius = float(self.setting("radius_mm"))
        if key == Qt.Key.Key_BracketRight:
            self.set_setting("radius_mm", min(radius * 1.25, 100.0))
        elif key == Qt.Key.Key_BracketLeft:
            self.set_setting("radius_mm", max(radius / 1.25, 0.5))
        else:
            return False
        view.update()
        return True

    def paint(self, view, painter: QPainter) -> None:
        if self._deferred:
            self._paint_deferred(view, painter)
        if self.pointer is None or self.pointer[0] is not view:
            return
        radius_px = float(self.setting("radius_mm")) * view.px_per_mm()
        centre = self.pointer[1]
        if self.over_locked():  # the outline struck through
            paint_not_allowed(painter, centre, radius_px, dashed=self.setting("sphere"))
            return
        pen = QPen(QColor(255, 90, 90) if self._would_erase() else QColor(120, 255, 120), 1.2)
        if self.setting("sphere"):
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(
            QRectF(centre.x() - radius_px, centre.y() - radius_px, 2 * radius_px, 2 * radius_px)
        )

    def _paint_deferred(self, view, painter: QPainter) -> None:
        """The footprint of a deferred stroke on this view's slice (disks, or sphere sections)."""
        radius = float(self.setting("radius_mm"))
        normal, index = view.orientation.normal_axis, view.slice_index
        step_mm = view.orientation.slice_mm
        colour = QColor(255, 90, 90, 110) if self._erasing else QColor(120, 255, 120, 110)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        px_per_mm = view.px_per_mm()
        for _, _, centre, flat in self._deferred:
            offset_mm = abs(centre[normal] - index) * step_mm
            if (flat is not None and flat != normal) or offset_mm > radius:
                continue
            if flat == normal and round(centre[normal]) != index:
                continue
            section = math.sqrt(max(radius**2 - offset_mm**2, 0.0)) * px_per_mm
            point = view.voxel_to_widget(centre)
            painter.drawEllipse(point, section, section)
        painter.setBrush(Qt.BrushStyle.NoBrush)

    def options(self, parent) -> QWidget:
        widget = QWidget(parent)
        form = QFormLayout(widget)
        size = QDoubleSpinBox(widget)
        size.setRange(0.5, 100.0)
        size.setSingleStep(0.5)
        size.setSuffix(" mm")
        self.bind("radius_mm", size)
        form.addRow("Radius ([ and ] keys)", size)
        sphere = QCheckBox("3D sphere (all slices within the radius)", widget)
        self.bind("sphere", sphere)
        form.addRow(sphere)
        add_value_limit_rows(self, widget, form, "Only voxels")
        widget.radius_box = size  # for tests
        return widget


class EraserTool(BrushTool):
    key = "eraser"
    title = "Eraser"
    shortcut = "E"
    tip = "Erase from the selected structure (Ctrl: paint; [ and ]: size)"
    erase = True
