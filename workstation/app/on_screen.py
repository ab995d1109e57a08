"""Floating panels kept where they can be seen.

A floating dock (the DVH panel, Messages, …) keeps its place while hidden. Shown again after the
screen it was on went away (a monitor unplugged, a laptop undocked) or shrank, it would open
outside every screen, out of reach. `keep_on_screen` moves it back whenever it is shown and
whenever screens change, as Qt does when it restores a saved window state.
"""

from __future__ import annotations

from PyQt6.QtCore import QObject, QPoint, QRect, QTimer
from PyQt6.QtGui import QGuiApplication
from PyQt6.QtWidgets import QDockWidget


def keep_on_screen(dock: QDockWidget) -> None:
    """Bring `dock` onto a screen (`bring_onto_screen`) when it is shown, and when a screen is
    removed or changes its free area while it is shown."""
    _Keeper(dock)


def bring_onto_screen(dock: QDockWidget) -> None:
    """Move a shown floating `dock` not wholly on a screen's free area (its available geometry)
    onto the screen holding most of it, else onto its main window's, shrunk to fit if larger."""
    if not (dock.isFloating() and dock.isVisible()):
        return
    frame = dock.frameGeometry()
    areas = [screen.availableGeometry() for screen in QGuiApplication.screens()]
    if not areas or any(area.contains(frame) for area in areas):
        return
    target = max(areas, key=lambda area: _area(area.intersected(frame)))
    if _area(target.intersected(frame)) == 0:
        target = dock.parentWidget().screen().availableGeometry()
    decorations = frame.size() - dock.geometry().size()  # the window manager's title bar, borders
    size = frame.size().boundedTo(target.size())
    left = min(max(frame.left(), target.left()), target.right() + 1 - size.width())
    top = min(max(frame.top(), target.top()), target.bottom() + 1 - size.height())
    inner = dock.geometry().topLeft() - frame.topLeft()
    dock.setGeometry(QRect(QPoint(left, top) + inner, size - decorations))


def _area(rect: QRect) -> int:
    return max(rect.width(), 0) * max(rect.height(), 0)


class _Keeper(QObject):
    """Watches one dock (a child of it: disconnected when the dock goes)."""

    def __init__(self, dock: QDockWidget):
        super().__init__(dock)
        self._settled = QTimer(self, singleShot=True, interval=0)  # screens change in bursts
        self._settled.timeout.connect(lambda: bring_onto_screen(dock))
        # its argument is false for a dock shown left of or above every screen: not relied on
        dock.visibilityChanged.connect(lambda _visible: bring_onto_screen(dock))
        application = QGuiApplication.instance()
        application.screenRemoved.connect(self._screens_changed)
        application.screenAdded.connect(self._watch)
        for screen in QGuiApplication.screens():
            self._watch(screen)

    def _watch(self, screen) -> None:
        screen.availableGeometryChanged.connect(self._screens_changed)

    def _screens_changed(self, *_) -> None:
        self._settled.start()  # once Qt has placed its windows for the new screens
