"""Contouring as a clinician does it, in the real window: closing a freehand outline where it
started, painting a hidden structure, re-interpolating after editing a key slice..."""

import numpy as np
import pytest
from PyQt6.QtCore import QPoint
from support.app import drag, show_sample, widget_point

pytestmark = pytest.mark.gui


def _dense(view, corners_zyx, steps: int = 8) -> list[QPoint]:
    """Widget points along the polyline through `corners_zyx`, `steps` per side."""
    points = [view.voxel_to_widget(np.asarray(c, float)) for c in corners_zyx]
    path = []
    for a, b in zip(points, points[1:], strict=False):
        for t in np.linspace(0.0, 1.0, steps, endpoint=False):
            path.append(QPoint(round(a.x() + (b.x() - a.x()) * t), round(a.y() + (b.y() - a.y()) * t)))
    path.append(QPoint(round(points[-1].x()), round(points[-1].y())))
    return path


@pytest.mark.parametrize("view_name", ["axial", "coronal"])
def test_a_freehand_outline_ending_where_it_started_is_closed_and_filled(window, view_name):
    """Drawing a closed loop by hand ends back at its start: the release lies within a click's
    reach of the press, yet it is a drag, and the outline is filled as one undo step."""
    case = show_sample(window)
    name = window.commands.add_structure("Loop")
    window.tools.activate("draw")
    view = window.views[view_name]
    k = view.slice_index
    centre = np.array([20, 64, 64], float)
    centre[view.orientation.normal_axis] = k
    corners = []
    for d_row, d_col in [(-8, -8), (-8, 8), (8, 8), (8, -8), (-8, -8)]:
        display = view.orientation.from_voxel(centre)
        corners.append(view.orientation.to_voxel(k, display[1] + d_row, display[2] + d_col))
    steps = len(case.history.commands)
    drag(view, _dense(view, corners))
    drawn = case.structures[name].mask.full()
    plane = view.orientation.slice_of(drawn, k)
    assert 15 * 15 <= plane.sum() <= 17 * 17
    assert np.argwhere(drawn)[:, view.orientation.normal_axis].tolist() == [k] * int(drawn.sum())
    assert len(case.history.commands) == steps + 1 and case.history.undo_text == f"Draw {name}"
    assert not window.tools.tools["draw"]._points  # nothing left half-drawn


@pytest.mark.parametrize("tool", ["brush", "draw", "fill"])
def test_editing_a_hidden_structure_shows_it(window, tool):
    """A structure hidden with its check box and still selected: the edit is made where the user
    sees it (the structure is shown again, its box checked, the user told) — never invisibly."""
    from PyQt6.QtCore import Qt

    from workstation.app.structure_table import NAME, VISIBLE

    case = show_sample(window)
    view = window.views["axial"]
    k = view.slice_index
    name = window.commands.add_structure("Hidden")
    case.edit_region("ring", name, (slice(k, k + 1), slice(40, 60), slice(40, 60)), _ring(20))
    case.set_visible(name, False)
    window.tools.activate(tool)
    if tool == "draw":
        drag(view, _dense(view, [(k, 80, 80), (k, 80, 100), (k, 100, 100), (k, 100, 80), (k, 80, 80)]))
    else:
        drag(view, [widget_point(view, (k, 50, 50))])
    assert case.structures[name].visible
    table = window.table
    rows = [r for r in range(table.rowCount()) if table.item(r, NAME).text() == name]
    assert [table.item(r, VISIBLE).checkState() for r in rows] == [Qt.CheckState.Checked]
    assert "hidden" in window.statusBar().currentMessage()
    assert case.structures[name].mask.full().sum() > _ring(20).sum()


def _ring(size: int) -> np.ndarray:
    ring = np.ones((1, size, size), bool)
    ring[:, 2:-2, 2:-2] = False
    return ring


def test_interpolating_again_after_enlarging_a_drawn_slice_follows_it(window, qtbot):
    """Draw two slices, interpolate, enlarge one drawn slice, interpolate again: the slices between
    grow with it (they were filled, not drawn). Interpolating with nothing to fill says so and
    adds no undo step."""
    from support.app import wait_idle

    case = show_sample(window)
    view = window.views["axial"]
    k = view.slice_index
    name = window.commands.add_structure("CTV")
    brush = window.tools.tools["brush"]
    brush.set_setting("radius_mm", 6.0)
    window.tools.activate("brush")
    drag(view, [widget_point(view, (k, 64, 64))])
    steps = len(case.history.commands)
    window.commands.interpolate()
    wait_idle(qtbot, window)
    assert (
        len(case.history.commands) == steps
        and "Nothing to interpolate" in window.statusBar().currentMessage()
    )

    window.state.set_cursor(np.array([k + 6, 64, 64]))
    drag(view, [widget_point(view, (k + 6, 64, 64))])
    window.commands.interpolate()
    wait_idle(qtbot, window)
    first = case.structures[name].mask.full()
    assert all(first[z].sum() == first[k].sum() for z in range(k, k + 7))
    window.commands.interpolate()
    wait_idle(qtbot, window)
    assert (
        case.history.undo_text == f"Interpolate {name}" and "already" in window.statusBar().currentMessage()
    )

    brush.set_setting("radius_mm", 14.0)
    drag(view, [widget_point(view, (k + 6, 64, 64))])
    window.commands.interpolate()
    wait_idle(qtbot, window)
    grown = case.structures[name].mask.full()
    areas = [int(grown[z].sum()) for z in range(k, k + 7)]
    assert areas == sorted(areas) and areas[0] < areas[3] < areas[6]
    assert np.array_equal(grown[k], first[k])
    window.undo()
    assert case.structures[name].mask.full()[k + 3].sum() == first[k + 3].sum()


def test_two_nodes_drawn_far_apart_are_interpolated_each_on_its_own(window, qtbot):
    """A GTVn drawn as two nodes (two slices each, far apart) became one tube between them."""
    from support.app import wait_idle

    case = show_sample(window)
    name = window.commands.add_structure("GTVn")
    square = np.ones((1, 8, 8), bool)
    for z in (2, 4, 30, 32):
        case.edit_region("draw", name, (slice(z, z + 1), slice(40, 48), slice(40, 48)), square)
    window.table.select(name)
    window.commands.interpolate()
    wait_idle(qtbot, window)
    drawn = np.flatnonzero(case.structures[name].mask.full().any(axis=(1, 2)))
    assert list(drawn) == [2, 3, 4, 30, 31, 32]
    spacing = case.grid.spacing_zyx[0]
    said = window.statusBar().currentMessage()
    assert f"not bridged, as separate parts: slices 5–31 ({26 * spacing:.0f} mm apart)" in said


def test_an_edit_made_while_interpolation_runs_is_not_overwritten(window, qtbot, monkeypatch):
    """A hole erased in a drawn slice while the worker interpolates (an edit in place, inside the
    structure's box): the interpolation read the structure before it, so it is not applied, and
    the erased hole stays."""
    import threading

    from support.app import wait_idle

    from workstation.app import services

    real, computed, edited = services.interpolate, threading.Event(), threading.Event()

    def interpolate_then_wait(*args, **kwargs):
        result = real(*args, **kwargs)  # read the mask before the user's edit
        computed.set()
        edited.wait(30)
        return result

    monkeypatch.setattr(services, "interpolate", interpolate_then_wait)
    case = show_sample(window)
    k = window.views["axial"].slice_index
    name = window.commands.add_structure("CTV")
    square = np.ones((1, 20, 20), bool)
    for z in (k, k + 6):
        case.edit_region("draw", name, (slice(z, z + 1), slice(40, 60), slice(40, 60)), square)
    window.table.select(name)
    window.commands.interpolate()
    assert computed.wait(30)
    case.edit_region(
        "erase", name, (slice(k, k + 1), slice(45, 55), slice(45, 55)), np.zeros((1, 10, 10), bool)
    )
    edited.set()
    wait_idle(qtbot, window)
    mask = case.structures[name].mask.full()
    assert not mask[k, 45:55, 45:55].any()  # the erased hole is still there
    assert not mask[k + 3].any()  # and the interpolation was not applied
    assert "changed during interpolation" in window.statusBar().currentMessage()


def test_renaming_a_source_keeps_the_margins_built_from_it(window, qtbot):
    """GTV → CTV (+5 mm) → PTV (+5 mm), then GTV renamed in the table: CTV reads the new name, is
    not stale, and still rebuilds after GTV is edited; undo puts the old name back everywhere."""
    from support.app import wait_idle

    from workstation.app import services
    from workstation.app.structure_table import NAME

    case = show_sample(window)
    for source, output in (("GTV", "CTV"), ("CTV", "PTV")):
        recipe = {"op": "expand", "source": source, "margins": 5.0}
        structure = services.derive(recipe, {s.name: s for s in case.structures}, name=output)
        case.derive_into(output, structure, f"Expand → {output}")
    table = window.table
    row = next(r for r in range(table.rowCount()) if table.item(r, NAME).text() == "GTV")
    table.item(row, NAME).setText("GTVp")
    assert "GTVp" in case.structures and case.structures["CTV"].recipe["source"] == "GTVp"
    assert "GTVp" in case.structures["CTV"].description and 'GTV"' not in case.structures["CTV"].description
    assert services.stale_structures(case.structures) == []

    k = window.views["axial"].slice_index
    case.edit_region("grow", "GTVp", (slice(k, k + 1), slice(0, 4), slice(0, 4)), np.ones((1, 4, 4), bool))
    window.commands.check_stale()
    wait_idle(qtbot, window)
    assert window.commands.stale == ["CTV", "PTV"]  # the PTV through the CTV
    window.commands.rebuild_stale()
    wait_idle(qtbot, window)
    assert case.structures["PTV"].mask.full()[k, 0, 0]  # rebuilt through CTV from the renamed GTVp
    for _ in range(3):  # the two rebuilds and the corner
        window.undo()
    window.undo()  # the rename
    assert "GTV" in case.structures and case.structures["CTV"].recipe["source"] == "GTV"


def test_a_seeded_click_into_a_hidden_empty_structure_shows_it(window, qtbot):
    """The seeded tool fills the selected structure when it is empty: hidden, it is shown."""
    from support.app import wait_idle

    case = show_sample(window)
    view = window.views["axial"]
    centre = np.argwhere(case.structures["GTV"].mask.full()).mean(axis=0).round().astype(int)
    window.state.set_cursor(centre)
    name = window.commands.add_structure("GTV_seed")
    case.set_visible(name, False)
    window.tools.activate("seeded")
    drag(view, [widget_point(view, centre)])
    wait_idle(qtbot, window)
    assert window.tools.tools["seeded"].target_name == name
    assert case.structures[name].visible and not case.structures[name].mask.is_empty


@pytest.mark.parametrize("tool", ["brush", "eraser"])
def test_the_brush_outline_shows_what_ctrl_makes_it_do(window, tool):
    """Ctrl swaps paint and erase: the outline under the pointer turns red for erasing, green for
    painting, before the press (as the stroke will do)."""
    from PyQt6.QtCore import QEvent, Qt
    from support.app import grab, send_mouse

    show_sample(window)
    window.commands.add_structure("Brushed")
    window.tools.activate(tool)
    window.tools.tools[tool].set_setting("radius_mm", 15.0)
    view = window.views["axial"]
    at = widget_point(view, (view.slice_index, 64, 64))
    red, green = np.array([255, 90, 90]), np.array([120, 255, 120])
    for ctrl in (False, True):
        modifiers = Qt.KeyboardModifier.ControlModifier if ctrl else Qt.KeyboardModifier.NoModifier
        send_mouse(view, QEvent.Type.MouseMove, at, Qt.MouseButton.NoButton, modifiers=modifiers)
        pixels = grab(view).reshape(-1, 3).astype(int)
        erasing = (tool == "eraser") != ctrl
        shown, other = (red, green) if erasing else (green, red)
        assert (np.abs(pixels - shown).max(axis=1) <= 8).sum() > 20  # the display may round colours
        assert (np.abs(pixels - other).max(axis=1) <= 8).sum() == 0


def test_duplicating_a_structure_copies_its_mask_as_one_undo_step(window, qtbot):
    """To start a CTV by hand from the GTV: Structures ▸ Duplicate structure."""
    case = show_sample(window)
    window.table.select("GTV")
    name = window.commands.duplicate_structure()
    assert name == "GTV_copy" and window.table.active_name() == "GTV_copy"
    copy, gtv = case.structures["GTV_copy"], case.structures["GTV"]
    assert np.array_equal(copy.mask.full(), gtv.mask.full()) and copy.roi_type == gtv.roi_type
    assert copy.color != gtv.color and copy.description == "Copy of GTV"
    case.structures.edit_mask("GTV_copy", copy.mask.box, np.zeros_like(copy.mask.array))
    assert gtv.mask.full().any()  # the copy's mask is its own
    assert window.menus.undo_action.text() == "&Undo Duplicate GTV"
    window.undo()
    assert "GTV_copy" not in case.structures


@pytest.mark.parametrize("key", ["brush", "fill"])
def test_the_value_range_takes_mr_intensities(window, key):
    """The range boxes stopped at 4000 'HU': an MR's brighter intensities could not be entered."""
    from PyQt6.QtWidgets import QCheckBox, QDoubleSpinBox

    tool = window.tools.tools[key]
    options = tool.options(window)
    low, high = (options.findChild(QDoubleSpinBox, key) for key in ("hu_min", "hu_max"))
    high.setValue(20000)
    low.setValue(-5000)
    assert (tool.setting("hu_min"), tool.setting("hu_max")) == (-5000, 20000)
    assert any("value range (HU on CT)" in box.text() for box in options.findChildren(QCheckBox))


def test_a_margin_reads_its_source_as_it_was_when_asked(window, qtbot, monkeypatch):
    """The worker read the live GTV: a brush stroke made while the margin was queued or running
    went into the CTV, half-applied or not, though the margin was asked of the GTV before it."""
    import threading

    from support.app import wait_idle

    from planning.margins import expand
    from workstation.app import services
    from workstation.app.derive_dialog import DeriveDialog

    real, edited = services.derive, threading.Event()

    def derive_after_the_edit(*args, **kwargs):
        edited.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "derive", derive_after_the_edit)
    case = show_sample(window)
    asked = case.structures["GTV"].mask.copy()
    dialog = DeriveDialog(window)
    dialog.operation.setCurrentText("Expand (margin)")
    dialog.source_a.setCurrentText("GTV")
    dialog.margin.setValue(5.0)
    dialog.output.setText("CTV")
    dialog.compute()
    box = asked.box  # erase the GTV's middle slice in place while the margin waits
    k = (box[0].start + box[0].stop) // 2
    plane = (slice(k, k + 1), box[1], box[2])
    case.edit_region("erase", "GTV", plane, np.zeros((1, *asked.full()[k].shape), bool)[:, box[1], box[2]])
    edited.set()
    wait_idle(qtbot, window)
    assert np.array_equal(case.structures["CTV"].mask.full(), expand(asked, 5.0).full())


def test_interpolating_again_after_reopening_the_session_still_follows_the_drawn_slices(
    window, qtbot, tmp_path
):
    """What interpolation filled is kept in the session: reopened, the filled slices are redone
    from the drawn ones, not taken for drawn ones."""
    from support.app import wait_idle

    case = show_sample(window)
    k = window.views["axial"].slice_index
    name = window.commands.add_structure("CTV")
    for z in (k, k + 6):
        case.edit_region(
            "draw", name, (slice(z, z + 1), slice(54, 74), slice(54, 74)), np.ones((1, 20, 20), bool)
        )
    window.table.select(name)
    window.commands.interpolate()
    wait_idle(qtbot, window)
    assert case.structures[name].mask.full()[k + 3].sum() == 400
    window.saving.save_session_to(tmp_path / "case.delineo")
    wait_idle(qtbot, window)
    window.opening.open_session(tmp_path / "case.delineo")
    wait_idle(qtbot, window)
    case = window.case
    big = np.ones((1, 40, 40), bool)
    case.edit_region("draw", name, (slice(k + 6, k + 7), slice(44, 84), slice(44, 84)), big)
    window.table.select(name)
    window.commands.interpolate()
    wait_idle(qtbot, window)
    areas = [int(case.structures[name].mask.full()[z].sum()) for z in range(k, k + 7)]
    assert areas[0] == 400 and areas[6] == 1600 and areas[0] < areas[3] < areas[6]


def test_interpolating_a_structure_drawn_in_the_sagittal_view_fills_between_its_sagittal_slices(
    window, qtbot
):
    """Brushed on three sagittal slices 6 apart, then interpolated: the 10 sagittal slices between
    are filled (and said so), one undo step; enlarging a drawn slice and interpolating again
    redoes the filled slices beside it only; undo gives back each state."""
    from support.app import wait_idle

    case = show_sample(window)
    view = window.views["sagittal"]
    k = view.slice_index
    name = window.commands.add_structure("SpinalCord")
    brush = window.tools.tools["brush"]
    brush.set_setting("radius_mm", 16.0)
    window.tools.activate("brush")
    for x in (k - 6, k, k + 6):
        window.state.set_cursor(np.array([20, 64, x]))
        drag(view, [widget_point(view, (20, 64, x))])
    drawn = case.structures[name].mask.full()
    assert np.flatnonzero(drawn.any(axis=(0, 1))).tolist() == [k - 6, k, k + 6]
    steps = len(case.history.commands)
    window.commands.interpolate()
    wait_idle(qtbot, window)
    assert (
        window.statusBar().currentMessage()
        == f"{name}: 10 sagittal slices interpolated between 3 drawn slices."
    )
    first = case.structures[name].mask.full()
    assert all(np.array_equal(first[:, :, x], drawn[:, :, k]) for x in range(k - 6, k + 7))
    assert not first[:, :, : k - 6].any() and not first[:, :, k + 7 :].any()
    assert len(case.history.commands) == steps + 1 and case.history.undo_text == f"Interpolate {name}"

    brush.set_setting("radius_mm", 28.0)
    drag(view, [widget_point(view, (20, 64, k + 6))])
    window.commands.interpolate()
    wait_idle(qtbot, window)
    again = case.structures[name].mask.full()
    areas = [int(again[:, :, x].sum()) for x in range(k, k + 7)]
    assert areas == sorted(areas) and areas[0] < areas[3] < areas[6]
    assert np.array_equal(again[:, :, : k + 1], first[:, :, : k + 1])  # the other gap is kept
    window.undo()
    assert np.array_equal(case.structures[name].mask.full()[:, :, : k + 6], first[:, :, : k + 6])
    window.undo()
    window.undo()
    assert np.array_equal(case.structures[name].mask.full(), drawn)


def test_a_structure_not_drawn_here_is_interpolated_across_its_gaps_or_the_user_is_asked(window, qtbot):
    """Edited without a view (as an import or a script does): slices drawn every 5th coronal
    plane are filled across y with no question; blocks apart in two directions make the window
    ask which, and cancelling the question changes nothing."""
    from support.app import wait_idle

    case = show_sample(window)
    name = window.commands.add_structure("Oesophagus")
    for y in (50, 55, 60):
        case.edit_region(
            "draw", name, (slice(10, 30), slice(y, y + 1), slice(60, 70)), np.ones((20, 1, 10), bool)
        )
    window.commands.interpolate()
    wait_idle(qtbot, window)
    assert (
        window.statusBar().currentMessage()
        == f"{name}: 8 coronal slices interpolated between 3 drawn slices."
    )
    assert case.structures[name].mask.full()[10:30, 50:61, 60:70].all()

    other = window.commands.add_structure("Nodes")
    for z, y in ((10, 40), (16, 80)):
        case.edit_region(
            "draw", other, (slice(z, z + 1), slice(y, y + 8), slice(40, 48)), np.ones((1, 8, 8), bool)
        )
    asked = []
    window.ask_interpolation_view = lambda name, views: asked.append((name, views))  # cancelled
    before = case.structures[other].mask.full()
    window.commands.interpolate()
    wait_idle(qtbot, window)
    assert asked == [(other, ["axial", "coronal"])]
    assert np.array_equal(case.structures[other].mask.full(), before)


def test_a_touch_up_in_another_view_does_not_turn_the_interpolation_across_it(window, qtbot):
    """Brushed on every 5th axial slice, then touched up once with the eraser in the coronal view
    (where it has no empty slices between drawn ones): interpolation still fills between the axial
    slices, and says so. With gaps in two other directions than the view it was last drawn in, the
    user is asked which."""
    from support.app import wait_idle

    case = show_sample(window)
    axial, coronal = window.views["axial"], window.views["coronal"]
    k = axial.slice_index
    name = window.commands.add_structure("Bladder")
    window.tools.tools["brush"].set_setting("radius_mm", 16.0)
    window.tools.activate("brush")
    for z in (k - 5, k, k + 5):
        window.state.set_cursor(np.array([z, 64, 64]))
        drag(axial, [widget_point(axial, (z, 64, 64))])
    y = coronal.slice_index
    eraser = window.tools.tools["eraser"]
    eraser.set_setting("radius_mm", 4.0)
    window.tools.activate("eraser")
    before = int(case.structures[name].mask.full().sum())
    drag(coronal, [widget_point(coronal, (k, y, 64))])
    drawn = case.structures[name].mask.full()
    assert 0 < int(drawn.sum()) < before  # the eraser took a little off, in the coronal view
    assert np.flatnonzero(drawn.any(axis=(1, 2))).tolist() == [k - 5, k, k + 5]
    window.commands.interpolate()
    wait_idle(qtbot, window)
    assert (
        window.statusBar().currentMessage() == f"{name}: 8 axial slices interpolated between 3 drawn slices."
    )
    filled = case.structures[name].mask.full()
    assert all(filled[z].any() for z in range(k - 5, k + 6))

    other = window.commands.add_structure("Nodes")
    for z, x in ((10, 40), (16, 80)):
        case.edit_region(
            "draw", other, (slice(z, z + 1), slice(60, 68), slice(x, x + 8)), np.ones((1, 8, 8), bool)
        )
    window.commands.note_drawing_view(coronal)  # a press in the coronal view, where it has no gaps
    asked = []
    window.ask_interpolation_view = lambda name, views: asked.append((name, views))  # cancelled
    window.commands.interpolate()
    wait_idle(qtbot, window)
    assert asked == [(other, ["axial", "sagittal"])]


def test_a_structure_drawn_on_sagittal_slices_is_interpolated_sagittally_after_reopening(
    window, qtbot, tmp_path
):
    """The view a structure was drawn in is kept in the session (and its autosave): brushed on
    two sagittal slices 12 apart, two spots on each far apart in z (so that it has empty slices
    between drawn ones across the axial view too), saved and reopened, it is interpolated between
    its sagittal slices without asking which direction; before, reopened, the window asked."""
    from support.app import wait_idle

    from planning.session import load_session

    case = show_sample(window)
    view = window.views["sagittal"]
    k = view.slice_index
    name = window.commands.add_structure("Nerve")
    number = case.structures[name].number
    window.tools.tools["brush"].set_setting("radius_mm", 4.0)
    window.tools.activate("brush")
    for x in (k - 6, k + 6):
        window.state.set_cursor(np.array([20, 64, x]))
        for z in (8, 30):
            drag(view, [widget_point(view, (z, 64, x))])
    drawn = case.structures[name].mask.full()
    assert np.flatnonzero(drawn.any(axis=(0, 1))).tolist() == [k - 6, k + 6]
    drawn_z = np.flatnonzero(drawn.any(axis=(1, 2)))
    assert drawn_z.min() < 12 and drawn_z.max() > 26 and not drawn[12:27].any()  # axial gaps too
    window.autosaver.save_now()
    wait_idle(qtbot, window)
    assert load_session(window.autosaver.path).drawn_in == {number: "sagittal"}

    window.saving.save_session_to(tmp_path / "case.delineo")
    wait_idle(qtbot, window)
    window.opening.open_session(tmp_path / "case.delineo")
    wait_idle(qtbot, window)
    case = window.case
    assert case.drawn_in == {number: "sagittal"}
    window.table.select(name)
    window.commands.interpolate()  # the window's question (which direction) fails the test
    wait_idle(qtbot, window)
    assert (
        window.statusBar().currentMessage()
        == f"{name}: 11 sagittal slices interpolated between 2 drawn slices."
    )
    filled = case.structures[name].mask.full()
    assert all(filled[:, :, x].any() for x in range(k - 6, k + 7))
    assert not filled[12:27].any()  # not across the axial slices


def test_a_seeded_delineation_s_doubts_are_shown(window, qtbot, monkeypatch):
    """What the delineation doubts (here: it reached the edge of the region searched) is said in
    the status bar, after the result is put in the structure."""
    from support.app import wait_idle

    from workstation.app import services

    delineate = services.seeded

    def doubting(*args, warnings=None, **kwargs):
        warnings.append("the lesion reaches the edge of the region searched")
        return delineate(*args, warnings=[], **kwargs)

    monkeypatch.setattr(services, "seeded", doubting)
    case = show_sample(window)
    view = window.views["axial"]
    centre = np.argwhere(case.structures["GTV"].mask.full()).mean(axis=0).round().astype(int)
    window.state.set_cursor(centre)
    window.tools.activate("seeded")
    drag(view, [widget_point(view, centre)])
    wait_idle(qtbot, window)
    assert not case.structures[window.tools.tools["seeded"].target_name].mask.is_empty
    assert "reaches the edge of the region searched" in window.statusBar().currentMessage()


@pytest.mark.parametrize("view_name", ["axial", "coronal"])
def test_a_polygon_through_voxel_centres_fills_the_area_drawn(window, view_name):
    """A polygon clicked at voxel centres (a 10 × 10-voxel square, a right triangle) fills the
    voxels an RTSTRUCT contour with the same vertices fills: centres inside, those on the outline
    on one side only. Every centre on the outline used to be filled, half a voxel beyond the line
    on every side: the square filled 11 × 11 voxels."""
    from PyQt6.QtCore import Qt

    from planning.rtstruct.contours import Loops, rasterize
    from workstation.app.slice_view import ViewEvent

    show_sample(window)
    view = window.views[view_name]
    k = view.slice_index
    tool = window.tools.tools["draw"]
    window.tools.activate("draw")
    for name, corners in (
        ("Square", [(10, 40), (10, 50), (20, 50), (20, 40)]),
        ("Wedge", [(10, 40), (10, 52), (22, 40)]),
    ):
        window.commands.add_structure(name)
        for row, col in corners:
            pos = view.display_to_widget(col + 0.5, row + 0.5)
            event = ViewEvent(
                view.orientation.to_voxel(k, row, col),
                k,
                row,
                col,
                pos,
                Qt.MouseButton.LeftButton,
                Qt.KeyboardModifier.NoModifier,
            )
            assert tool.press(view, event)
            tool.release(view, event)
        assert tool.key_pressed(view, Qt.Key.Key_Return)
        plane = view.orientation.slice_of(window.case.structures[name].mask.full(), k)
        outline = np.asarray([(col, row) for row, col in corners], float)
        filled, (_, row0, col0) = rasterize(Loops.from_list([outline], [0]), (1, *plane.shape))
        expected = np.zeros_like(plane)
        expected[row0 : row0 + filled.shape[1], col0 : col0 + filled.shape[2]] = filled[0]
        np.testing.assert_array_equal(plane, expected)
    square = view.orientation.slice_of(window.case.structures["Square"].mask.full(), k)
    assert square.sum() == 100 and square[10:20, 40:50].all()
