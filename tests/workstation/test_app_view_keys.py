"""Keys over a 2D view act on it whichever widget has the focus (`workstation.app.view_keys`),
with the real pointer moved over it, as the user does."""

import pytest
from PyQt6.QtCore import QPoint, Qt
from PyQt6.QtTest import QTest
from PyQt6.QtWidgets import QApplication, QLineEdit
from support.app import click, point_at, show_sample, widget_point

from workstation.app.structure_table import NAME

pytestmark = pytest.mark.gui


@pytest.fixture
def shown(window, qtbot):
    """The sample patient in the active window, its Heart picked with a click in the table (the
    table has the focus); the brush at 5 mm."""
    case = show_sample(window)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    window.tools.activate("brush")
    window.tools.tools["brush"].set_setting("radius_mm", 5.0)
    table = window.table
    QTest.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=_name_cell(table, "Heart").center())
    assert table.active_name() == "Heart" and QApplication.focusWidget() is table
    return case


def _name_cell(table, name):
    names = [table.item(row, NAME).data(Qt.ItemDataRole.UserRole) for row in range(table.rowCount())]
    return table.visualItemRect(table.item(names.index(name), NAME))


def _press(qtbot, *keys) -> None:
    """Press `keys` where Qt delivers them: to the widget with the focus."""
    for key in keys:
        qtbot.keyClick(QApplication.focusWidget(), key)


def test_slice_and_brush_keys_over_the_axial_view_act_on_it_not_on_the_table(window, qtbot, shown):
    """The audit: ↓ ↓ PgDn over the axial view moved the table's selection from the structure
    being drawn to the next, which the brush then painted; [ and ] did not size the brush."""
    table, axial, brush = window.table, window.views["axial"], window.tools.tools["brush"]
    point_at(qtbot, axial, axial.rect().center())
    start = axial.slice_index
    _press(qtbot, Qt.Key.Key_Down, Qt.Key.Key_Down, Qt.Key.Key_PageDown)
    assert axial.slice_index == start - 12
    _press(qtbot, Qt.Key.Key_Up)
    assert axial.slice_index == start - 11
    _press(qtbot, Qt.Key.Key_BracketRight)
    assert brush.setting("radius_mm") == pytest.approx(6.25)
    _press(qtbot, Qt.Key.Key_BracketLeft, Qt.Key.Key_BracketLeft)
    assert brush.setting("radius_mm") == pytest.approx(4.0)
    zoom = axial.zoom
    _press(qtbot, Qt.Key.Key_Plus)
    assert axial.zoom == pytest.approx(zoom * 1.25)
    assert table.active_name() == "Heart" and QApplication.focusWidget() is table
    spot = (axial.slice_index, 8, 8)  # outside the body: nothing there yet
    click(axial, widget_point(axial, spot))
    assert shown.history.undo_text == "Paint Heart" and shown.structures["Heart"].mask.full()[spot]
    point_at(qtbot, table.viewport(), _name_cell(table, "Heart").center())  # off the views
    slice_now = axial.slice_index
    _press(qtbot, Qt.Key.Key_Down)
    assert table.active_name() == "SpinalCord" and axial.slice_index == slice_now


def test_keys_act_on_the_view_under_the_pointer_not_the_view_with_the_focus(window, qtbot, shown):
    axial, coronal = window.views["axial"], window.views["coronal"]
    axial.setFocus()
    point_at(qtbot, coronal, coronal.rect().center())
    start_axial, start_coronal = axial.slice_index, coronal.slice_index
    _press(qtbot, Qt.Key.Key_Up)
    assert (axial.slice_index, coronal.slice_index) == (start_axial, start_coronal + 1)
    point_at(qtbot, axial, axial.rect().center())  # the view's own keys, over it with the focus
    _press(qtbot, Qt.Key.Key_Up, Qt.Key.Key_BracketRight)
    assert axial.slice_index == start_axial + 1
    assert window.tools.tools["brush"].setting("radius_mm") == pytest.approx(6.25)
    point_at(qtbot, window.table.viewport(), QPoint(5, 5))  # off the views: the focused view's keys
    _press(qtbot, Qt.Key.Key_Down)
    assert axial.slice_index == start_axial and window.table.active_name() == "Heart"


def test_a_name_or_value_being_typed_keeps_its_keys(window, qtbot, shown):
    table, axial, brush = window.table, window.views["axial"], window.tools.tools["brush"]
    point_at(qtbot, axial, axial.rect().center())
    start = axial.slice_index
    _press(qtbot, Qt.Key.Key_BracketRight)  # the table has the focus: the key sizes the brush
    assert brush.setting("radius_mm") == pytest.approx(6.25)
    QTest.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=_name_cell(table, "Heart").center())
    editor = QApplication.focusWidget()  # renaming Heart in the table
    assert isinstance(editor, QLineEdit) and editor.text() == "Heart"
    _press(qtbot, Qt.Key.Key_End, Qt.Key.Key_BracketRight, Qt.Key.Key_Minus, Qt.Key.Key_R)
    assert editor.text() == "Heart]-r" and QApplication.focusWidget() is editor
    assert brush.setting("radius_mm") == pytest.approx(6.25) and axial.zoom == 1.0
    _press(qtbot, Qt.Key.Key_Escape)
    assert table.active_name() == "Heart"
    box = window.docks.tool_pages["brush"].radius_box  # the brush's size, typed
    box.setFocus()
    _press(qtbot, Qt.Key.Key_Up, Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_BracketRight)
    assert box.value() > 6.25 and brush.setting("radius_mm") == pytest.approx(box.value())
    assert axial.slice_index == start and table.active_name() == "Heart"
