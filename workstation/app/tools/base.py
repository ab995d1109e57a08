"""Contouring tools: what the left mouse button does in a 2D view.

A tool receives `ViewEvent`s (voxel coordinates, slice, modifiers) from a `SliceView`, edits the
case through `Case` (so every edit is one undo step) and may draw a preview. Its settings (brush
size in mm, HU range, 2D/3D...) live in the `QSettings` passed to the main window, under
``tools/<key>/<name>``, so they are remembered between runs; the tool's settings widget follows
every change (the [ and ] keys resize the brush).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PyQt6 import sip
from PyQt6.QtCore import QObject, QPointF, QRectF, QSettings, QSignalBlocker, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QPainter, QPen
from PyQt6.QtWidgets import QAbstractButton, QCheckBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QWidget

from planning.volume import values_are_hu
from workstation.app.history import Locked
from workstation.app.windowing import WHOLE, ValueScale, tissue_range, value_scale

if TYPE_CHECKING:
    from workstation.app.case import Case
    from workstation.app.slice_view import SliceView, ViewEvent


#: The "not allowed" sign over a locked structure: a light circle struck through.
LOCKED_COLOR = QColor(235, 235, 235)
#: The sign's radius (widget px) for tools without an outline of their own.
LOCKED_SIGN_PX = 10.0


def paint_not_allowed(painter: QPainter, centre: QPointF, radius_px: float, *, dashed: bool = False) -> None:
    """A circle of `radius_px` around `centre`, struck through: a press there is refused."""
    pen = QPen(LOCKED_COLOR, 1.6)
    if dashed:
        pen.setStyle(Qt.PenStyle.DashLine)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawEllipse(QRectF(centre.x() - radius_px, centre.y() - radius_px, 2 * radius_px, 2 * radius_px))
    reach = radius_px / math.sqrt(2)
    painter.drawLine(centre + QPointF(-reach, reach), centre + QPointF(reach, -reach))


@dataclass
class ToolContext:
    """What tools need from the window, passed in (no globals).

    Attributes:
        settings: where tool settings are remembered.
        case: returns the current `Case` (or None).
        active_structure: returns the name of the structure being edited (or None).
        message: shows a short message to the user (status bar).
        run_job: runs a slow function in a worker: run_job(title, function, on_done) where
            function(on_progress, cancel) returns the result handed to on_done on the GUI thread.
        views: returns the 2D views (to repaint previews).
    """

    settings: QSettings
    case: Any
    active_structure: Any
    message: Any = print
    run_job: Any = None
    views: Any = field(default=lambda: [])


class Tool(QObject):
    """Base class: a left-button interaction in the 2D views with remembered settings."""

    #: The name of a setting that was just changed.
    setting_changed = pyqtSignal(str)

    key = "tool"
    title = "Tool"
    shortcut = ""
    tip = ""
    #: Default settings; their types decide how QSettings values are read back.
    defaults: dict[str, Any] = {}
    #: The keys `key_pressed` acts on.
    keys: frozenset[Qt.Key] = frozenset()

    def __init__(self, context: ToolContext):
        super().__init__()
        self.context = context
        self.pointer: tuple | None = None  # (view, widget pos) of the hovering pointer

    # -- settings ------------------------------------------------------------------------------

    def setting(self, name: str):
        default = self.defaults[name]
        value = self.context.settings.value(f"tools/{self.key}/{name}", default, type=type(default))
        return value

    def set_setting(self, name: str, value) -> None:
        self.context.settings.setValue(f"tools/{self.key}/{name}", value)
        self.setting_changed.emit(name)

    def bind(self, name: str, box: QWidget) -> None:
        """Show setting `name` in `box` (a spin box or check box), store the user's changes, and
        follow changes made elsewhere (keys)."""
        check = isinstance(box, QAbstractButton)
        kind = type(self.defaults[name])

        def show(changed: str) -> None:
            if changed == name and not sip.isdeleted(box):
                with QSignalBlocker(box):
                    (box.setChecked if check else box.setValue)(self.setting(name))

        show(name)
        edited = box.toggled if check else box.valueChanged
        edited.connect(lambda value: self.set_setting(name, kind(value)))
        self.setting_changed.connect(show)

    # -- helpers -------------------------------------------------------------------------------

    def case(self) -> Case | None:
        return self.context.case()

    def target(self) -> str | None:
        """The structure to edit, or None with a message telling the user what to do."""
        name = self.context.active_structure()
        if self.case() is None:
            return None
        if name is None or name not in self.case().structures:
            self.context.message("Select a structure in the structure table (or add one) first.")
            return None
        if self.refused(name):
            return None
        self.reveal(name)
        return name

    def refused(self, name: str) -> bool:
        """Whether structure `name` is locked, with a message saying so."""
        try:
            self.case().check_unlocked([name])
        except Locked as error:
            self.context.message(str(error))
            return True
        return False

    def over_locked(self) -> bool:
        """Whether the structure a press would edit is locked (previews show "not allowed")."""
        case, name = self.case(), self.context.active_structure()
        return case is not None and name in case.structures and case.structures[name].locked

    def reveal(self, name: str) -> None:
        """Show structure `name` if it is hidden: an edit must never land where it cannot be seen."""
        case = self.case()
        if case is not None and name in case.structures and not case.structures[name].visible:
            case.set_visible(name, True)
            self.context.message(f"{name} was hidden: it is shown again so that you see what you edit.")

    # -- events (return True from press to receive move/release) ------------------------------

    def activate(self) -> None:
        """Called when the tool becomes active."""

    def deactivate(self) -> None:
        """Called when another tool becomes active."""

    def image_changed(self) -> None:
        """Called when another image (case) opens."""

    def press(self, view: SliceView, event: ViewEvent) -> bool:
        return False

    def move(self, view: SliceView, event: ViewEvent) -> None:
        pass

    def release(self, view: SliceView, event: ViewEvent) -> None:
        pass

    def double_click(self, view: SliceView, event: ViewEvent) -> None:
        pass

    def hover(self, view: SliceView, event: ViewEvent) -> None:
        """Follow the pointer (for the "not allowed" sign over a locked structure)."""
        shown = self.pointer is not None and self.over_locked()
        self.pointer = (view, event.pos)
        if shown or self.over_locked():
            view.update()

    def leave(self, view: SliceView) -> None:
        self.pointer = None
        view.update()

    def key_pressed(self, view: SliceView, key: int) -> bool:
        """A key pressed over a view (one of `keys`); True when the tool used it."""
        return False

    def paint(self, view: SliceView, painter: QPainter) -> None:
        """Draw a preview (brush outline, polygon in progress) in widget coordinates; here, the
        "not allowed" sign at the pointer over a locked structure."""
        if self.pointer is not None and self.pointer[0] is view and self.over_locked():
            paint_not_allowed(painter, self.pointer[1], LOCKED_SIGN_PX)

    def options(self, parent: QWidget) -> QWidget | None:
        """A widget with this tool's settings (bound to QSettings), or None."""
        return None


#: Values the range limit of the brush and fill accepts: CT's HU and MR's intensities (any scale).
VALUE_LIMITS = (-32768, 65535)
#: The value range's settings.
RANGE_KEYS = ("hu_min", "hu_max")


class ValueRangeTool(Tool):
    """A tool that may be limited to voxels whose values lie in a range (settings hu_limit,
    hu_min, hu_max).

    On a CT the range is in HU, whole numbers remembered in the settings (−200 to 300 until set).
    On an image whose values are not HU (an MR, on its scanner's own scale or normalised to 0–1)
    a range set on another image means nothing: the range is the open image's own, kept while it
    is open, at the image's scale (`value_scale`: decimals when its values are not whole), and
    until one is set it is the image's tissue (`tissue_range`: above the dark background, up to
    its largest value).
    """

    def __init__(self, context: ToolContext):
        super().__init__(context)
        # (volume, its scale, [min, max], the boxes' bounds) of the open image whose values are not HU
        self._image: tuple[weakref.ref, ValueScale, list[float], tuple[float, float]] | None = None

    def _own(self) -> tuple[weakref.ref, ValueScale, list[float], tuple[float, float]] | None:
        """The open image's scale and range when its values are not HU (made on first use), else None."""
        case = self.case()
        volume = None if case is None else case.volume
        if volume is None or values_are_hu(volume.modality):
            return None
        if self._image is None or self._image[0]() is not volume:
            scale = value_scale(volume.array)
            with np.errstate(invalid="ignore"):
                low, high = float(np.nanmin(volume.array)), float(np.nanmax(volume.array))
            bounds = (  # the image's values may lie beyond the usual limits (a float image)
                min(VALUE_LIMITS[0], scale.floor(low)) if math.isfinite(low) else VALUE_LIMITS[0],
                max(VALUE_LIMITS[1], scale.ceil(high)) if math.isfinite(high) else VALUE_LIMITS[1],
            )
            self._image = (weakref.ref(volume), scale, list(tissue_range(volume.array, scale, high)), bounds)
        return self._image

    def value_scale(self) -> tuple[ValueScale, tuple[float, float]]:
        """The scale of the range on the open image and the bounds of its boxes: whole HU within
        `VALUE_LIMITS` on a CT (or with no image open)."""
        own = self._own()
        return (WHOLE, VALUE_LIMITS) if own is None else (own[1], own[3])

    def setting(self, name: str):
        own = self._own() if name in RANGE_KEYS else None
        return super().setting(name) if own is None else own[2][RANGE_KEYS.index(name)]

    def set_setting(self, name: str, value) -> None:
        if name not in RANGE_KEYS:
            super().set_setting(name, value)
            return
        own = self._own()
        if own is None:
            super().set_setting(name, int(round(value)))  # whole HU, as the settings keep them
            return
        own[2][RANGE_KEYS.index(name)] = own[1].round(value)
        self.setting_changed.emit(name)

    def image_changed(self) -> None:
        """Show the range of the image just opened (its own on an MR, the remembered HU on a CT)."""
        for name in RANGE_KEYS:
            self.setting_changed.emit(name)


def add_value_limit_rows(tool: ValueRangeTool, widget: QWidget, form: QFormLayout, what: str) -> None:
    """Rows that limit `tool` to voxels whose value lies in [min, max] (settings hu_limit, hu_min,
    hu_max): whole HU on a CT, the image's own values on an MR, with decimals when they are not
    whole numbers (`value_scale`). `what`: the check box's text."""
    limit = QCheckBox(f"{what} in value range (HU on CT)", widget)
    limit.setToolTip(
        "On a CT, in HU (−200 to 300 until you set it). On an MR, in the image's own values: until you "
        "set it, from above its dark background to its 99th percentile"
    )
    tool.bind("hu_limit", limit)
    form.addRow(limit)
    row = QHBoxLayout()
    for key in RANGE_KEYS:
        spin = QDoubleSpinBox(widget)
        spin.setObjectName(key)
        _bind_range_box(tool, key, spin)
        row.addWidget(spin)
    form.addRow("Min / max", row)


def _bind_range_box(tool: ValueRangeTool, name: str, box: QDoubleSpinBox) -> None:
    """Show range setting `name` in `box` at the open image's scale (decimals, step, bounds, set
    again when another image opens), store the user's changes, follow changes made elsewhere."""

    def show(changed: str) -> None:
        if changed != name or sip.isdeleted(box):
            return
        scale, (low, high) = tool.value_scale()
        with QSignalBlocker(box):
            box.setDecimals(scale.decimals)  # first: the range and value are rounded to it
            box.setSingleStep(scale.step)
            box.setRange(low, high)
            box.setValue(tool.setting(name))

    show(name)
    box.valueChanged.connect(lambda value: tool.set_setting(name, value))
    tool.setting_changed.connect(show)


class ToolManager(QObject):
    """The tools and which one is active (None = navigate: left click moves the crosshair)."""

    active_changed = pyqtSignal(object)

    def __init__(self, context: ToolContext, tools: list[Tool], parent: QObject | None = None):
        super().__init__(parent)
        self.context = context
        self.tools = {tool.key: tool for tool in tools}
        self.active: Tool | None = None

    def activate(self, key: str | None) -> None:
        tool = self.tools.get(key) if key else None
        if tool is self.active:
            return
        if self.active is not None:
            self.active.deactivate()
        self.active = tool
        if tool is not None:
            tool.activate()
        self.active_changed.emit(tool)
        for view in self.context.views():
            view.update()
