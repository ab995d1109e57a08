"""The keys of the 2D views act on the view under the pointer, whichever widget has the focus.

As in Eclipse, RayStation or Slicer: a user who picked a structure in the table and moved the
pointer to the axial view scrolls it with Up/Down/PgUp/PgDn and sizes the brush with [ and ];
before, the table took those keys (its selection moved to the next structure, which the brush
then painted). A text or number being typed (a structure's name, a spin box's value, a table
cell's editor) keeps its keys, and so do other windows (dialogs, menus); with the pointer off the
views every widget keeps its own keys.
"""

from __future__ import annotations

import atexit

from PyQt6 import sip
from PyQt6.QtCore import QEvent, QObject, Qt
from PyQt6.QtGui import QKeyEvent
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDockWidget,
    QLineEdit,
    QWidget,
)

from workstation.app.slice_view import VIEW_KEYS

#: Modifiers that make a key another one (Ctrl+Up is not Up); Shift and the keypad do not.
COMMAND_MODIFIERS = (
    Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.MetaModifier
)


class ViewKeys(QObject):
    """An application event filter giving the main window's key presses that the view under the
    pointer acts on (`VIEW_KEYS` and the active tool's `keys`) to that view.

    The key reaches the view as if it had the focus: the view acts on it, or passes it on to the
    window, which gives it to the active tool. A key they leave unused goes on to the focus.
    """

    def __init__(self, window):
        super().__init__(window)
        self.window = window

    def install(self) -> None:
        """Filter the application's events until `remove` (called by the window's closing, or
        at exit for a window never closed: PyQt's own clean-up at exit crashes in a filter)."""
        QApplication.instance().installEventFilter(self)
        atexit.register(self.remove)

    def remove(self) -> None:
        atexit.unregister(self.remove)
        if not sip.isdeleted(self):  # else Qt dropped it with the window
            QApplication.instance().removeEventFilter(self)

    def eventFilter(self, receiver, event) -> bool:  # noqa: N802 (Qt name)
        if event.type() != QEvent.Type.KeyPress or not self._for_a_view(receiver, event):
            return False
        view = self.window.view_under_mouse()
        if view is None or view is receiver:
            return False
        forwarded = QKeyEvent(
            event.type(), event.key(), event.modifiers(), event.text(), event.isAutoRepeat(), event.count()
        )
        QApplication.sendEvent(view, forwarded)
        return forwarded.isAccepted()

    def _for_a_view(self, receiver, event) -> bool:
        """Whether `event`, a key press first delivered to `receiver`, is one the views act on,
        for this window, while nothing is being typed."""
        focus = QApplication.focusWidget()
        tool = self.window.tools.active
        return (
            isinstance(receiver, QWidget)
            and receiver is (focus or receiver.window())  # not again as it goes up to the parents
            and self._ours(receiver)
            and not event.modifiers() & COMMAND_MODIFIERS
            and (event.key() in VIEW_KEYS or (tool is not None and event.key() in tool.keys))
            and not _typing(focus)
        )

    def _ours(self, widget: QWidget) -> bool:
        """Whether `widget` lies in the window or one of its floating docks (not in a dialog)."""
        top = widget.window()
        return top is self.window or (isinstance(top, QDockWidget) and top.parentWidget() is self.window)


def _typing(widget: QWidget | None) -> bool:
    """Whether `widget` takes typed text or numbers, or is a table cell's open editor."""
    if isinstance(widget, (QLineEdit, QAbstractSpinBox)):
        return True
    if isinstance(widget, QComboBox) and widget.isEditable():
        return True
    while widget is not None:
        if isinstance(widget, QAbstractItemView) and widget.state() == QAbstractItemView.State.EditingState:
            return True
        widget = widget.parentWidget()
    return False
