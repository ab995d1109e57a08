"""The 2D views of the real main window: orientation, overlays, window/level, navigation."""

import numpy as np
import pytest
from PyQt6.QtCore import QPoint, Qt
from support.app import (
    click,
    colour_near,
    drag,
    grab,
    on_screen,
    point_at,
    show_sample,
    wait_idle,
    wheel,
    widget_point,
)
from support.data import data_path

from planning.geometry import Grid
from planning.session import ImageReference
from planning.structures import Mask, Structure, StructureSet
from planning.volume import Volume
from workstation.app.case import Case
from workstation.app.windowing import PRESETS, Window

pytestmark = pytest.mark.gui


def _centroid(mask_full: np.ndarray) -> np.ndarray:
    return np.argwhere(mask_full).mean(axis=0)


def test_radiological_orientation_of_all_views(window):
    case = show_sample(window)
    gtv = case.structures["GTV"].mask.full()
    centre = _centroid(gtv)  # the tumour is in the patient's right lung, superior of the centre
    window.state.set_cursor(centre)
    axial, coronal, sagittal = (window.views[v] for v in ("axial", "coronal", "sagittal"))
    assert axial.orientation.labels == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert coronal.orientation.labels == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert sagittal.orientation.labels == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    # Patient right (x < 0 in LPS) is drawn on the left of the axial and coronal views.
    point = case.grid.index_to_patient(centre[::-1])
    assert point[0] < 0
    for view in (axial, coronal):
        assert widget_point(view, centre).x() < view.width() / 2 - 10
    # Superior (z > 0) is drawn in the upper half of the coronal and sagittal views.
    assert point[2] > 0
    for view in (coronal, sagittal):
        assert widget_point(view, centre).y() < view.height() / 2
    # The heart is anterior (y < 0): upper half of the axial view, left half of the sagittal.
    heart = _centroid(case.structures["Heart"].mask.full())
    window.state.set_cursor(heart)
    assert widget_point(axial, heart).y() < axial.height() / 2
    assert widget_point(sagittal, heart).x() < sagittal.width() / 2


def test_gtv_outline_is_drawn_where_the_gtv_is(window, qtbot):
    window.opening.open_folder(data_path("dicom", "ibsi1-lung-ct"))
    wait_idle(qtbot, window)
    case = window.case
    assert case is not None and "GTV-1" in case.structures
    gtv = case.structures["GTV-1"]
    view = window.views["axial"]
    k = window.views["axial"].slice_index
    plane = gtv.mask.slice_z(k)
    assert plane.any(), "the window starts on the target"
    image = grab(view)
    colour = gtv.color
    # Voxels on the GTV's boundary have its outline drawn within 2 px ...
    edge = plane & ~np.pad(plane, 1)[2:, 1:-1] | plane & ~np.pad(plane, 1)[:-2, 1:-1]
    edge_points = np.argwhere(edge)[::7]
    hits = [colour_near(image, widget_point(view, (k, r, c)), colour) for r, c in edge_points]
    assert np.mean(hits) > 0.95
    # ... and nowhere far from it: no GTV-coloured pixels 10 voxels outside.
    from scipy import ndimage

    far = ~ndimage.binary_dilation(plane, iterations=10)
    far_points = np.argwhere(far)[::97]
    misses = [
        colour_near(image, widget_point(view, (k, r, c)), colour, radius=0, tolerance=30)
        for r, c in far_points
    ]
    assert not any(misses)
    # Hiding the structure removes its outline.
    case.set_visible("GTV-1", False)
    image = grab(view)
    hits = [colour_near(image, widget_point(view, (k, r, c)), colour, tolerance=30) for r, c in edge_points]
    assert np.mean(hits) < 0.2


def test_window_level_changes_the_pixels(window):
    case = show_sample(window)
    view = window.views["axial"]
    for name in case.structures.names():
        case.set_visible(name, False)
    window.state.set_cursor(_centroid(case.structures["Lung_R"].mask.full()))
    lung = widget_point(view, _centroid(case.structures["Lung_R"].mask.full()))
    window.set_preset("Soft tissue")
    soft = grab(view)[lung.y(), lung.x()].astype(int)
    window.set_preset("Lung")
    lung_window = grab(view)[lung.y(), lung.x()].astype(int)
    # Lung (-840 HU) is black in a soft-tissue window and mid-grey in a lung window.
    assert soft.max() < 30
    assert 40 < lung_window.mean() < 160
    assert window.menus.preset_box.currentText() == "Lung"
    # Right-drag changes width and level.
    before = window.state.window
    drag(view, [QPoint(300, 300), QPoint(360, 330)], button=Qt.MouseButton.RightButton)
    after = window.state.window
    assert after.width > before.width and after.level > before.level
    assert window.menus.preset_box.currentText() == "Custom"


def test_every_window_preset_exists():
    assert set(PRESETS) == {"Soft tissue", "Lung", "Bone", "Brain", "Liver", "Mediastinum"}
    assert Window(*PRESETS["Lung"]).low == -1350


def test_wheel_scroll_zoom_and_linked_crosshair(window):
    case = show_sample(window)
    axial, coronal = window.views["axial"], window.views["coronal"]
    start = axial.slice_index
    centre = QPoint(axial.width() // 2, axial.height() // 2)
    wheel(axial, centre, 3)
    assert axial.slice_index == start + 3
    wheel(axial, centre, -5)
    assert axial.slice_index == start - 2
    # Clicking in the axial view moves the coronal and sagittal slices there.
    target = np.array([axial.slice_index, 40, 90])
    click(axial, widget_point(axial, target))
    assert coronal.slice_index == 40 and window.views["sagittal"].slice_index == 90
    # Ctrl+wheel zooms about the pointer: the voxel under it stays under it.
    before = axial.widget_to_display(centre)
    wheel(axial, centre, 2, Qt.KeyboardModifier.ControlModifier)
    assert axial.zoom > 1.2
    assert np.allclose(axial.widget_to_display(centre), before, atol=1e-6)
    # Middle-drag pans.
    pan = axial.pan
    drag(axial, [QPoint(100, 100), QPoint(140, 120)], button=Qt.MouseButton.MiddleButton)
    assert (axial.pan - pan).x() == pytest.approx(40) and (axial.pan - pan).y() == pytest.approx(20)
    assert case is window.case


def test_hover_shows_hu_and_patient_coordinates(window):
    case = show_sample(window)
    view = window.views["axial"]
    zyx = np.array([view.slice_index, 64, 64])
    from PyQt6.QtCore import QEvent
    from support.app import send_mouse

    send_mouse(view, QEvent.Type.MouseMove, widget_point(view, zyx), Qt.MouseButton.NoButton)
    text = window.hover_label.text()
    hu = case.volume.array[tuple(zyx)]
    x, y, z = case.grid.index_to_patient(zyx[::-1].astype(float))
    assert text.startswith(f"{hu:g} HU")
    import re

    shown = [float(v) for v in re.search(r"x (\S+)\s+y (\S+)\s+z (\S+) mm", text).groups()]
    # Continuous position of the pointer: within half a voxel of the voxel's centre.
    assert np.allclose(shown, (x, y, z), atol=0.5 * max(case.grid.spacing_xyz) + 0.05)
    window.statusBar().showMessage("Undid: Paint")  # a message no longer hides the readout
    assert window.hover_label.isVisible() and window.hover_label.text() == text
    assert f"voxel ({zyx[2]}, {zyx[1]}, {zyx[0]})" in text


def test_the_hover_label_follows_structures_changed_under_a_still_pointer(window, tmp_path):
    """A seeded GTV filled under the pointer was left out of the structures the hover label lists
    until the mouse moved; so was a rename, or a structure hidden."""
    from PyQt6.QtCore import QEvent
    from support.app import send_mouse

    from planning.structures import Mask

    case = show_sample(window)
    view = window.views["axial"]
    gtv = case.structures["GTV"].mask.full()
    zyx = np.rint(_centroid(gtv)).astype(int)
    window.state.set_cursor(zyx)
    send_mouse(view, QEvent.Type.MouseMove, widget_point(view, zyx), Qt.MouseButton.NoButton)
    assert _hovered_in(window) == "External, GTV"
    name = window.commands.add_structure("GTV")  # a seeded click: an empty GTV_2, filled later
    case.replace_mask(f"Seeded delineation of {name}", name, Mask.from_full(case.grid, gtv))
    window.grab().save(str(tmp_path / "hover.png"))
    assert _hovered_in(window) == f"External, GTV, {name}"
    case.set_properties(name, "Rename", name="GTV_seeded")
    case.set_visible("External", False)
    assert _hovered_in(window) == "GTV, GTV_seeded"
    case.remove_structure("GTV")
    assert _hovered_in(window) == "GTV_seeded"


def _hovered_in(window) -> str:
    """The structures the hover label names, as written ("" for none)."""
    import re

    found = re.search(r"   in (.*?)   x ", window.hover_label.text())
    return found.group(1) if found else ""


def test_the_hover_label_names_the_structures_before_it_is_cut_at_1280_px(window):
    """At 1280 px the status bar cut the label after the coordinates and the voxel, so the
    structures under the pointer, listed last, were not seen: they now follow the value."""
    from PyQt6.QtCore import QEvent
    from support.app import send_mouse

    case = show_sample(window)
    window.resize(1280, 800)
    view = window.views["axial"]
    zyx = np.rint(_centroid(case.structures["GTV"].mask.full())).astype(int)
    window.state.set_cursor(zyx)
    send_mouse(view, QEvent.Type.MouseMove, widget_point(view, zyx), Qt.MouseButton.NoButton)
    label = window.hover_label
    text = label.text()
    named = text[: text.index("GTV") + len("GTV")]
    assert label.fontMetrics().horizontalAdvance(named) <= label.width()
    assert label.toolTip() == text  # all of it, where the window is narrower still


def test_maximise_one_view_and_restore(window, qtbot):
    show_sample(window)
    window.grid.maximise("coronal")
    assert window.grid.frames["coronal"].isVisible()
    assert not window.grid.frames["axial"].isVisible() and not window.grid.frames["3d"].isVisible()
    qtbot.waitUntil(lambda: window.views["coronal"].width() > 0.9 * window.grid.width())
    window.grid.toggle("coronal")
    assert all(frame.isVisible() for frame in window.grid.frames.values())


def test_each_2d_view_is_on_screen_and_under_the_pointer_over_it(window, qtbot):
    """The 3D view's native window lay over the axial view: the display showed the 3D view there,
    and the pointer over the axial view was over the 3D view (keys for the view under the mouse
    went nowhere). `grab` draws each widget by itself and could not see it."""
    show_sample(window)
    qtbot.waitUntil(window.view3d.is_ready, timeout=60_000)
    for view in window.views.values():
        assert np.abs(on_screen(view).astype(int) - grab(view)).mean() < 1.0, view.view
        point_at(qtbot, view, view.rect().center())
        assert not window.view3d.underMouse()


def test_true_geometry_anisotropic_and_oblique(window):
    # 2×1 mm pixels and 4 mm slices, rotated 30° about the patient's z axis.
    angle = np.radians(30)
    direction = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    grid = Grid((10, 40, 30), (2.0, 1.0, 4.0), (0, 0, 0), direction)
    volume = Volume(np.zeros(grid.shape, np.int16), grid, "CT")
    box = np.zeros(grid.shape, bool)
    box[3:7, 10:30, 5:25] = True
    structures = StructureSet(grid)
    structures.add(Structure("Box", Mask.from_full(grid, box)))
    window.set_case(Case(volume, structures, ImageReference.for_volume(volume, "file", "")))
    axial, coronal = window.views["axial"], window.views["coronal"]
    assert axial.orientation.oblique
    assert axial.orientation.labels["right"] == "LP"  # columns run 30° from left towards posterior
    # The box is 40 mm wide (20 columns × 2 mm) and 20 mm tall (20 rows × 1 mm) on screen.
    left, right = axial.voxel_to_widget((5, 20, 4.5)), axial.voxel_to_widget((5, 20, 24.5))
    top, bottom = axial.voxel_to_widget((5, 9.5, 15)), axial.voxel_to_widget((5, 29.5, 15))
    assert (right.x() - left.x()) / (bottom.y() - top.y()) == pytest.approx(2.0, rel=1e-6)
    # Coronal rows are 4 mm slices: a slice is 4× as tall as a 1 mm... column is 2 mm wide.
    o = coronal.orientation
    assert (o.row_mm, o.col_mm) == (4.0, 2.0)
    # Hover reports true patient coordinates (the rotation included).
    point = grid.index_to_patient(np.array([24.0, 29.0, 6.0]))
    assert point[1] == pytest.approx(24 * 2 * np.sin(angle) + 29 * np.cos(angle))


def test_dose_wash_follows_the_dose(window):
    from planning.dose import Dose

    case = show_sample(window)
    for name in case.structures.names():
        case.set_visible(name, False)
    # A dose grid twice as coarse, rising linearly from 0 Gy (patient right) to 60 Gy (left).
    grid = case.grid
    dose_grid = Grid((20, 64, 64), tuple(2 * s for s in grid.spacing_xyz), grid.origin_xyz, grid.direction)
    ramp = np.linspace(0, 60, 64, dtype=np.float32)
    dose = Dose(
        np.broadcast_to(ramp, dose_grid.shape).copy(),
        dose_grid,
        frame_of_reference_uid=case.volume.frame_of_reference_uid,
    )
    view = window.views["axial"]
    k = view.slice_index
    plain = grab(view)
    window.set_dose(dose)
    washed = grab(view)
    right, left = widget_point(view, (k, 64, 10)), widget_point(view, (k, 64, 120))
    low = washed[right.y(), right.x()].astype(int) - plain[right.y(), right.x()].astype(int)
    high = washed[left.y(), left.x()].astype(int) - plain[left.y(), left.x()].astype(int)
    assert np.abs(low).max() <= 2  # under 10 % of the maximum: not drawn
    assert high[0] > 40 and high[0] > high[2]  # near the maximum: red
    layer = window.dose_layer
    values = layer.values(view.orientation, k)
    x_mm = grid.index_to_patient(np.array([[c, 64.0, k] for c in (10.0, 120.0)]))[:, 0]
    expected = 60 * (x_mm - dose_grid.origin_xyz[0]) / (63 * dose_grid.spacing_xyz[0])
    assert values[64, [10, 120]] == pytest.approx(np.clip(expected, 0, 60), abs=0.5)
    window.menus.show_dose_action.setChecked(False)
    assert np.array_equal(grab(view), plain)


def test_what_is_odd_about_a_dose_is_said_with_it(window):
    from planning.dose import Dose

    case = show_sample(window)
    frame = case.volume.frame_of_reference_uid
    dose = Dose(np.ones(case.grid.shape, np.float32), case.grid, frame_of_reference_uid=frame)
    dose.warnings = ["RD.dcm: the dose of one beam (DoseSummationType BEAM), not of the whole plan"]
    window.set_dose(dose, "RD.dcm")
    assert window.dose_layer is not None
    assert "the dose of one beam" in window.statusBar().currentMessage()


def test_a_dose_of_another_frame_of_reference_is_refused(window):
    from planning.dose import Dose

    case = show_sample(window)
    dose = Dose(np.ones(case.grid.shape, np.float32), case.grid, frame_of_reference_uid="9.9.9")
    window.set_dose(dose, "RD.other.dcm")
    assert window.dose_layer is None
    message = window.statusBar().currentMessage()
    assert "RD.other.dcm is in frame of reference 9.9.9, the loaded images in" in message


def test_the_patient_panel_says_the_sample_patient_is_open(window, qtbot):
    window.opening.open_sample()
    qtbot.waitUntil(lambda: window.browser.topLevelItemCount() == 1, timeout=60_000)
    assert window.browser.topLevelItem(0).text(0).startswith("Sample patient")


def test_patient_browser_double_click_loads_series_with_its_rtstruct(window, qtbot):
    window.opening.open_folder(data_path("dicom", "ibsi1-lung-ct"), auto_load=False)
    wait_idle(qtbot, window)
    assert window.case is None
    browser = window.browser
    items = browser.series_items()
    assert len(items) == 1 and items[0].text(0).startswith("CT")
    rows = []
    for i in range(browser.topLevelItemCount()):
        top = browser.topLevelItem(i)
        rows.append(top)
        for j in range(top.childCount()):
            study = top.child(j)
            rows += [study.child(k) for k in range(study.childCount())]
    # RS.dcm beside the slices and its copy among them (same SOP Instance UID) are one object:
    # listed once (it was listed twice), the copy named in its tooltip
    structure_sets = [row for row in rows if row.text(0).startswith("RTSTRUCT")]
    assert len(structure_sets) == 1
    tip = structure_sets[0].toolTip(0)
    assert "/RS.dcm" in tip and "/DCM_RS_00060.dcm" in tip and "also in" in tip
    browser.scrollToItem(items[0])
    rect = browser.visualItemRect(items[0])
    qtbot.mousePress(browser.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseRelease(browser.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(browser.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    wait_idle(qtbot, window)
    assert window.case is not None and window.case.structures.names() == ["GTV-1"]
    assert str(data_path("dicom", "ibsi1-lung-ct").resolve()) in window.menus.recent()


def test_a_folder_of_several_series_says_in_the_views_how_to_open_one(window, qtbot, tmp_path):
    """A folder of several series opens none (the user chooses): the views said only "No image",
    the 3D view nothing. They now say how many series were found and that a double-click in the
    Patients list opens one, which it does; a folder whose one series opens at once leaves
    nothing to say."""
    from support.dicom_factory import ct_phantom, write_ct_series

    from workstation.app.slice_view import SliceView

    folder = tmp_path / "two"
    write_ct_series(folder / "a", ct_phantom((4, 16, 20)), series_description="first")
    write_ct_series(folder / "b", ct_phantom((4, 16, 20)), series_description="second")
    assert window.view3d.empty_text == "No image"  # the 3D view was a blank gradient
    window.opening.open_folder(folder)
    wait_idle(qtbot, window)
    assert window.case is None
    hint = "2 series found.\nDouble-click one in the Patients list to open it."
    assert window.view3d.empty_text == f"No image\n\n{hint}"
    window.view3d.resize(420, 300)
    image = window.view3d.render_image()
    rows, columns = image.shape[:2]
    middle = image[rows // 2 - 30 : rows // 2 + 30, columns // 4 : 3 * columns // 4].astype(float)
    assert middle.max() - middle.min() > 60  # the text, light on the dark gradient
    bare = SliceView("axial")  # what a view without a hint draws: "No image" alone
    for view in window.views.values():
        bare.resize(view.size())
        drawn = np.any(grab(view) != grab(bare), axis=(1, 2))
        assert drawn.any() and np.flatnonzero(drawn).min() > view.height() / 2  # under "No image"
        assert view.empty_hint == hint
    item = window.browser.series_items()[1]
    window.browser.scrollToItem(item)
    rect = window.browser.visualItemRect(item)
    for act in (qtbot.mousePress, qtbot.mouseRelease, qtbot.mouseDClick):  # a double-click as Qt sees one
        act(window.browser.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    wait_idle(qtbot, window)
    assert window.case is not None
    assert "No image" not in window.view3d.empty_text  # an image: what the 3D view waits for
    write_ct_series(tmp_path / "one", ct_phantom((4, 16, 20)))
    window.opening.open_folder(tmp_path / "one")
    wait_idle(qtbot, window)
    assert all(view.empty_hint == "" for view in [*window.views.values(), window.view3d])


def test_a_folder_dropped_on_the_window_opens(window, qtbot):
    from PyQt6.QtCore import QMimeData, QPointF, QUrl
    from PyQt6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(data_path("dicom", "ibsi1-lung-ct")))])
    event = QDropEvent(
        QPointF(200, 200),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    assert window.acceptDrops()
    window.dropEvent(event)  # Qt delivers drops only during a real drag; the handler is what we own
    wait_idle(qtbot, window)
    assert window.case is not None and window.case.volume.grid.shape == (60, 201, 204)


def test_no_two_actions_share_a_key_and_f1_sets_the_first_preset(window, qtbot):
    """An ambiguous key does nothing in Qt: F1 was both the Soft tissue preset and the help."""
    from PyQt6.QtGui import QAction
    from PyQt6.QtWidgets import QApplication

    show_sample(window)
    keys = [key.toString() for action in window.findChildren(QAction) for key in action.shortcuts()]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    window.set_preset("Lung")
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    qtbot.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_F1)
    assert window.menus.preset_box.currentText() == "Soft tissue"


def test_the_window_preset_box_stays_on_the_toolbar_at_1280_whatever_undo_names(window, qtbot, tmp_path):
    """At 1280 × 800, "Undo Expand → PTV_aniso" on the Undo button pushed the Window preset box
    into the toolbar's "››" overflow menu."""
    from PyQt6.QtWidgets import QToolBar

    from planning.structures import Structure

    window.resize(1280, 800)
    case = show_sample(window)
    box = window.menus.preset_box
    assert box.isVisible()
    case.add_structures([Structure("PTV_aniso", case.structures["GTV"].mask.copy())], "Expand → PTV_aniso")
    qtbot.wait(50)
    window.grab().save(str(tmp_path / "toolbar.png"))
    toolbar = window.findChild(QToolBar)
    assert box.isVisible() and toolbar.rect().contains(box.geometry())
    assert window.menus.undo_action.text() == "&Undo Expand → PTV_aniso"  # named in the Edit menu
    assert toolbar.widgetForAction(window.menus.undo_action).toolTip() == "Undo Expand → PTV_aniso"


def test_the_help_keeps_its_columns_at_1366_by_768(window, qtbot):
    """Help ▸ Mouse and keys wrapped its two-column lines to a 400-pixel box: columns ran together."""
    from PyQt6.QtGui import QFont, QFontMetrics
    from PyQt6.QtWidgets import QLabel

    from workstation.app.menus import HELP_TEXT

    window.resize(1366, 740)
    box = window.menus.show_help()
    qtbot.waitExposed(box)
    label = next(label for label in box.findChildren(QLabel) if "Ctrl+Shift+A" in label.text())
    fixed = QFontMetrics(QFont("monospace", label.font().pointSize()))
    longest = max(HELP_TEXT.splitlines(), key=len)
    assert label.width() >= fixed.horizontalAdvance(longest)
    assert label.height() <= (len(HELP_TEXT.splitlines()) + 3) * fixed.lineSpacing()
    assert box.frameGeometry().width() <= 1366
    box.close()


def test_the_help_names_every_key_of_the_menus_and_tools(window):
    """Help ▸ Mouse and keys, which the README says lists every key, left out Ctrl+N (add a
    structure), Ctrl+Shift+D (duplicate it), Ctrl+O and Ctrl+Q."""
    import re

    from PyQt6.QtGui import QAction

    from workstation.app.menus import HELP_TEXT

    text = HELP_TEXT.replace("F1–F6", "F1 F2 F3 F4 F5 F6")
    keys = {key.toString() for action in window.findChildren(QAction) for key in action.shortcuts()}
    missing = [key for key in keys if not re.search(rf"(?<![\w+]){re.escape(key)}(?![\w+])", text)]
    assert keys and not missing, missing
