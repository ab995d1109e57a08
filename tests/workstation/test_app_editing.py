"""Contouring in the real window: every tool, one undo stack, remembered settings, the table."""

import numpy as np
import pytest
from PyQt6.QtCore import Qt
from support.app import click, drag, grab, make_window, show_sample, widget_point

from planning.structures import GenerationAlgorithm, RoiType

pytestmark = pytest.mark.gui


def _new_empty(window, name="Test"):
    created = window.commands.add_structure(name)
    assert window.table.active_name() == created
    return created


def _masks(case):
    return {s.name: s.mask.full() for s in case.structures}


def derive_in_dialog(window, qtbot, operation: str, source: str, output: str, **settings):
    """Fill the Margins and Booleans dialog (operation, structure A, `settings`: widget name →
    value, e.g. margin=3.0 or source_b="Lung_R"), nothing kept inside, OK; wait for the result."""
    from PyQt6.QtWidgets import QCheckBox, QComboBox
    from support.app import wait_idle

    from workstation.app.derive_dialog import DeriveDialog

    dialog = DeriveDialog(window)
    dialog.operation.setCurrentText(operation)
    dialog.source_a.setCurrentText(source)
    dialog.within.setCurrentIndex(0)
    for widget, value in settings.items():
        box = getattr(dialog, widget)
        if isinstance(box, QComboBox):
            box.setCurrentText(value)
        elif isinstance(box, QCheckBox):
            box.setChecked(value)
        else:
            box.setValue(value)
    dialog.output.setText(output)
    dialog.compute()
    wait_idle(qtbot, window)
    return dialog


def test_brush_2d_paints_a_disk_of_the_set_size_and_undo_restores(window):
    case = show_sample(window)
    before = _masks(case)
    name = _new_empty(window)
    window.tools.activate("brush")
    window.tools.tools["brush"].set_setting("radius_mm", 10.0)
    view = window.views["axial"]
    k = view.slice_index
    centre = np.array([k, 64, 84])  # inside the left lung, away from other outlines at any window size
    window.state.set_cursor([k, 100, 100])  # and away from the crosshair's lines
    point = widget_point(view, centre)
    before_pixel = grab(view)[point.y(), point.x()].astype(float)
    click(view, widget_point(view, centre))
    painted = case.structures[name].mask.full()
    assert painted.sum() > 0 and np.all(np.argwhere(painted)[:, 0] == k)  # 2D: one slice only
    area_mm2 = painted.sum() * case.grid.spacing_xyz[0] * case.grid.spacing_xyz[1]
    assert area_mm2 == pytest.approx(np.pi * 10.0**2, rel=0.15)
    # The painted voxels are drawn at once: a 25 % fill of the structure colour over the image.
    after_pixel = grab(view)[point.y(), point.x()].astype(float)
    expected = 0.75 * before_pixel + 0.25 * np.asarray(case.structures[name].color)
    assert np.abs(after_pixel - expected).max() <= 8  # 8-bit premultiplied rounding
    # A drag is one stroke and one undo step.
    steps = len(case.history.commands)
    drag(
        view,
        [widget_point(view, (k, 30, 30)), widget_point(view, (k, 30, 60)), widget_point(view, (k, 50, 60))],
    )
    assert len(case.history.commands) == steps + 1
    stroke = case.structures[name].mask.full()
    assert stroke[k, 30, 45] and stroke[k, 40, 60]  # continuous along the path
    window.undo()
    assert np.array_equal(case.structures[name].mask.full(), painted)
    window.redo()
    assert np.array_equal(case.structures[name].mask.full(), stroke)
    window.undo()
    window.undo()
    window.undo()  # the new structure itself
    assert _masks(case).keys() == before.keys()


def test_eraser_sphere_and_hu_limited_brush(window):
    case = show_sample(window)
    view = window.views["axial"]
    window.table.select("Heart")
    heart_before = case.structures["Heart"].mask.full()
    centre = np.argwhere(heart_before).mean(axis=0).round().astype(int)
    window.state.set_cursor(centre)
    eraser = window.tools.tools["eraser"]
    eraser.set_setting("radius_mm", 12.0)
    eraser.set_setting("sphere", True)
    window.tools.activate("eraser")
    click(view, widget_point(view, centre))
    removed = heart_before & ~case.structures["Heart"].mask.full()
    slices = np.unique(np.argwhere(removed)[:, 0])
    assert len(slices) > 1  # a sphere reaches the neighbouring slices
    volume_mm3 = removed.sum() * np.prod(case.grid.spacing_xyz)
    assert volume_mm3 == pytest.approx(4 / 3 * np.pi * 12.0**3, rel=0.25)
    assert case.structures["Heart"].algorithm == GenerationAlgorithm.MANUAL
    # Brush limited to an HU range paints only lung-density voxels.
    name = _new_empty(window, "LungPatch")
    brush = window.tools.tools["brush"]
    brush.set_setting("radius_mm", 30.0)
    brush.set_setting("sphere", False)
    brush.set_setting("hu_limit", True)
    brush.set_setting("hu_min", -1000)
    brush.set_setting("hu_max", -500)
    window.tools.activate("brush")
    lung_centre = np.argwhere(case.structures["Lung_R"].mask.full()).mean(axis=0).round().astype(int)
    window.state.set_cursor(lung_centre)
    click(view, widget_point(view, lung_centre))
    patch = case.structures[name].mask.full()
    assert patch.sum() > 100
    assert case.volume.array[patch].max() <= -500


def test_draw_polygon_fill_and_erase_piece(window, qtbot):
    case = show_sample(window)
    view = window.views["axial"]
    k = view.slice_index
    name = _new_empty(window, "Poly")
    window.tools.activate("draw")
    corners = [(k, 20, 20), (k, 20, 50), (k, 50, 50), (k, 50, 20)]
    for corner in corners:
        click(view, widget_point(view, corner))
    click(view, widget_point(view, corners[0]))  # clicking the first vertex closes the polygon
    square = case.structures[name].mask.full()
    # Voxel centres inside the polygon (clicks land within a pixel of the corner voxel centres).
    assert square[k, 21:50, 21:50].all() and 29 * 29 <= square[k].sum() <= 31 * 31
    assert not square[k, :19].any() and not square[k, 52:].any()
    # A freehand drag draws a ring outline with the brush; Fill fills its inside.
    ring_name = _new_empty(window, "Ring")
    brush = window.tools.tools["brush"]
    brush.set_setting("radius_mm", 2.0)
    brush.set_setting("hu_limit", False)
    brush.set_setting("sphere", False)
    window.tools.activate("brush")
    angles = np.linspace(0, 2 * np.pi, 60)
    path = [widget_point(view, (k, 90 + 15 * np.sin(a), 90 + 15 * np.cos(a))) for a in angles]
    drag(view, path)
    ring = case.structures[ring_name].mask.full()[k]
    assert not ring[90, 90]
    window.tools.activate("fill")
    click(view, widget_point(view, (k, 90, 90)))
    filled = case.structures[ring_name].mask.full()[k]
    assert filled[90, 90] and filled.sum() > ring.sum() + 300
    # Clicking outside the ring would leak to the border: nothing happens.
    click(view, widget_point(view, (k, 5, 5)))
    assert np.array_equal(case.structures[ring_name].mask.full()[k], filled)
    # Erase piece removes the clicked connected piece only.
    window.table.select(name)
    window.tools.activate("erase_region")
    case.edit_region(
        "second piece", name, (slice(k, k + 1), slice(60, 70), slice(60, 70)), np.ones((1, 10, 10), bool)
    )
    click(view, widget_point(view, (k, 30, 30)))
    left = case.structures[name].mask.full()
    assert left[k, 65, 65] and not left[k, 30, 30] and left.sum() == 100


def test_one_undo_stack_of_at_least_50_steps(window):
    case = show_sample(window)
    name = _new_empty(window, "Steps")
    view = window.views["axial"]
    k = view.slice_index
    window.tools.tools["brush"].set_setting("radius_mm", 2.0)
    window.tools.tools["brush"].set_setting("hu_limit", False)
    window.tools.activate("brush")
    states = [case.structures[name].mask.full()]
    for i in range(60):
        click(view, widget_point(view, (k, 10 + i, 10 + i)))
        states.append(case.structures[name].mask.full())
    case.set_properties(name, color=(10, 20, 30))
    window.undo()
    assert case.structures[name].color != (10, 20, 30)
    for i in range(55):
        window.undo()
        assert np.array_equal(case.structures[name].mask.full(), states[-2 - i])
    for _ in range(55):
        window.redo()
    assert np.array_equal(case.structures[name].mask.full(), states[-1])
    assert window.menus.undo_action.isEnabled() and window.menus.undo_action.text().startswith("&Undo Paint")


def test_tool_settings_are_remembered(qtbot, tmp_path):
    settings_path = tmp_path / "delineo.ini"
    first = make_window(qtbot, settings_path, tmp_path / "d1")
    first.tools.tools["brush"].set_setting("radius_mm", 7.5)
    first.tools.tools["eraser"].set_setting("sphere", True)
    first.settings.sync()
    first.close()
    second = make_window(qtbot, settings_path, tmp_path / "d2")
    assert second.tools.tools["brush"].setting("radius_mm") == pytest.approx(7.5)
    assert second.tools.tools["eraser"].setting("sphere") is True
    assert second.docks.tool_pages["brush"].radius_box.value() == pytest.approx(7.5)
    second.close()


def test_structure_table_edits_are_undoable(window, qtbot):
    case = show_sample(window)
    table = window.table
    names = [table.item(r, 2).text() for r in range(table.rowCount())]
    assert names == case.structures.names()
    qtbot.waitUntil(lambda: all(table.item(r, 4).text() != "…" for r in range(table.rowCount())))
    volumes = [float(table.item(r, 4).text()) for r in range(table.rowCount())]
    assert volumes == pytest.approx([s.volume_cc for s in case.structures], abs=0.01)
    row = names.index("GTV")
    table.item(row, 2).setText("GTV_Primary")
    assert "GTV_Primary" in case.structures and "GTV" not in case.structures
    table.item(row, 3).setText("CTV")
    assert case.structures["GTV_Primary"].roi_type == RoiType.CTV
    window.undo()
    window.undo()
    assert case.structures["GTV"].roi_type == RoiType.GTV
    assert table.item(row, 2).text() == "GTV"
    from workstation.app.structure_table import name_advice

    assert name_advice("Lung_L") == ""
    assert "Lung_L" in name_advice("Lung_Left")
    table.item(row, 0).setCheckState(Qt.CheckState.Unchecked)
    assert not case.structures["GTV"].visible
    # Deleting and undoing brings a structure back in its place.
    table.select("Heart")
    window.commands.delete_structure()
    assert "Heart" not in case.structures
    window.undo()
    assert case.structures.names().index("Heart") == names.index("Heart")


def test_derived_structure_is_marked_stale_and_rebuilt(window, qtbot):
    from support.app import wait_idle

    from workstation.app.derive_dialog import DeriveDialog

    case = show_sample(window)
    dialog = DeriveDialog(window)
    dialog.operation.setCurrentText("Expand (margin)")
    dialog.source_a.setCurrentText("GTV")
    dialog.margin.setValue(8.0)
    dialog.within.setCurrentText("Lung_R")
    dialog.output.setText("PTV")
    dialog.compute()
    wait_idle(qtbot, window)
    ptv = case.structures["PTV"]
    assert ptv.recipe["op"] == "expand" and "GTV" in ptv.description
    first = ptv.mask.full()
    assert not (first & ~case.structures["Lung_R"].mask.full()).any()
    assert first.sum() > case.structures["GTV"].mask.full().sum()
    # Editing the source marks the PTV stale; rebuilding follows the new GTV (one undo step).
    gtv = case.structures["GTV"].mask
    k = gtv.offset[0] + gtv.array.shape[0] // 2
    block = (slice(k, k + 1), slice(59, 63), slice(30, 34))  # in the right lung, beside the GTV
    case.edit_region("grow GTV", "GTV", block, np.ones((1, 4, 4), bool))
    qtbot.waitUntil(lambda: window.commands.stale == ["PTV"], timeout=20_000)
    assert window.table.item(case.structures.names().index("PTV"), 2).text().endswith("⟳")
    window.commands.rebuild_stale()
    wait_idle(qtbot, window)
    rebuilt = case.structures["PTV"].mask.full()
    assert rebuilt[block].all() and (rebuilt & ~first).sum() > 16
    qtbot.waitUntil(lambda: window.commands.stale == [], timeout=20_000)
    window.undo()
    assert np.array_equal(case.structures["PTV"].mask.full(), first)


def test_a_margin_cut_where_the_images_end_is_said_in_the_status_bar(window, qtbot):
    """The cut went only to Messages; the status bar kept an older message."""
    from support.app import expand_in_dialog

    case = show_sample(window)
    last = case.grid.shape[0] - 1
    name = window.commands.add_structure("GTVp")
    case.edit_region(
        "draw", name, (slice(last - 2, last + 1), slice(60, 70), slice(60, 70)), np.ones((3, 10, 10), bool)
    )
    expand_in_dialog(qtbot, window, name, 10.0, "PTVp")
    said = window.statusBar().currentMessage()
    assert said.startswith("PTVp: expansion by") and "reaches the edge of the images" in said


def test_a_derived_structure_edited_by_hand_is_not_rebuilt_over_the_edit(window, qtbot):
    """A PTV trimmed with the eraser kept its recipe: after a touch-up of its GTV, Rebuild (which
    the status bar suggests) put the 160 trimmed voxels back without a word, and the file said
    "Derived: CTV + 5 mm" of a PTV drawn by hand."""
    from support.app import expand_in_dialog, wait_idle

    case = show_sample(window)
    expand_in_dialog(qtbot, window, "GTV", 8.0, "PTV")
    ptv = case.structures["PTV"]
    derived_description = ptv.description
    planes, rows, columns = ptv.mask.box
    middle = (planes.start + planes.stop) // 2
    box = (slice(middle, middle + 1), rows, columns)  # one plane trimmed by hand
    case.edit_region(
        "Erase PTV", "PTV", box, np.zeros((1, rows.stop - rows.start, columns.stop - columns.start), bool)
    )
    assert ptv.recipe is None and ptv.description.endswith("then edited by hand")
    assert "delineo-recipe" not in ptv.description  # read back, it is not derived again
    gtv = case.structures["GTV"].mask
    k = gtv.offset[0] + gtv.array.shape[0] // 2
    case.edit_region(
        "grow GTV", "GTV", (slice(k, k + 1), slice(59, 63), slice(30, 34)), np.ones((1, 4, 4), bool)
    )
    wait_idle(qtbot, window)
    window.commands.rebuild_stale()  # as the status bar suggests after a source's edit
    wait_idle(qtbot, window)
    assert window.commands.stale == [] and not ptv.mask.region(box).any()
    window.undo()  # the GTV touch-up
    window.undo()  # the trim: the PTV is derived again
    assert ptv.recipe is not None and ptv.description == derived_description


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("Subtract A − B", lambda a, b: a & ~b),
        ("Union A ∪ B", lambda a, b: a | b),
        ("Intersection A ∩ B", lambda a, b: a & b),
        ("XOR A ⊕ B", lambda a, b: a ^ b),
    ],
)
def test_booleans_from_the_dialog(window, qtbot, operation, expected):
    from support.app import wait_idle

    from workstation.app.derive_dialog import DeriveDialog

    case = show_sample(window)
    heart = case.structures["Heart"].mask.full()
    # A test ball overlapping the heart.
    ball = np.zeros(case.grid.shape, bool)
    centre = np.argwhere(heart).mean(axis=0).astype(int)
    ball[tuple(slice(c - 4, c + 6) for c in centre)] = True
    from planning.structures import Mask

    case.new_structure("Ball", mask=Mask.from_full(case.grid, ball))
    dialog = DeriveDialog(window)
    dialog.operation.setCurrentText(operation)
    dialog.source_a.setCurrentText("Heart")
    dialog.source_b.setCurrentText("Ball")
    dialog.within.setCurrentIndex(0)
    dialog.output.setText("Result")
    dialog.compute()
    wait_idle(qtbot, window)
    assert np.array_equal(case.structures["Result"].mask.full(), expected(heart, ball))


@pytest.mark.parametrize("operation", ["Crop A away from B (+ margin)", "Crop A to inside B (− margin)"])
def test_crops_with_a_margin_from_the_dialog(window, qtbot, operation):
    """ "PTV 5 mm clear of the rectum" and "PTV 3 mm inside the skin": A less B grown by the
    margin, or A within B shrunk by it; the recipe is kept, so they can be rebuilt."""
    from planning.margins import expand, shrink

    case = show_sample(window)
    heart, body, lung = (case.structures[n].mask for n in ("Heart", "External", "Lung_R"))
    other = "External" if "inside" in operation else "Lung_R"
    derive_in_dialog(window, qtbot, operation, "Heart", "Result", source_b=other, margin=3.0)
    result = case.structures["Result"]
    if "inside" in operation:
        expected = heart.full() & shrink(body, 3.0).full()
        assert result.recipe["sources"][1] == {"op": "shrink", "source": "External", "margins": 3.0}
    else:
        expected = heart.full() & ~expand(lung, 3.0).full()
        assert result.recipe["minus"] == [{"op": "expand", "source": "Lung_R", "margins": 3.0}]
    assert np.array_equal(result.mask.full(), expected)
    assert 0 < expected.sum() < heart.full().sum() or "inside" in operation


def test_keep_pieces_and_per_slice_fill_from_the_dialog(window, qtbot):
    from planning.booleans import fill_holes, keep_largest
    from planning.structures import Mask

    case = show_sample(window)
    blobs = np.zeros(case.grid.shape, bool)
    blobs[10:20, 20:40, 20:40] = True  # the largest piece, with a hole open to the slices above
    blobs[10:20, 28:32, 28:32] = False
    blobs[10:14, 60:70, 60:70] = True  # second
    blobs[30:32, 90:94, 90:94] = True  # third
    case.new_structure("Blobs", mask=Mask.from_full(case.grid, blobs))
    derive_in_dialog(window, qtbot, "Keep the largest pieces", "Blobs", "Two", pieces=2)
    derive_in_dialog(window, qtbot, "Fill holes", "Blobs", "Filled", per_slice=True)
    source = case.structures["Blobs"].mask
    assert np.array_equal(case.structures["Two"].mask.full(), keep_largest(source, 2).full())
    assert case.structures["Two"].recipe["count"] == 2
    filled = case.structures["Filled"].mask.full()
    assert np.array_equal(filled, fill_holes(source, per_slice=True).full()) and filled[15, 30, 30]
    assert not fill_holes(source).full()[15, 30, 30]  # in 3D that hole is open: per slice matters


def test_brush_on_a_huge_structure_edits_once_at_the_end_of_the_stroke(window, monkeypatch):
    from planning.geometry import Grid
    from planning.session import ImageReference
    from planning.structures import Mask, Structure, StructureSet
    from planning.volume import Volume
    from workstation.app.case import Case
    from workstation.app.tools import brush as brush_module

    grid = Grid((40, 256, 256), (1.0, 1.0, 2.0))
    volume = Volume(np.zeros(grid.shape, np.int16), grid, "CT")
    structures = StructureSet(grid)
    body = np.zeros(grid.shape, bool)
    body[:, 20:236, 20:236] = True
    structures.add(Structure("Body", Mask.from_full(grid, body), roi_type="EXTERNAL"))
    case = Case(volume, structures, ImageReference.for_volume(volume, "file", ""))
    window.set_case(case)
    monkeypatch.setattr(brush_module, "LIVE_EDIT_VOXELS", 1_000_000)  # this body counts as huge
    window.table.select("Body")
    eraser = window.tools.tools["eraser"]
    eraser.set_setting("radius_mm", 6.0)
    eraser.set_setting("sphere", False)
    window.tools.activate("eraser")
    view = window.views["axial"]
    k = view.slice_index
    from PyQt6.QtCore import QEvent
    from support.app import send_mouse

    points = [widget_point(view, (k, 100, x)) for x in range(60, 180, 10)]
    send_mouse(view, QEvent.Type.MouseButtonPress, points[0])
    for point in points[1:]:
        send_mouse(
            view, QEvent.Type.MouseMove, point, Qt.MouseButton.NoButton, buttons=Qt.MouseButton.LeftButton
        )
    assert case.structures["Body"].mask.full()[k, 100, 100]  # not yet: the stroke is previewed
    preview = grab(view)
    send_mouse(view, QEvent.Type.MouseButtonRelease, points[-1])
    after = case.structures["Body"].mask.full()
    assert not after[k, 100, 60:170].any() and after[k, 90, 100] and after[k, 110, 100]
    assert len(case.history.commands) == 1 and case.history.undo_text == "Erase Body"
    spot = widget_point(view, (k, 100, 120))
    assert preview[spot.y(), spot.x()][0] > preview[spot.y(), spot.x()][2]  # the red eraser trail
    window.undo()
    assert np.array_equal(case.structures["Body"].mask.full(), body)


def test_the_dialog_says_what_ok_will_replace_and_follows_the_margin(window):
    from workstation.app.derive_dialog import DeriveDialog

    show_sample(window)
    dialog = DeriveDialog(window)
    dialog.operation.setCurrentText("Expand (margin)")
    dialog.source_a.setCurrentText("Bone")
    dialog.margin.setValue(3.0)
    assert dialog.output_name() == "Bone_PRV03" and dialog.warning.text() == ""  # follows the margin
    dialog.output.setText("GTV")
    assert dialog.warning.text().startswith("GTV exists: its contours will be replaced")
    dialog.output.setText("Bone")
    assert "as a one-off edit (it reads Bone itself, so it keeps no recipe)" in dialog.warning.text()
    dialog.operation.setCurrentText("Ring")
    dialog.inner.setValue(10.0)
    dialog.outer.setValue(5.0)
    assert not dialog.ok_button.isEnabled() and "outer distance beyond its inner" in dialog.warning.text()
    dialog.outer.setValue(15.0)
    assert dialog.ok_button.isEnabled()


def test_rebuilding_a_structure_whose_source_was_deleted_says_so():
    from planning.derived import derive
    from planning.errors import DelineoError
    from planning.geometry import Grid
    from planning.structures import Mask, Structure, StructureSet
    from workstation.app import services

    grid = Grid((10, 20, 20), (1.0, 1.0, 2.0))
    full = np.zeros(grid.shape, bool)
    full[3:6, 5:10, 5:10] = True
    structure_set = StructureSet(grid)
    structure_set.add(Structure("CTV", Mask.from_full(grid, full)))
    structure_set.add(derive({"op": "expand", "source": "CTV", "margins": 2}, structure_set, name="PTV"))
    structure_set.remove("CTV")
    with pytest.raises(
        DelineoError, match="PTV cannot be rebuilt: it is derived from CTV, which the case no"
    ):
        services.rebuild(structure_set, ["PTV"])


def test_a_result_that_leaves_nothing_is_said_to_be_empty(window, qtbot):
    case = show_sample(window)
    derive_in_dialog(window, qtbot, "Shrink (margin)", "GTV", "Nothing", margin=60.0)
    assert case.structures["Nothing"].mask.is_empty
    assert "Nothing is empty" in window.statusBar().currentMessage()


def test_a_long_structure_name_stays_on_one_line_and_whole_in_its_tooltip(window):
    case = show_sample(window)
    name = "Tumor Bed Block with a long name"
    case.new_structure(name)
    table = window.table
    assert not table.wordWrap() and table.textElideMode() == Qt.TextElideMode.ElideMiddle
    row = next(r for r in range(table.rowCount()) if table.item(r, 2).data(Qt.ItemDataRole.UserRole) == name)
    assert table.item(row, 2).toolTip().splitlines()[0] == name


def test_the_radius_box_follows_the_bracket_keys(window):
    show_sample(window)
    window.tools.activate("brush")
    brush, view = window.tools.tools["brush"], window.views["axial"]
    box = window.docks.tool_pages["brush"].radius_box
    brush.set_setting("radius_mm", 5.0)
    for _ in range(3):
        assert brush.key_pressed(view, Qt.Key.Key_BracketRight)
    assert brush.setting("radius_mm") == pytest.approx(5.0 * 1.25**3)
    assert box.value() == pytest.approx(9.77)
    assert brush.setting("radius_mm") == pytest.approx(5.0 * 1.25**3)  # not rounded by the box
    brush.key_pressed(view, Qt.Key.Key_BracketLeft)
    assert box.value() == pytest.approx(7.81)
    box.setValue(3.0)  # and the box still sets the size
    assert brush.setting("radius_mm") == pytest.approx(3.0)


def test_a_new_derived_structure_gets_a_colour_told_apart_from_the_case(window, qtbot):
    from planning.tg263 import MIN_DELTA_E, delta_e, style_for

    case = show_sample(window)
    before = {s.name: s.color for s in case.structures}
    assert delta_e(style_for("PTV")[0], before["Lung_R"]) < MIN_DELTA_E  # the usual PTV blue
    derive_in_dialog(window, qtbot, "Expand (margin)", "GTV", "PTV", margin=5.0)
    colour = case.structures["PTV"].color
    assert min(delta_e(colour, c) for c in before.values()) >= MIN_DELTA_E
    assert {name: case.structures[name].color for name in before} == before  # the case's own stay
    derive_in_dialog(window, qtbot, "Expand (margin)", "GTV", "PTV", margin=7.0)
    assert case.structures["PTV"].color == colour  # an existing result keeps its colour


@pytest.mark.parametrize(
    "operation, shown",
    [
        ("Expand (margin)", {"margin", "per_direction"}),
        ("Ring", {"inner", "outer"}),
        ("Union A ∪ B", {"source_b"}),
        ("Crop A away from B (+ margin)", {"source_b", "margin", "per_direction"}),
        ("Fill holes", {"per_slice"}),
        ("Remove islands smaller than", {"island_cc"}),
        ("Keep the largest pieces", {"pieces"}),
    ],
)
def test_the_dialog_shows_only_the_fields_of_its_operation(window, operation, shown):
    from workstation.app.derive_dialog import DeriveDialog

    show_sample(window)
    dialog = DeriveDialog(window)
    dialog.operation.setCurrentText(operation)
    optional = ("source_b", "margin", "per_direction", "directions", "inner", "outer")
    optional += ("island_cc", "pieces", "per_slice")
    visible = {name for name in optional if dialog.form.isRowVisible(getattr(dialog, name))}
    assert visible == shown
    for always in (dialog.operation, dialog.source_a, dialog.within, dialog.output):
        assert dialog.form.isRowVisible(always)
    if "per_direction" in shown:
        dialog.per_direction.setChecked(True)
        assert dialog.form.isRowVisible(dialog.directions) and not dialog.margin.isEnabled()


def test_a_brush_stroke_leaves_the_table_row_and_the_other_views_alone_until_it_pauses(window, qtbot):
    case = show_sample(window)
    name = _new_empty(window)
    window.tools.activate("brush")
    window.tools.tools["brush"].set_setting("radius_mm", 5.0)
    view = window.views["axial"]
    k = view.slice_index
    row = case.structures.names().index(name)
    emitted = []
    window.table.active_changed.connect(emitted.append)  # each one repaints every view whole
    drag(view, [widget_point(view, (k, 30, 30 + step)) for step in range(0, 40, 4)])
    assert emitted == [] and window.table.item(row, 4).text() == "…"  # not counted yet, not 0.00
    qtbot.waitUntil(lambda: window.table.item(row, 4).text() != "…", timeout=2000)
    assert float(window.table.item(row, 4).text()) == pytest.approx(case.structures[name].volume_cc, abs=0.01)


def test_a_new_structure_does_not_take_a_colour_already_in_the_case(window):
    from planning.tg263 import delta_e, style_for

    case = show_sample(window)
    case.set_properties("Heart", color=style_for("PTV")[0])  # a structure already in that colour
    added = case.new_structure("PTV")
    assert min(delta_e(added.color, s.color) for s in case.structures if s is not added) >= 20
    assert case.new_structure("Mine", color=(1, 2, 3)).color == (1, 2, 3)  # a chosen colour stays
