"""A 2D view (axial, coronal or sagittal) of the case: image, structure overlays, crosshair.

Drawing is numpy → QImage: the slice is windowed through a lookup table into an 8-bit image and
drawn with one `drawImage`; each visible structure adds a small cached fill image and a vector
outline (see `workstation.app.overlays`; auto-contours still to review get a dotted outline).
Scrolling touches only the new slice; an edit re-renders only the edited structure on the slices
its bounding box covers, and repaints only that region.

Mouse: wheel scrolls slices (Ctrl+wheel zooms about the pointer), right-drag changes window/level,
middle-drag (or Shift+left-drag) pans, left button goes to the active tool, or moves the crosshair
when no tool is active. Keys: Up/Down/PageUp/PageDown scroll, +/- zoom, R resets zoom; the main
window gives them to the view under the pointer, whichever widget has the focus (`view_keys`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PyQt6.QtCore import QPointF, QRect, QRectF, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QImage, QPainter, QPen, QRegion, QTransform
from PyQt6.QtWidgets import QSizePolicy, QWidget

from workstation.app.case import Case
from workstation.app.overlays import OverlayCache
from workstation.app.slicing import Orientation, orientation_for
from workstation.app.viewstate import ViewState
from workstation.app.windowing import GreyMapper, Window

CROSSHAIR_COLOR = QColor(255, 200, 0, 170)
#: Points marked by a tool (e.g. the bends of a resection cut), drawn numbered on their slice.
MARK_COLOR = QColor(255, 80, 220)
TEXT_COLOR = QColor(235, 235, 235)
#: A hint under "No image" (how to open one), quieter than the views' other text.
HINT_COLOR = QColor(170, 170, 170)
ZOOM_RANGE = (0.25, 32.0)
SCALE_BAR_STEPS_MM = (1, 2, 5, 10, 20, 50, 100, 200, 500)
#: Slices each key scrolls by, and the factor each key zooms by.
SCROLL_KEYS = {Qt.Key.Key_Up: 1, Qt.Key.Key_Down: -1, Qt.Key.Key_PageUp: 10, Qt.Key.Key_PageDown: -10}
ZOOM_KEYS = {Qt.Key.Key_Plus: 1.25, Qt.Key.Key_Equal: 1.25, Qt.Key.Key_Minus: 1 / 1.25}
#: Every key a view acts on (R resets the zoom).
VIEW_KEYS = frozenset({*SCROLL_KEYS, *ZOOM_KEYS, Qt.Key.Key_R})


@dataclass
class ViewEvent:
    """A mouse event in image terms.

    Attributes:
        zyx: continuous voxel index (z, y, x) under the pointer, on the view's slice.
        index: the view's slice index.
        row, col: display pixel coordinates (continuous, pixel centres at integers).
        pos: widget position.
        buttons, modifiers: Qt flags of the event.
    """

    zyx: np.ndarray
    index: int
    row: float
    col: float
    pos: QPointF
    buttons: Qt.MouseButton
    modifiers: Qt.KeyboardModifier


class SliceView(QWidget):
    """One MPR view of a `Case`, sharing crosshair and window with its siblings via `ViewState`."""

    #: Emitted with (view, zyx or None) as the pointer moves over the image.
    hovered = pyqtSignal(object, object)
    #: Emitted with the view when a tool takes a left press in it (the user draws there).
    tool_pressed = pyqtSignal(object)

    def __init__(self, view: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.view = view
        self.case: Case | None = None
        self.state: ViewState | None = None
        self.orientation: Orientation | None = None
        self.tools = None  # a ToolManager, set by the main window
        self.active_structure = lambda: None  # name of the structure being edited
        self.zoom = 1.0
        self.pan = QPointF(0.0, 0.0)
        self.smooth = True
        self.dose_layer = None  # a DoseLayer drawn under the structures, or None
        self.show_crosshair = True
        self.empty_hint = ""  # said under "No image" while no case is open, e.g. how to open one
        self._mapper: GreyMapper | None = None
        self._grey: tuple | None = None  # (key, QImage, buffer)
        self._overlays: OverlayCache | None = None
        self._base: tuple | None = None  # (key, QImage) of image + overlays
        self._scene_generation = 0
        self.marks: list[tuple[float, float, float]] = []  # voxel (z, y, x) points, numbered from 1
        self._drawn_cross: QPointF | None = None
        self._last_index = -1
        self._drag: tuple | None = None
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(120, 120)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    # -- content -------------------------------------------------------------------------------

    def set_dose(self, layer) -> None:
        """Show a `DoseLayer` under the structures (None hides the dose)."""
        self.dose_layer = layer
        self.update()

    def set_empty_hint(self, text: str) -> None:
        """Say `text` under "No image" while no case is open ("" says nothing more)."""
        self.empty_hint = text
        self.update()

    def set_marks(self, points_zyx: list) -> None:
        """Mark voxel (z, y, x) points, numbered 1, 2, …: each is drawn on the slice it lies in."""
        self.marks = [tuple(float(v) for v in p) for p in points_zyx]
        self.update()

    def set_case(self, case: Case | None, state: ViewState | None) -> None:
        if self.case is not None:
            self.case.structures.changed.disconnect(self._on_structure_changed)
            self.case.structures.removed.disconnect(self._on_structure_removed)
            self.case.structures.added.disconnect(self._on_structure_added)
        if self.state is not None:
            self.state.cursor_changed.disconnect(self._on_cursor)
            self.state.window_changed.disconnect(self._on_window)
        self.case, self.state = case, state
        self._grey = self._base = None
        self.marks = []
        if case is None:
            self.orientation = self._overlays = self._mapper = None
            self.update()
            return
        self.orientation = orientation_for(case.grid, self.view)
        self._overlays = OverlayCache(self.orientation)
        self._mapper = GreyMapper(case.volume.array.dtype)
        self._last_index = self.slice_index
        case.structures.changed.connect(self._on_structure_changed)
        case.structures.removed.connect(self._on_structure_removed)
        case.structures.added.connect(self._on_structure_added)
        state.cursor_changed.connect(self._on_cursor)
        state.window_changed.connect(self._on_window)
        self.reset_view()

    @property
    def slice_index(self) -> int:
        if self.state is None or self.orientation is None:
            return 0
        return self.state.slice_index(self.orientation.normal_axis)

    def set_slice(self, index: int) -> None:
        """Show slice `index` (clamped); moves the shared crosshair along this view's normal."""
        if self.state is None:
            return
        index = int(np.clip(index, 0, self.orientation.n_slices - 1))
        self.state.set_axis(self.orientation.normal_axis, float(index))

    def scroll(self, steps: int) -> None:
        self.set_slice(self.slice_index + steps)

    def reset_view(self) -> None:
        self.zoom, self.pan = 1.0, QPointF(0.0, 0.0)
        self.update()

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom (1 = fit the view) keeping the image point under `anchor` (widget px) in place."""
        zoom = float(np.clip(zoom, *ZOOM_RANGE))
        if anchor is not None and self.orientation is not None:
            col, row = self.widget_to_display(anchor)
            self.zoom = zoom
            ox, oy, sx, sy = self._geometry()
            self.pan += QPointF(anchor.x() - (ox + col * sx), anchor.y() - (oy + row * sy))
        self.zoom = zoom
        self.update()

    def view_state(self) -> dict:
        return {"zoom": self.zoom, "pan": [self.pan.x(), self.pan.y()]}

    def restore_view_state(self, plain: dict) -> None:
        self.zoom = float(np.clip(plain.get("zoom", 1.0), *ZOOM_RANGE))
        self.pan = QPointF(*plain.get("pan", [0.0, 0.0]))
        self.update()

    # -- coordinates ---------------------------------------------------------------------------

    def _geometry(self) -> tuple[float, float, float, float]:
        """(x offset, y offset, px per display column, px per display row) of the image."""
        o = self.orientation
        width_mm, height_mm = o.shape[2] * o.col_mm, o.shape[1] * o.row_mm
        fit = 0.98 * min(self.width() / width_mm, self.height() / height_mm)
        px_per_mm = fit * self.zoom
        ox = (self.width() - width_mm * px_per_mm) / 2 + self.pan.x()
        oy = (self.height() - height_mm * px_per_mm) / 2 + self.pan.y()
        return ox, oy, px_per_mm * o.col_mm, px_per_mm * o.row_mm

    def px_per_mm(self) -> float:
        return self._geometry()[2] / self.orientation.col_mm

    def widget_to_display(self, pos: QPointF) -> tuple[float, float]:
        """Continuous display (col, row) in image pixel units (pixel i spans [i, i+1))."""
        ox, oy, sx, sy = self._geometry()
        return (pos.x() - ox) / sx, (pos.y() - oy) / sy

    def display_to_widget(self, col: float, row: float) -> QPointF:
        ox, oy, sx, sy = self._geometry()
        return QPointF(ox + col * sx, oy + row * sy)

    def voxel_to_widget(self, zyx) -> QPointF:
        _, row, col = self.orientation.from_voxel(zyx)
        return self.display_to_widget(col + 0.5, row + 0.5)

    def event_at(self, event) -> ViewEvent | None:
        if self.orientation is None:
            return None
        pos = event.position()
        col, row = self.widget_to_display(pos)
        index = self.slice_index
        zyx = self.orientation.to_voxel(index, row - 0.5, col - 0.5)
        return ViewEvent(zyx, index, row - 0.5, col - 0.5, pos, event.buttons(), event.modifiers())

    def inside(self, zyx) -> bool:
        shape = np.asarray(self.case.grid.shape)
        return bool(np.all(np.rint(zyx) >= 0) and np.all(np.rint(zyx) < shape))

    # -- painting ------------------------------------------------------------------------------

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        if self.case is None:
            self._paint_no_image(painter)
            painter.end()
            return
        painter.drawImage(0, 0, self._base_layer())
        if self.show_crosshair:
            self._paint_crosshair(painter)
        self._paint_marks(painter)
        if self.tools is not None and self.tools.active is not None:
            self.tools.active.paint(self, painter)
        painter.end()

    def _paint_no_image(self, painter: QPainter) -> None:
        """Black, "No image" in the middle and the empty hint, if any, wrapped below it."""
        painter.fillRect(self.rect(), Qt.GlobalColor.black)
        painter.setPen(TEXT_COLOR)
        painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No image")
        if self.empty_hint:
            below = self.rect().adjusted(12, self.height() // 2 + painter.fontMetrics().height(), -12, 0)
            painter.setPen(HINT_COLOR)
            flags = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap
            painter.drawText(below, flags, self.empty_hint)

    def _base_layer(self) -> QImage:
        """Image, overlays and annotations of the current slice, re-rendered only when they
        change (a crosshair move in a sibling view just blits this)."""
        key = (
            self.slice_index,
            self.state.window,
            self.zoom,
            self.pan.x(),
            self.pan.y(),
            self.width(),
            self.height(),
            self._scene_generation,
            self.active_structure(),
            id(self.dose_layer),
            self.smooth,
        )
        if self._base is not None and self._base[0] == key:
            return self._base[1]
        ratio = self.devicePixelRatioF()
        image = QImage(int(self.width() * ratio), int(self.height() * ratio), QImage.Format.Format_RGB32)
        image.setDevicePixelRatio(ratio)
        image.fill(Qt.GlobalColor.black)
        painter = QPainter(image)
        index = self.slice_index
        ox, oy, sx, sy = self._geometry()
        painter.setTransform(QTransform(sx, 0, 0, sy, ox, oy))
        o = self.orientation
        if self.smooth and sx > 1.2:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(QRectF(0, 0, o.shape[2], o.shape[1]), self._grey_image(index, self.state.window))
        if self.dose_layer is not None:
            painter.drawImage(QRectF(0, 0, o.shape[2], o.shape[1]), self.dose_layer.image(o, index))
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self._paint_overlays(painter, index)
        painter.resetTransform()
        self._paint_annotations(painter, index)  # depend only on what the key holds
        painter.end()
        self._base = (key, image)
        return image

    def _changed_scene(self) -> None:
        self._scene_generation += 1

    def _grey_image(self, index: int, window: Window) -> QImage:
        key = (index, window)
        if self._grey is None or self._grey[0] != key:
            plane = self.orientation.slice_of(self.case.volume.array, index)
            grey = self._mapper(plane, window)
            height, width = grey.shape
            image = QImage(grey.data, width, height, width, QImage.Format.Format_Grayscale8)
            self._grey = (key, image, grey)
        return self._grey[1]

    def _paint_overlays(self, painter: QPainter, index: int) -> None:
        """All fills first, then all outlines (the selected structure's last and thicker), so no
        outline is tinted by another structure's fill."""
        active = self.active_structure()
        shown = []
        for structure in self.case.structures:
            overlay = self._overlays.get(structure, index) if structure.visible else None
            if overlay is not None:
                if overlay.image is not None:
                    painter.drawImage(QPointF(overlay.col0, overlay.row0), overlay.image)
                shown.append((structure.name == active, structure, overlay))
        for is_active, structure, overlay in sorted(shown, key=lambda item: item[0]):
            # Integer cosmetic widths keep Qt on its fast line path.
            pen = QPen(QColor(*structure.color), 2 if is_active else 1)
            pen.setCosmetic(True)
            if structure.awaiting_review:  # an auto-contour not yet accepted or rejected
                pen.setStyle(Qt.PenStyle.DotLine)
            painter.setPen(pen)
            painter.drawLines(overlay.lines)

    def _paint_crosshair(self, painter: QPainter) -> None:
        centre = self.voxel_to_widget(self.state.cursor)
        self._drawn_cross = centre
        painter.setPen(QPen(CROSSHAIR_COLOR, 1))
        gap = 12
        x, y = centre.x(), centre.y()
        painter.drawLine(QPointF(0, y), QPointF(x - gap, y))
        painter.drawLine(QPointF(x + gap, y), QPointF(self.width(), y))
        painter.drawLine(QPointF(x, 0), QPointF(x, y - gap))
        painter.drawLine(QPointF(x, y + gap), QPointF(x, self.height()))

    def _paint_marks(self, painter: QPainter) -> None:
        index = self.slice_index
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for number, zyx in enumerate(self.marks, start=1):
            if round(self.orientation.from_voxel(zyx)[0]) != index:
                continue
            at = self.voxel_to_widget(zyx)
            painter.setPen(QPen(MARK_COLOR, 2))  # `_text` leaves its own pen
            painter.drawEllipse(at, 5.0, 5.0)
            _text(painter, at.x() + 7, at.y() - 7, str(number))

    def _paint_annotations(self, painter: QPainter, index: int) -> None:
        o = self.orientation
        font = QFont(self.font())
        font.setPointSizeF(9.5)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        width, height = self.width(), self.height()
        # The slice's position at its centre (for oblique images it varies across the slice).
        centre = o.to_voxel(index, (o.shape[1] - 1) / 2, (o.shape[2] - 1) / 2)
        position = self.case.grid.index_to_patient(centre[::-1])
        axis_mm = {"axial": ("z", position[2]), "coronal": ("y", position[1]), "sagittal": ("x", position[0])}
        letter, mm = axis_mm[self.view]
        oblique = "  (oblique)" if o.oblique else ""
        _text(
            painter,
            6,
            4 + metrics.ascent(),
            f"{self.view.capitalize()}  {index + 1}/{o.n_slices}  {letter} = {mm:.1f} mm{oblique}",
        )
        window_text = self.state.window.describe()
        _text(painter, width - metrics.horizontalAdvance(window_text) - 6, 4 + metrics.ascent(), window_text)
        bold = QFont(font)
        bold.setBold(True)
        bold.setPointSizeF(12)
        painter.setFont(bold)
        bm = painter.fontMetrics()
        labels = o.labels
        _text(painter, 6, height / 2 + bm.ascent() / 2, labels["left"])
        _text(
            painter,
            width - bm.horizontalAdvance(labels["right"]) - 6,
            height / 2 + bm.ascent() / 2,
            labels["right"],
        )
        _text(
            painter,
            width / 2 - bm.horizontalAdvance(labels["top"]) / 2,
            8 + metrics.height() + bm.ascent(),
            labels["top"],
        )
        _text(painter, width / 2 - bm.horizontalAdvance(labels["bottom"]) / 2, height - 8, labels["bottom"])
        painter.setFont(font)
        self._paint_scale_bar(painter, metrics)

    def _paint_scale_bar(self, painter: QPainter, metrics) -> None:
        px_per_mm = self.px_per_mm()
        target_mm = self.width() / 5 / px_per_mm
        length_mm = min(SCALE_BAR_STEPS_MM, key=lambda s: abs(math.log(s / target_mm)))
        length_px = length_mm * px_per_mm
        x1 = self.width() - 14
        x0 = x1 - length_px
        y = self.height() - 14
        pen = QPen(TEXT_COLOR, 2)
        painter.setPen(pen)
        painter.drawLine(QPointF(x0, y), QPointF(x1, y))
        for x in (x0, x1):
            painter.drawLine(QPointF(x, y - 5), QPointF(x, y))
        label = f"{length_mm} mm" if length_mm < 10 else f"{length_mm / 10:g} cm"
        _text(painter, x1 - metrics.horizontalAdvance(label), y - 8, label)

    # -- events from the model -----------------------------------------------------------------

    def _prefetch(self, shown: int, index: int) -> None:
        if self.case is None or self.slice_index != shown or not 0 <= index < self.orientation.n_slices:
            return
        for structure in self.case.structures:
            if structure.visible:
                self._overlays.get(structure, index)

    def _on_window(self) -> None:
        self.update()

    def _on_cursor(self) -> None:
        index = self.slice_index
        if index != self._last_index or self._drawn_cross is None:
            step = 1 if index > self._last_index else -1
            self._last_index = index
            self.update()
            # Build the next slice's overlays while the user is between two wheel steps.
            QTimer.singleShot(0, lambda: self._prefetch(index, index + step))
            return
        # Same slice: only the crosshair moved; repaint the strips it leaves and enters.
        old, new = self._drawn_cross, self.voxel_to_widget(self.state.cursor)
        width, height = self.width(), self.height()
        region = QRegion()
        for point in (old, new):
            region += QRect(0, int(point.y()) - 2, width, 5)
            region += QRect(int(point.x()) - 2, 0, 5, height)
        self.update(region)

    def _on_structure_added(self, structure) -> None:
        self._changed_scene()
        self.update()

    def _on_structure_removed(self, structure) -> None:
        self._overlays.invalidate(structure)
        self._changed_scene()
        self.update()

    def _on_structure_changed(self, structure, box) -> None:
        self._changed_scene()
        if box is None:
            self._overlays.invalidate(structure)
            self.update()
            return
        axis = self.orientation.normal_axis
        self._overlays.invalidate(structure, box[axis].start, box[axis].stop)
        if box[axis].start <= self.slice_index < box[axis].stop:
            self.update(self._widget_rect(box))

    def _widget_rect(self, box) -> QRect:
        row0, row1, col0, col1 = self.orientation.display_box(box)
        top_left = self.display_to_widget(col0, row0)
        bottom_right = self.display_to_widget(col1, row1)
        return QRectF(top_left, bottom_right).toAlignedRect().adjusted(-4, -4, 4, 4)

    # -- mouse and keys ------------------------------------------------------------------------

    def mousePressEvent(self, event) -> None:  # noqa: N802
        at = self.event_at(event)
        if at is None:
            return
        button, modifiers = event.button(), event.modifiers()
        if button == Qt.MouseButton.RightButton:
            self._drag = ("window", event.position(), self.state.window)
        elif button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and modifiers & Qt.KeyboardModifier.ShiftModifier
        ):
            self._drag = ("pan", event.position(), QPointF(self.pan))
        elif button == Qt.MouseButton.LeftButton:
            tool = self.tools.active if self.tools is not None else None
            if tool is not None and tool.press(self, at):
                self._drag = ("tool",)
                self.tool_pressed.emit(self)
            else:
                self._drag = ("cursor",)
                self._move_cursor(at)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        at = self.event_at(event)
        if at is None:
            return
        self.hovered.emit(self, at.zyx if self.inside(at.zyx) else None)
        kind = self._drag[0] if self._drag else None
        if kind == "window":
            _, start, window = self._drag
            delta = event.position() - start
            step = max(window.width / 300.0, 0.5)
            self.state.set_window(Window(window.width + delta.x() * step, window.level + delta.y() * step))
        elif kind == "pan":
            _, start, pan = self._drag
            self.pan = pan + (event.position() - start)
            self.update()
        elif kind == "tool":
            self.tools.active.move(self, at)
        elif kind == "cursor":
            self._move_cursor(at)
        elif self.tools is not None and self.tools.active is not None:
            self.tools.active.hover(self, at)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        at = self.event_at(event)
        if self._drag and self._drag[0] == "tool" and at is not None:
            self.tools.active.release(self, at)
        self._drag = None

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        at = self.event_at(event)
        tool = self.tools.active if self.tools is not None else None
        if at is not None and tool is not None:
            tool.double_click(self, at)

    def leaveEvent(self, event) -> None:  # noqa: N802
        self.hovered.emit(self, None)
        if self.tools is not None and self.tools.active is not None:
            self.tools.active.leave(self)

    def _move_cursor(self, at: ViewEvent) -> None:
        zyx = np.clip(at.zyx, 0, np.asarray(self.case.grid.shape) - 1)
        zyx[self.orientation.normal_axis] = self.slice_index
        self.state.set_cursor(zyx)

    def wheelEvent(self, event) -> None:  # noqa: N802
        if self.case is None:
            return
        steps = event.angleDelta().y() / 120.0
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.set_zoom(self.zoom * 1.15**steps, event.position())
        else:
            self.scroll(int(math.copysign(max(1, round(abs(steps))), steps)) if steps else 0)
        event.accept()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if self.case is None:
            return super().keyPressEvent(event)
        key = event.key()
        if key in SCROLL_KEYS:
            self.scroll(SCROLL_KEYS[key])
        elif key in ZOOM_KEYS:
            self.set_zoom(self.zoom * ZOOM_KEYS[key])
        elif key == Qt.Key.Key_R:
            self.reset_view()
        else:
            super().keyPressEvent(event)


def _text(painter: QPainter, x: float, y: float, text: str) -> None:
    """Text with a dark shadow, readable on any image."""
    painter.setPen(QColor(0, 0, 0, 200))
    painter.drawText(QPointF(x + 1, y + 1), text)
    painter.setPen(TEXT_COLOR)
    painter.drawText(QPointF(x, y), text)
