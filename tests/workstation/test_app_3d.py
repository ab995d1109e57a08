"""The 3D view inside the main window follows the case: surfaces appear, follow edits and undo."""

import numpy as np
import pytest
from support.app import show_sample, wait_idle

pytestmark = pytest.mark.gui


def _wait_3d(qtbot, window):
    wait_idle(qtbot, window)
    qtbot.waitUntil(window.view3d.is_ready, timeout=120_000)


def test_surfaces_follow_edits_and_undo(window, qtbot):
    case = show_sample(window)
    _wait_3d(qtbot, window)
    gtv = window.view3d.surface("GTV")
    assert gtv is not None
    centre = case.grid.index_to_patient(np.argwhere(case.structures["GTV"].mask.full()).mean(axis=0)[::-1])
    assert np.allclose(gtv.points.mean(axis=0), centre, atol=3.0)  # on the CT, in patient mm
    # A new structure painted in the 2D view gets its surface where it was painted.
    name = window.commands.add_structure("Boost")
    box = (slice(30, 36), slice(60, 70), slice(80, 90))
    case.edit_region("paint", name, box, np.ones((6, 10, 10), bool))
    _wait_3d(qtbot, window)
    surface = window.view3d.surface(name)
    assert surface is not None
    expected = case.grid.index_to_patient(np.array([84.5, 64.5, 32.5]))
    assert np.allclose(surface.points.mean(axis=0), expected, atol=2.0)
    # Undo removes the structure and its surface.
    window.undo()
    window.undo()
    _wait_3d(qtbot, window)
    assert name not in case.structures and window.view3d.surface(name) is None
    # The 3D view's OpenGL pixels are part of the window's screenshot.
    from PyQt6.QtCore import QPoint
    from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor

    canvas = window.view3d.findChild(QVTKRenderWindowInteractor)
    rendered = window.view3d.render_image()
    image = window.screenshot()
    height, width = rendered.shape[:2]
    for fx, fy in ((0.5, 0.5), (0.3, 0.6), (0.7, 0.4)):
        x, y = int(width * fx), int(height * fy)
        colour = image.pixelColor(canvas.mapTo(window, QPoint(x, y)))
        assert np.abs(np.array([colour.red(), colour.green(), colour.blue()]) - rendered[y, x]).max() <= 12
