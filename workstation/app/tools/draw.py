"""Freehand and polygon drawing on the view's slice.

Drag to draw a freehand outline (closed on release); click to place polygon vertices and close
with a double-click, a click on the first vertex or Enter; Esc cancels. The inside (voxel centres
within the polygon; one on the outline counts on its left and upper sides only, as for an RTSTRUCT
contour) is added to the selected structure, or removed with Ctrl held or in "subtract" mode.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, Qt
from PyQt6.QtGui import QColor, QPainter, QPen, QPolygonF
from PyQt6.QtWidgets import QCheckBox, QFormLayout, QWidget

from planning.rtstruct.contours import Loops, rasterize
from workstation.app.tools.base import Tool

#: Pointer travel (widget px) below which a press-release is a click (a polygon vertex).
CLICK_PX = 4.0
CLOSE_PX = 8.0


class DrawTool(Tool):
    key = "draw"
    title = "Draw"
    shortcut = "D"
    tip = "Freehand (drag) or polygon (click vertices, double-click to close); Ctrl subtracts"
    defaults = {"subtract": False}
    keys = frozenset({Qt.Key.Key_Escape, Qt.Key.Key_Return, Qt.Key.Key_Enter})

    def __init__(self, context):
        super().__init__(context)
        self._view = None
        self._points: list[tuple[float, float]] = []  # display (col, row), pixel centres integral
        self._index = 0
        self._dragging = False
        self._press_pos: QPointF | None = None
        self._travel = 0.0  # the farthest the pointer went from the press (widget px)
        self._pointer: QPointF | None = None
        self._subtract = False

    def press(self, view, event) -> bool:
        if self.target() is None:
            return False
        if self._view is not view or self._index != event.index:
            self._reset()
        self._view, self._index = view, event.index
        self._subtract = self.setting("subtract") != bool(
            event.modifiers & Qt.KeyboardModifier.ControlModifier
        )
        if self._points and _distance(view, self._points[0], event.pos) < CLOSE_PX and len(self._points) >= 3:
            self._close()
            return False
        self._press_pos, self._travel = event.pos, 0.0
        self._points.append((event.col, event.row))
        self._dragging = True
        view.update()
        return True

    def move(self, view, event) -> None:
        self._pointer = event.pos
        if self._dragging:
            self._points.append((event.col, event.row))
            if self._press_pos is not None:
                self._travel = max(self._travel, (event.pos - self._press_pos).manhattanLength())
        view.update()

    def release(self, view, event) -> None:
        self._dragging = False
        # A freehand outline is closed by coming back to where it started: what tells a drag from
        # a click is how far the pointer went, not where it was released.
        if self._press_pos is not None:
            self._travel = max(self._travel, (event.pos - self._press_pos).manhattanLength())
        if self._travel > CLICK_PX and len(self._points) >= 3:
            self._close()

    def hover(self, view, event) -> None:
        super().hover(view, event)
        self._pointer = event.pos
        if self._points:
            view.update()

    def double_click(self, view, event) -> None:
        if len(self._points) >= 3:
            self._close()

    def key_pressed(self, view, key: int) -> bool:
        if key == Qt.Key.Key_Escape and self._points:
            self._reset()
            return True
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and len(self._points) >= 3:
            self._close()
            return True
        return False

    def deactivate(self) -> None:
        self._reset()

    def _reset(self) -> None:
        view = self._view
        self._points, self._view, self._dragging = [], None, False
        if view is not None:
            view.update()

    def _close(self) -> None:
        view, points, index = self._view, np.asarray(self._points, float), self._index
        name = self.target()
        self._reset()
        if name is None or view is None or len(points) < 3:
            return
        orientation = view.orientation
        # as an RTSTRUCT contour: pixels whose centres lie inside, those on the outline once
        filled, (_, row0, col0) = rasterize(Loops.from_list([points], [0]), (1, *orientation.shape[1:]))
        if not filled.any():
            return
        box, inside = orientation.plane_to_box(index, row0, col0, filled[0])
        case = self.case()
        current = case.structures[name].mask.region(box)
        values = (current & ~inside) if self._subtract else (current | inside)
        verb = "Cut" if self._subtract else "Draw"
        case.edit_region(f"{verb} {name}", name, box, values)

    def paint(self, view, painter: QPainter) -> None:
        super().paint(view, painter)
        if view is not self._view or not self._points:
            return
        polygon = QPolygonF([view.display_to_widget(c + 0.5, r + 0.5) for c, r in self._points])
        if self._pointer is not None and not self._dragging:
            polygon.append(self._pointer)
        color = QColor(255, 120, 120) if self._subtract else QColor(255, 255, 120)
        painter.setPen(QPen(color, 1.5))
        painter.drawPolyline(polygon)
        first = polygon.at(0)
        painter.drawEllipse(first, 4, 4)

    def options(self, parent) -> QWidget:
        widget = QWidget(parent)
        form = QFormLayout(widget)
        subtract = QCheckBox("Subtract (cut the outline out of the structure)", widget)
        self.bind("subtract", subtract)
        form.addRow(subtract)
        return widget


def _distance(view, point: tuple[float, float], pos: QPointF) -> float:
    first = view.display_to_widget(point[0] + 0.5, point[1] + 0.5)
    return (first - pos).manhattanLength()
