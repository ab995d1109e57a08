"""Docked panels: a floating one always opens on a screen."""

import pytest
from PyQt6.QtCore import QRect, QSize
from PyQt6.QtGui import QGuiApplication
from PyQt6.QtWidgets import QApplication

pytestmark = pytest.mark.gui


@pytest.mark.parametrize(
    "place", [QRect(2600, 1500, 500, 300), QRect(-900, 300, 500, 300), QRect(100, 100, 4000, 2500)]
)
def test_a_floating_dvh_panel_off_every_screen_comes_back_when_shown(window, qtbot, place):
    """A floating panel keeps its place while hidden: after its screen was unplugged (beyond
    the 1920 × 1200 screen here, or left of it) View ▸ DVH opened it out of reach; one larger
    than the screen (saved on a bigger one) is shrunk to fit."""
    dock = window.docks.dvh_dock
    dock.show()
    dock.setFloating(True)
    QApplication.processEvents()
    dock.hide()
    dock.setGeometry(place)
    dock.toggleViewAction().trigger()
    qtbot.waitUntil(dock.isVisible)
    QApplication.processEvents()
    screen = QGuiApplication.primaryScreen().availableGeometry()
    assert dock.isFloating() and screen.contains(dock.frameGeometry()), (dock.frameGeometry(), screen)
    if place.width() <= screen.width():
        assert dock.size() == place.size()  # moved, not resized


def test_a_shown_floating_panel_comes_back_when_the_screens_change(window, qtbot):
    """A screen unplugged or made smaller under a shown floating panel: the panel moves onto the
    screens left (the change is signalled here; Xvfb cannot unplug its screen)."""
    dock = window.docks.dvh_dock
    dock.show()
    dock.setFloating(True)
    dock.setGeometry(QRect(2600, 1500, 500, 300))  # where a second screen was
    QApplication.processEvents()
    screen = QGuiApplication.primaryScreen()
    screen.availableGeometryChanged.emit(screen.availableGeometry())
    qtbot.waitUntil(lambda: screen.availableGeometry().contains(dock.frameGeometry()))
    assert dock.isVisible() and dock.size() == QSize(500, 300)
