"""Locking a structure in the real window: the padlock, every tool and command refused over it with
a message naming it, a job's result into a structure locked meanwhile calmly not applied, undo
refused until it is unlocked, and sessions keeping the lock."""

import numpy as np
import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QAbstractItemView
from support.app import click, close_window, drag, make_window, show_sample, wait_idle, widget_point

from workstation.app.structure_table import LOCK, NAME, TYPE, padlock

pytestmark = pytest.mark.gui


def _row(table, name):
    return next(
        r for r in range(table.rowCount()) if table.item(r, NAME).data(Qt.ItemDataRole.UserRole) == name
    )


def _click_padlock(table, name):
    rect = table.visualItemRect(table.item(_row(table, name), LOCK))
    click(table.viewport(), rect.center())


def _said(window):
    return window.statusBar().currentMessage()


def _unchanged(case):
    return {s.name: s.mask.full().tobytes() for s in case.structures}, len(case.history)


def test_a_click_on_the_padlock_locks_and_every_tool_is_refused_with_a_message(window, qtbot):
    case = show_sample(window)
    table, view = window.table, window.views["axial"]
    _click_padlock(table, "Heart")
    assert case.structures["Heart"].locked and table.active_name() == "Heart"
    icon = table.item(_row(table, "Heart"), LOCK).icon()
    assert icon.pixmap(16, 16).toImage() == padlock(True).pixmap(16, 16).toImage()
    assert "Click to unlock" in table.item(_row(table, "Heart"), LOCK).toolTip()
    assert "locked" in table.item(_row(table, "Heart"), NAME).toolTip()
    assert window.dirty  # the next autosave keeps it
    heart = case.structures["Heart"].mask.full()
    centre = np.argwhere(heart).mean(axis=0).round().astype(int)
    window.state.set_cursor(centre.tolist())
    assert heart[tuple(centre)] and view.slice_index == centre[0]
    before = _unchanged(case)
    for tool in ("brush", "eraser", "fill", "erase_region", "draw"):
        window.statusBar().clearMessage()
        window.tools.activate(tool)
        if tool == "draw":
            corners = [(centre[0], 5, 5), (centre[0], 5, 30), (centre[0], 30, 30)]
            drag(view, [widget_point(view, c) for c in corners])
        else:
            click(view, widget_point(view, centre))
        assert _said(window) == "Heart is locked: unlock it to edit", tool
        assert _unchanged(case) == before, tool
    # A click on the padlock again unlocks: the brush paints.
    _click_padlock(table, "Heart")
    assert not case.structures["Heart"].locked and _said(window) == "Heart unlocked"
    window.tools.activate("eraser")
    click(view, widget_point(view, centre))
    assert _unchanged(case)[1] == before[1] + 1


def test_seeded_delineation_into_an_empty_locked_structure_is_refused(window):
    case = show_sample(window)
    name = window.commands.add_structure("GTV_lesion")
    case.set_locked(name, True)
    before = _unchanged(case)
    view = window.views["axial"]
    window.tools.activate("seeded")
    click(view, widget_point(view, (view.slice_index, 64, 64)))
    assert _said(window) == f"{name} is locked: unlock it to edit"
    assert _unchanged(case) == before and not window.jobs.busy


def test_delete_rename_type_interpolate_and_margins_into_a_locked_structure_are_refused(window, qtbot):
    from workstation.app.derive_dialog import DeriveDialog

    case = show_sample(window)
    table = window.table
    table.select("Heart")
    window.commands.toggle_lock()  # Structures ▸ Lock / unlock structure (Ctrl+L)
    assert case.structures["Heart"].locked
    before = _unchanged(case)
    window.commands.delete_structure()
    assert _said(window) == "Heart is locked: unlock it to delete"
    row = _row(table, "Heart")
    for column, action in ((NAME, "rename"), (TYPE, "change its type")):
        index = table.model().index(row, column)
        assert not table.edit(index, QAbstractItemView.EditTrigger.DoubleClicked, None)
        assert _said(window) == f"Heart is locked: unlock it to {action}"
    table.item(row, NAME).setText("Coeur")  # what an editor would write back
    assert _said(window) == "Heart is locked: unlock it to rename"
    assert table.item(row, NAME).text() == "Heart"
    window.commands.interpolate()
    assert _said(window) == "Heart is locked: unlock it to edit" and not window.jobs.busy
    dialog = DeriveDialog(window)
    dialog.operation.setCurrentText("Expand (margin)")
    dialog.source_a.setCurrentText("GTV")
    dialog.output.setText("Heart")
    assert "Heart is locked: unlock it to edit" in dialog.warning.text() and not dialog.ok_button.isEnabled()
    assert _unchanged(case) == before and case.structures.names()[row] == "Heart"
    # Read as a source, it gives a margin as usual; the colour stays free.
    dialog.source_a.setCurrentText("Heart")
    dialog.output.setText("Heart_PRV")
    assert dialog.ok_button.isEnabled()
    dialog.compute()
    wait_idle(qtbot, window)
    assert case.structures["Heart_PRV"].mask.voxel_count > case.structures["Heart"].mask.voxel_count
    case.set_properties("Heart", color=(1, 2, 3))
    assert case.structures["Heart"].color == (1, 2, 3)


def test_undo_of_an_edit_of_a_structure_locked_since_is_refused_until_it_is_unlocked(window):
    case = show_sample(window)
    box = (slice(20, 21), slice(10, 20), slice(10, 20))
    case.edit_region("Paint Heart", "Heart", box, np.ones((1, 10, 10), bool))
    painted = case.structures["Heart"].mask.full()
    menu = window.table.context_menu("Heart")
    assert menu.actions()[0].text() == "Lock Heart"
    menu.actions()[0].trigger()
    assert case.structures["Heart"].locked
    window.undo()
    assert _said(window) == "Heart is locked: unlock it to undo “Paint Heart”"
    assert np.array_equal(case.structures["Heart"].mask.full(), painted) and case.history.can_undo
    assert window.table.context_menu("Heart").actions()[0].text() == "Unlock Heart"
    window.table.context_menu("Heart").actions()[0].trigger()
    window.undo()
    assert _said(window) == "Undid: Paint Heart" and not case.structures["Heart"].mask.region(box).all()


def test_rebuilding_derived_structures_leaves_a_locked_one_as_it_is(window, qtbot):
    from workstation.app.derive_dialog import DeriveDialog

    case = show_sample(window)
    dialog = DeriveDialog(window)
    dialog.operation.setCurrentText("Expand (margin)")
    dialog.source_a.setCurrentText("GTV")
    dialog.within.setCurrentIndex(0)
    dialog.output.setText("PTV")
    dialog.compute()
    wait_idle(qtbot, window)
    case.set_locked("PTV", True)
    approved = case.structures["PTV"].mask.full()
    gtv = case.structures["GTV"].mask
    case.edit_region("Grow GTV", "GTV", gtv.box, np.ones(gtv.array.shape, bool))
    qtbot.waitUntil(lambda: window.commands.stale == ["PTV"], timeout=10_000)
    window.commands.rebuild_stale()
    wait_idle(qtbot, window)
    assert np.array_equal(case.structures["PTV"].mask.full(), approved)
    assert _said(window) == "Not rebuilt, locked: PTV (unlock to rebuild)"


def test_rejecting_a_locked_auto_contour_is_refused(window, qtbot):
    case = show_sample(window)
    window.open_autoseg()
    dialog = window.autoseg_dialog
    dialog.run_button.click()
    wait_idle(qtbot, window)
    name = dialog.pending[0]
    case.set_locked(name, True)
    dialog.reject_all()
    assert _said(window) == f"{name} is locked: unlock it to delete" and name in case.structures
    assert len(dialog.pending) > 1  # none rejected
    number = case.structures[name].number
    dialog.reject_result(number)
    assert name in case.structures
    reject = next(a for a in window.table.context_menu(name).actions() if a.text().startswith("Reject"))
    reject.trigger()
    assert name in case.structures and _said(window) == f"{name} is locked: unlock it to delete"
    dialog.accept_result(number)  # approving it is no edit
    assert not case.structures[name].awaiting_review


def test_a_lock_is_kept_in_the_session(window, qtbot, tmp_path):
    case = show_sample(window)
    case.set_locked("SpinalCord", True)
    path = tmp_path / "locked.delineo"
    window.saving.save_session_to(path)
    wait_idle(qtbot, window)
    other = make_window(qtbot, tmp_path / "other.ini", tmp_path / "other-data")
    other.opening.open_path(path)
    wait_idle(qtbot, other)
    locked = [s.name for s in other.case.structures if s.locked]
    row = _row(other.table, "SpinalCord")
    icon = other.table.item(row, LOCK).icon().pixmap(16, 16).toImage()
    close_window(qtbot, other)
    assert locked == ["SpinalCord"] and icon == padlock(True).pixmap(16, 16).toImage()


def test_the_brush_outline_over_a_locked_structure_is_struck_through(window):
    from PyQt6.QtCore import QEvent, QPoint
    from support.app import grab, send_mouse

    case = show_sample(window)
    view = window.views["axial"]
    window.table.select("Heart")
    window.tools.activate("brush")
    window.tools.tools["brush"].set_setting("radius_mm", 30.0)
    centre = widget_point(view, (view.slice_index, 64, 64))
    reach = int(30.0 * view.px_per_mm() / 2)  # halfway out along the strike, up and to the right
    on_strike = centre + QPoint(reach, -reach)

    def pixel():
        send_mouse(view, QEvent.Type.MouseMove, centre, Qt.MouseButton.NoButton)
        return grab(view)[on_strike.y() - 1 : on_strike.y() + 2, on_strike.x()].astype(int).sum(axis=-1).max()

    free = pixel()
    case.set_locked("Heart", True)
    assert pixel() > free + 150  # the light strike across the image


def _start_interpolation(window, case):
    k = window.views["axial"].slice_index
    name = window.commands.add_structure("GTV_2")
    for z in (k, k + 6):
        case.edit_region(
            "draw", name, (slice(z, z + 1), slice(40, 60), slice(40, 60)), np.ones((1, 20, 20), bool)
        )
    window.commands.interpolate()
    return name, f"Interpolating {name}"


def _start_margin(window, case):
    from workstation.app.derive_dialog import DeriveDialog

    dialog = DeriveDialog(window)
    dialog.operation.setCurrentText("Expand (margin)")
    dialog.source_a.setCurrentText("GTV")
    dialog.output.setText("Heart")
    dialog.compute()
    return "Heart", "Computing Heart"


def _start_seeded(window, case):
    name = window.commands.add_structure("GTV_lesion")
    view = window.views["axial"]
    window.tools.activate("seeded")
    click(view, widget_point(view, (view.slice_index, 64, 64)))
    return name, "Seeded delineation"


@pytest.mark.parametrize("start", [_start_interpolation, _start_margin, _start_seeded])
def test_a_result_into_a_structure_locked_while_its_job_ran_is_calmly_not_applied(window, qtbot, start):
    from PyQt6.QtWidgets import QApplication, QMessageBox

    case = show_sample(window)
    name, title = start(window, case)
    assert window.jobs.busy
    case.set_locked(name, True)  # before the result arrives: it is delivered on the GUI thread
    before = _unchanged(case)
    wait_idle(qtbot, window)
    note = f"{title}: not applied, {name} was locked meanwhile"
    assert _unchanged(case) == before and _said(window) == note
    assert window.messages.item(window.messages.count() - 1).text().endswith(f"Warning: {note}")
    assert not window.jobs.errors
    assert not [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]


@pytest.mark.parametrize("tool", ["draw", "fill", "erase_region", "seeded"])
def test_the_other_tools_show_a_struck_through_sign_over_a_locked_structure(window, tool):
    from PyQt6.QtCore import QEvent, QPoint
    from support.app import grab, send_mouse

    from workstation.app.tools.base import LOCKED_SIGN_PX

    case = show_sample(window)
    view = window.views["axial"]
    # the seeded tool delineates into the selected structure only while it is empty
    name = window.commands.add_structure("GTV_lesion") if tool == "seeded" else "Heart"
    window.table.select(name)
    window.tools.activate(tool)
    centre = widget_point(view, (view.slice_index, 64, 64))
    reach = int(LOCKED_SIGN_PX / 2**0.5 / 2)  # halfway out along the strike, up and to the right
    on_strike = centre + QPoint(reach, -reach)

    def pixel():
        send_mouse(view, QEvent.Type.MouseMove, centre, Qt.MouseButton.NoButton)
        return grab(view)[on_strike.y() - 1 : on_strike.y() + 2, on_strike.x()].astype(int).sum(axis=-1).max()

    free = pixel()
    case.set_locked(name, True)
    assert pixel() > free + 150  # the light strike across the image
    case.set_locked(name, False)
    assert pixel() == free
