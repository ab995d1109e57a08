"""What the 2D views share: the linked cursor (crosshair) and the display window (Qt-free)."""

from __future__ import annotations

import numpy as np
from psygnal import Signal

from workstation.app.windowing import Window


class ViewState:
    """The crosshair position and the window/level shared by the axial, coronal and sagittal views.

    Events: `cursor_changed()` when the crosshair moves (views showing another slice follow),
    `window_changed()` when width/level change.
    """

    cursor_changed = Signal()
    window_changed = Signal()

    def __init__(self, shape_zyx: tuple[int, int, int], window: Window):
        self.shape = tuple(int(n) for n in shape_zyx)
        self._cursor = np.array([(n - 1) / 2 for n in self.shape], float).round()
        self._window = window

    @property
    def cursor(self) -> np.ndarray:
        """Crosshair as continuous (z, y, x) voxel indices (a copy)."""
        return self._cursor.copy()

    def set_cursor(self, zyx) -> None:
        zyx = np.clip(np.asarray(zyx, float), 0, np.asarray(self.shape) - 1)
        if not np.array_equal(zyx, self._cursor):
            self._cursor = zyx
            self.cursor_changed.emit()

    def set_axis(self, axis: int, value: float) -> None:
        """Move the crosshair along one array axis (a view scrolling its slices)."""
        zyx = self.cursor
        zyx[axis] = value
        self.set_cursor(zyx)

    def slice_index(self, axis: int) -> int:
        return int(round(self._cursor[axis]))

    @property
    def window(self) -> Window:
        return self._window

    def set_window(self, window: Window) -> None:
        if window != self._window:
            self._window = window
            self.window_changed.emit()

    def to_plain(self) -> dict:
        return {
            "cursor_zyx": [float(v) for v in self._cursor],
            "window": [self._window.width, self._window.level],
        }

    def restore(self, plain: dict) -> None:
        if "window" in plain:
            self.set_window(Window(*plain["window"]))
        if "cursor_zyx" in plain:
            self.set_cursor(plain["cursor_zyx"])
