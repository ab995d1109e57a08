"""The Surgery menu in the real window: minimum distance, margin map, virtual resection, 3D model
export, structure volume and surface area, 3D snapshot at a chosen size; on spheres with known
answers."""

from __future__ import annotations

import numpy as np
import pytest
from PyQt6.QtGui import QImage
from PyQt6.QtWidgets import QApplication
from support.app import wait_idle

from planning.geometry import Grid
from planning.measurements import vertex_areas
from planning.session import ImageReference
from planning.structures import Mask, RoiType, Structure, StructureSet
from planning.surfaces.mesh import Surface
from planning.volume import Volume
from workstation.app.case import Case
from workstation.view3d.overlays import FADED_OPACITY

pytestmark = pytest.mark.gui

#: 1 mm voxels; x 0..99, y 0..59, z 0..49 mm (LPS, origin at voxel 0)
GRID = Grid((50, 60, 100), (1.0, 1.0, 1.0))
LIVER, LIVER_R = np.array([35.0, 30.0, 25.0]), 20.0
GTV, GTV_R = np.array([40.0, 30.0, 25.0]), 6.0
KIDNEY, KIDNEY_R = np.array([75.0, 30.0, 25.0]), 8.0
VESSEL_X, VESSEL_R = 50.0, 3.0  # a vessel along z through (50, 30)


def _points() -> np.ndarray:
    z, y, x = np.indices(GRID.shape)
    return GRID.index_to_patient(np.stack([x, y, z], -1).reshape(-1, 3).astype(float)).reshape(*GRID.shape, 3)


POINTS = _points()


def _ball(centre, radius) -> np.ndarray:
    return np.linalg.norm(POINTS - centre, axis=-1) <= radius


def _vessel() -> np.ndarray:
    return np.hypot(POINTS[..., 0] - VESSEL_X, POINTS[..., 1] - 30.0) <= VESSEL_R


def show_spheres(window, liver=None) -> Case:
    """A case of a liver with a tumour and a vessel, and a kidney 12 mm from the liver; `liver`:
    another (z, y, x) mask for the liver."""
    structures = StructureSet(GRID, "1.2.3")
    for name, full, roi_type, color in (
        ("Liver", _ball(LIVER, LIVER_R) if liver is None else liver, RoiType.ORGAN, (160, 90, 60)),
        ("GTV", _ball(GTV, GTV_R), RoiType.GTV, (255, 0, 0)),
        ("Vessel", _vessel() & _ball(LIVER, 40.0), RoiType.ORGAN, (0, 90, 255)),
        ("Kidney_R", _ball(KIDNEY, KIDNEY_R), RoiType.ORGAN, (200, 150, 50)),
    ):
        structures.add(Structure(name, Mask.from_full(GRID, full), color, roi_type))
    return show_structures(window, structures)


def show_structures(window, structures: StructureSet) -> Case:
    """A case of `structures` on a blank image of `GRID`, shown in the window."""
    volume = Volume(np.zeros(GRID.shape, np.int16), GRID, "CT")
    case = Case(volume, structures, ImageReference.for_volume(volume, "file"))
    window.set_case(case)
    QApplication.processEvents()
    return case


def wait_3d(qtbot, window) -> None:
    wait_idle(qtbot, window)
    qtbot.waitUntil(window.view3d.is_ready, timeout=120_000)


def test_the_surgery_menu_offers_every_planning_tool(window):
    titles = [a.text().replace("&", "") for a in window.surgery.menu.actions() if a.text()]
    assert titles == [
        "Minimum distance…",
        "Margin map…",
        "Structure volume and surface area…",
        "Virtual resection…",
        "Export 3D models…",
        "3D snapshot…",
    ]
    assert not window.surgery.resection.isEnabled()  # no case yet
    show_spheres(window)
    assert all(a.isEnabled() for a in window.surgery.menu.actions() if a.text())


def test_minimum_distance_of_two_spheres_at_a_known_gap(window, qtbot):
    show_spheres(window)  # not waiting for the 3D view: the job builds the surfaces it needs
    window.surgery.distance.trigger()
    dialog = window.last_dialog
    assert dialog.windowTitle() == "Minimum distance"
    dialog.first.setCurrentText("Liver")
    dialog.second.setCurrentText("Kidney_R")
    seen = []
    window.view3d.measured.connect(lambda kind, value: seen.append((kind, value)))
    dialog.measure_button.click()
    wait_idle(qtbot, window)
    gap = np.linalg.norm(KIDNEY - LIVER) - LIVER_R - KIDNEY_R  # 12 mm
    assert seen == [("distance", pytest.approx(gap, abs=0.5))]  # drawn in the 3D view
    assert dialog.result.distance_mm == pytest.approx(gap, abs=0.5) and not dialog.result.overlapping
    text = f"Liver ↔ Kidney_R: {dialog.result.distance_mm:.1f} mm"
    assert dialog.note.text() == text
    assert text in window.statusBar().currentMessage() and window.messages.messages()[-1] == text
    # the closest points are drawn (a line between them) on the sphere surfaces, on the line of centres
    assert window.view3d._overlay
    assert np.linalg.norm(dialog.result.point_a - (LIVER + [LIVER_R, 0, 0])) < 1.5
    # touching or overlapping structures are said to be so
    wait_3d(qtbot, window)  # now from the 3D view's surfaces
    dialog.first.setCurrentText("GTV")
    dialog.second.setCurrentText("Liver")
    dialog.measure_button.click()
    wait_idle(qtbot, window)
    assert dialog.result.overlapping and "touch or overlap" in dialog.note.text()

    # the other structures are faded so that what lies inside shows; Clear shows them again
    def opacity(name):
        return window.view3d._actors[window.case.structures[name]].GetProperty().GetOpacity()

    assert opacity("Vessel") == pytest.approx(FADED_OPACITY) and opacity("Liver") == 1.0
    dialog.clear_button.click()
    assert opacity("Vessel") == 1.0 and not window.view3d._overlay


def test_a_distance_measured_before_an_edit_is_said_to_be_out_of_date(window, qtbot):
    case = show_spheres(window)
    window.surgery.distance.trigger()
    dialog = window.last_dialog
    dialog.first.setCurrentText("Liver")
    dialog.second.setCurrentText("Kidney_R")
    one_voxel = (slice(25, 26), slice(30, 31), slice(90, 91))  # a voxel 7 mm beyond the kidney
    dialog.measure_button.click()
    case.edit_region("Brush", "Kidney_R", one_voxel, np.ones((1, 1, 1), bool))  # while it measures
    wait_idle(qtbot, window)
    assert dialog.result is None and window.view3d.shown_distance is None
    assert dialog.note.text() == "Not shown: Kidney_R changed while it was measured. Measure again."
    dialog.measure_button.click()
    wait_idle(qtbot, window)
    shown = dialog.note.text()
    assert shown == f"Liver ↔ Kidney_R: {dialog.result.distance_mm:.1f} mm"
    case.set_visible("GTV", False)  # another structure, and no edit: still current
    assert dialog.note.text() == shown
    case.set_visible("Kidney_R", False)  # still current; the 3D view draws no line: said why
    assert dialog.note.text() == f"{shown}\nNot drawn: Kidney_R is hidden"
    case.edit_region("Eraser", "Kidney_R", one_voxel, np.zeros((1, 1, 1), bool))
    assert dialog.note.text() == f"{shown}: out of date, Kidney_R changed since. Measure again."


def test_a_distance_between_hidden_structures_says_why_no_line_is_drawn(window, qtbot):
    case = show_spheres(window)
    case.set_visible("Liver", False)
    case.set_visible("Kidney_R", False)
    window.surgery.distance.trigger()
    dialog = window.last_dialog
    dialog.first.setCurrentText("Liver")
    dialog.second.setCurrentText("Kidney_R")
    dialog.measure_button.click()
    wait_idle(qtbot, window)
    text = f"Liver ↔ Kidney_R: {dialog.result.distance_mm:.1f} mm"
    assert dialog.note.text() == f"{text}\nNot drawn: Liver and Kidney_R are hidden"
    assert not any(prop.GetVisibility() for prop in window.view3d._overlay)
    case.set_visible("Liver", True)
    assert dialog.note.text() == f"{text}\nNot drawn: Kidney_R is hidden"
    case.set_visible("Kidney_R", True)  # both show: the line is drawn
    assert dialog.note.text() == text and all(prop.GetVisibility() for prop in window.view3d._overlay)


def listed(box) -> list[str]:
    return [box.itemText(i) for i in range(box.count())]


def test_distance_and_margin_map_dialogs_follow_the_structures_while_open(window, qtbot):
    case = show_spheres(window)
    window.surgery.distance.trigger()
    distance = window.last_dialog
    window.surgery.margin_map.trigger()
    margins = window.last_dialog
    boxes = (distance.first, distance.second, margins.structure, margins.reference)
    distance.first.setCurrentText("Kidney_R")
    distance.second.setCurrentText("GTV")
    margins.structure.setCurrentText("Vessel")
    margins.reference.setCurrentText("Liver")
    spleen = case.new_structure("Spleen")  # empty: not offered until drawn
    assert all(listed(box) == ["Liver", "GTV", "Vessel", "Kidney_R"] for box in boxes)
    case.edit_region(
        "Brush", spleen.name, (slice(20, 30), slice(5, 15), slice(5, 15)), np.ones((10, 10, 10), bool)
    )
    assert all(listed(box) == ["Liver", "GTV", "Vessel", "Kidney_R", "Spleen"] for box in boxes)
    case.set_properties("Kidney_R", name="Kidney_L")  # renamed: still chosen, by its new name
    assert distance.first.currentText() == "Kidney_L" and "Kidney_R" not in listed(distance.second)
    case.remove_structure("GTV")  # deleted: no longer offered nor chosen
    assert "GTV" not in listed(distance.second) and distance.second.currentText() == ""
    # a resection's parts are offered at once; the choices still there are kept
    window.surgery.resection.trigger()
    resection = window.last_dialog
    resection.organ.setCurrentText("Liver")
    resection.method.setCurrentText("Plane through the crosshair")
    window.state.set_cursor((25, 30, 35))
    resection.resect_button.click()
    wait_idle(qtbot, window)
    assert all({"Liver_remnant", "Liver_resected"} <= set(listed(box)) for box in boxes)
    assert (margins.structure.currentText(), margins.reference.currentText()) == ("Vessel", "Liver")
    assert distance.first.currentText() == "Kidney_L"
    assert window.view3d.shown_distance is None


def test_the_resection_dialog_follows_the_structures_while_open(window):
    case = show_spheres(window)
    resection = window.surgery.open_resection()
    boxes = (resection.organ, resection.tumour, resection.inside)
    resection.organ.setCurrentText("Liver")
    resection.tumour.setCurrentText("Kidney_R")
    resection.inside.setCurrentText("Vessel")
    spleen = case.new_structure("Spleen")
    case.edit_region(
        "Brush", spleen.name, (slice(20, 30), slice(5, 15), slice(5, 15)), np.ones((10, 10, 10), bool)
    )
    assert all(listed(box) == ["Liver", "GTV", "Vessel", "Kidney_R", "Spleen"] for box in boxes)
    case.set_properties("Kidney_R", name="Kidney_L")  # renamed: still chosen, by its new name
    assert resection.tumour.currentText() == "Kidney_L" and "Kidney_R" not in listed(resection.organ)
    case.remove_structure("Vessel")  # deleted: no longer offered nor chosen
    assert all("Vessel" not in listed(box) for box in boxes) and resection.inside.currentText() == ""
    assert resection.organ.currentText() == "Liver"


def test_margin_map_colours_the_surface_and_clears(window, qtbot):
    show_spheres(window)
    wait_3d(qtbot, window)
    window.surgery.margin_map.trigger()
    dialog = window.last_dialog
    dialog.structure.setCurrentText("GTV")
    dialog.reference.setCurrentText("Kidney_R")
    dialog.max_mm.setValue(30.0)
    with qtbot.waitSignal(window.view3d.margin_map_shown, timeout=60_000):
        dialog.show_button.click()
    values = window.view3d.margin_values("GTV")
    gap = np.linalg.norm(KIDNEY - GTV) - GTV_R - KIDNEY_R  # 21 mm
    assert values is not None and values.min() == pytest.approx(gap, abs=1.0)  # at vertices
    assert f"nearest point {values.min():.1f} mm from Kidney_R" in dialog.note.text()
    assert "% of its surface area within 30 mm" in dialog.note.text()
    dialog.clear_button.click()
    assert window.view3d.margin_values("GTV") is None


def test_the_margin_map_summary_gives_the_share_of_the_area_not_of_the_points():
    """A 20 × 10 mm strip: its left half in 1 mm squares (121 points), its right half in 11
    triangles fanning from its far side (2 more points). The 11 columns of points within
    10.5 mm of x = 0 stand for 150 of its 200 mm²: 75 % of the area, 98 % of the points."""
    from workstation.app.distance_dialogs import describe_margins

    lattice = [[x, y, 0.0] for x in range(11) for y in range(11)]  # point 11 x + y
    squares = [
        (11 * x + y, 11 * (x + 1) + y, 11 * (x + 1) + y + 1, 11 * x + y + 1)
        for x in range(10)
        for y in range(10)
    ]
    left = [t for a, b, c, d in squares for t in ((a, b, c), (a, c, d))]
    edge = [110 + y for y in range(11)]  # the column x = 10
    right = [(121, edge[y + 1], edge[y]) for y in range(10)] + [(121, 122, edge[10])]
    strip = Surface("Strip", [*lattice, [20.0, 0.0, 0.0], [20.0, 10.0, 0.0]], left + right)
    values = strip.points[:, 0]  # mm from the plane x = 0
    text = describe_margins("Strip", "Wall", 10.5, values, vertex_areas(strip))
    assert text == "Strip touches or enters Wall; 75 % of its surface area within 10.5 mm"


def test_a_margin_map_follows_its_structure_renamed_when_cleared_or_closed(window, qtbot):
    case = show_spheres(window)
    wait_3d(qtbot, window)
    view = window.view3d
    for end in ("clear", "close"):
        window.surgery.margin_map.trigger()
        dialog = window.last_dialog
        dialog.structure.setCurrentText("GTV")
        dialog.reference.setCurrentText("Kidney_R")
        with qtbot.waitSignal(view.margin_map_shown, timeout=60_000):
            dialog.show_button.click()
        case.set_properties("GTV", name="GTVp")
        assert view.margin_values("GTVp") is not None and scalar_bars(view) == 1
        dialog.clear_button.click() if end == "clear" else dialog.close()
        assert view.margin_values("GTVp") is None and scalar_bars(view) == 0, end
        case.set_properties("GTVp", name="GTV")
        dialog.close()


def test_a_margin_map_asked_for_while_the_3d_view_builds_shows_when_it_is_done(window, qtbot):
    case = show_spheres(window)  # the 3D view has not built its surfaces yet
    window.surgery.margin_map.trigger()
    dialog = window.last_dialog
    dialog.structure.setCurrentText("Vessel")
    dialog.reference.setCurrentText("Liver")
    assert not window.view3d.is_ready()
    dialog.show_button.click()
    case.remove_structure("Vessel")  # while it waits
    qtbot.waitUntil(lambda: "deleted" in dialog.note.text(), timeout=120_000)
    assert dialog.note.text() == "No margin map: Vessel was deleted meanwhile."
    window.undo()
    assert not window.view3d.is_ready()  # building the vessel again
    dialog.structure.setCurrentText("GTV")
    dialog.reference.setCurrentText("Kidney_R")
    with qtbot.waitSignal(window.view3d.margin_map_shown, timeout=120_000):
        dialog.show_button.click()
        assert dialog.note.text() == (
            "The 3D view is still building surfaces: the map shows when they are ready."
        )
    qtbot.waitUntil(lambda: "nearest point" in dialog.note.text(), timeout=10_000)
    assert dialog.note.text().startswith("GTV: nearest point") and "from Kidney_R" in dialog.note.text()
    assert window.view3d.margin_values("GTV") is not None


def scalar_bars(view) -> int:
    from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor

    props = view.renderer.GetViewProps()
    return sum(
        isinstance(props.GetItemAsObject(i), vtkScalarBarActor) for i in range(props.GetNumberOfItems())
    )


def show_map_and_distance(window, qtbot):
    """Open the Surgery dialogs and show GTV's margin map to Liver and the minimum distance
    Liver ↔ Kidney_R in the 3D view: (the margin map dialog, the minimum distance dialog)."""
    view = window.view3d
    window.surgery.margin_map.trigger()
    margins = window.last_dialog
    margins.structure.setCurrentText("GTV")
    margins.reference.setCurrentText("Liver")
    with qtbot.waitSignal(view.margin_map_shown, timeout=60_000):
        margins.show_button.click()
    window.surgery.distance.trigger()
    distance = window.last_dialog
    distance.first.setCurrentText("Liver")
    distance.second.setCurrentText("Kidney_R")
    distance.measure_button.click()
    wait_idle(qtbot, window)
    return margins, distance


def test_closing_a_dialog_takes_its_overlays_out_of_the_3d_view(window, qtbot):
    show_spheres(window)
    wait_3d(qtbot, window)
    view = window.view3d
    margins, distance = show_map_and_distance(window, qtbot)
    assert view.shown_distance is distance.result and view.focus == {"Liver", "Kidney_R"}
    assert view.margin_values("GTV") is not None and scalar_bars(view) == 1
    margins.close()  # its map and colour bar go; the fading is the distance dialog's now: it stays
    assert view.margin_values("GTV") is None and scalar_bars(view) == 0
    assert view.focus == {"Liver", "Kidney_R"} and view.shown_distance is distance.result
    distance.close()  # its line and label go, and the fading
    assert view.shown_distance is None and view.focus is None
    # the 3D view's Clear takes out a map, a distance and the fading too
    window.surgery.margin_map.trigger()
    margins = window.last_dialog
    with qtbot.waitSignal(view.margin_map_shown, timeout=60_000):
        margins.show_button.click()
    view.draw_minimum_distance(distance.result, "Liver", "Kidney_R")
    view.clear_measurements()
    assert view.margin_values(margins.shown.name) is None and scalar_bars(view) == 0
    assert view.shown_distance is None and view.focus is None
    # a resection unfades the view when its dialog closes
    window.surgery.resection.trigger()
    resection = window.last_dialog
    resection.resect_button.click()
    wait_idle(qtbot, window)
    assert view.focus == {"Liver_resected", "GTV"}
    resection.close()
    assert view.focus is None


def test_hiding_a_structure_hides_the_overlays_drawn_for_it(window, qtbot):
    case = show_spheres(window)
    wait_3d(qtbot, window)
    view = window.view3d
    show_map_and_distance(window, qtbot)

    def shown() -> tuple[bool, bool, float]:
        """(distance line shown, colour bar shown, the vessel's opacity: faded or not)"""
        props = view.renderer.GetViewProps()
        bars = [props.GetItemAsObject(i) for i in range(props.GetNumberOfItems())]
        bar = [p for p in bars if p.GetClassName() == "vtkScalarBarActor"][0]
        vessel = view._actors[case.structures["Vessel"]].GetProperty().GetOpacity()
        return all(p.GetVisibility() for p in view._overlay), bool(bar.GetVisibility()), vessel

    assert shown() == (True, True, pytest.approx(FADED_OPACITY))
    case.set_visible("Kidney_R", False)  # one end of the distance: its line goes, the fading stays
    assert shown() == (False, True, pytest.approx(FADED_OPACITY))
    case.set_visible("Liver", False)  # nothing of the focus shows: no fading
    assert shown() == (False, True, 1.0)
    case.set_visible("GTV", False)  # the coloured structure: its colour bar goes
    assert shown() == (False, False, 1.0)
    for name in ("Kidney_R", "Liver", "GTV"):
        case.set_visible(name, True)
    assert shown() == (True, True, pytest.approx(FADED_OPACITY))


def test_tumour_resection_with_a_safety_margin_is_one_undo_step(window, qtbot):
    case = show_spheres(window)
    window.surgery.resection.trigger()
    dialog = window.last_dialog
    assert dialog.organ.currentText() == "Liver"  # the largest organ
    assert dialog.tumour.currentText() == "GTV"  # the target
    dialog.method.setCurrentText("Tumour with a safety margin")
    dialog.margin.setValue(10.0)
    names_before = case.structures.names()
    dialog.resect_button.click()
    wait_idle(qtbot, window)
    assert case.structures.names() == [*names_before, "Liver_remnant", "Liver_resected"]
    liver = _ball(LIVER, LIVER_R)
    expected = liver & _ball(GTV, GTV_R + 10.0)  # the tumour grown by 10 mm, inside the liver
    resected = case.structures["Liver_resected"].mask.full()
    remnant = case.structures["Liver_remnant"].mask.full()
    assert (resected ^ expected).sum() <= 0.03 * expected.sum()
    assert np.array_equal(resected | remnant, liver) and not (resected & remnant).any()
    result = dialog.result
    assert result.resected_cc == pytest.approx(expected.sum() / 1000, rel=0.03)
    assert result.resected_cc + result.remnant_cc == pytest.approx(liver.sum() / 1000)
    assert result.resected_percent == pytest.approx(100 * expected.sum() / liver.sum(), abs=1.0)
    assert [r.name for r in result.reached] == ["Vessel"] and result.reached[0].crossed
    shown = dialog.note.text()
    assert f"{result.resected_cc:.1f} cc" in shown and f"({result.remnant_percent:.1f} %)" in shown
    assert "Vessel: crossed" in shown
    description = case.structures["Liver_remnant"].description
    assert "GTV with a 10 mm safety margin" in description and f"{result.remnant_cc:.1f} cc" in description
    assert not case.structures["Liver"].visible  # the parts show in its place
    assert window.menus.undo_action.text() == "&Undo Virtual resection of Liver" and not window.jobs.errors
    window.undo()  # one step removes both parts and shows the organ again
    assert case.structures.names() == names_before and case.structures["Liver"].visible
    window.redo()
    assert "Liver_remnant" in case.structures and not case.structures["Liver"].visible
    # once the parts are undone and cannot be redone, the organ is no longer watched
    listeners = len(case.history.changed)
    window.undo()
    case.edit_region("Brush", "GTV", (slice(0, 1), slice(0, 1), slice(0, 1)), np.ones((1, 1, 1), bool))
    assert len(case.history.changed) == listeners - 1 and case.structures["Liver"].visible


def test_a_safety_margin_past_the_end_of_the_images_is_said_in_the_dialog_and_messages(window, qtbot):
    show_spheres(window)  # the images span z 0–49 mm; the GTV z 19–31 mm
    window.surgery.resection.trigger()
    dialog = window.last_dialog
    dialog.method.setCurrentText("Tumour with a safety margin")
    dialog.margin.setValue(20.0)
    dialog.resect_button.click()
    wait_idle(qtbot, window)
    warning = (
        "the 20 mm safety margin around GTV runs past the edge of the images on the inferior and "
        "superior side and is cut there: what lies beyond the images is neither resected nor checked "
        "for structures reached"
    )
    assert f"<b>T{warning[1:]}.</b>" in dialog.note.text()
    assert window.messages.messages().count(f"Resection of Liver: {warning}") == 1
    assert window.messages.button.text().startswith("⚠")
    # the vessel runs the images' length: its part in the grown tumour runs off both ends
    ends = "it runs off the inferior and superior ends of the images inside the resected region"
    assert f"Vessel: crossed; {ends}" in dialog.note.text()


def test_a_liver_cut_off_by_the_images_is_said_in_the_dialog_and_messages(window, qtbot):
    """The percentages of a liver whose top the scan cuts off are of its imaged part: the dialog
    says so in bold, Messages as a warning, and the parts' descriptions; not for a whole liver."""

    def resect() -> object:
        window.state.set_cursor((25, 30, 35))  # (z, y, x): the liver's centre
        window.surgery.resection.trigger()
        dialog = window.last_dialog
        dialog.organ.setCurrentText("Liver")
        dialog.method.setCurrentText("Plane through the crosshair")
        dialog.side.setCurrentText("Superior to the crosshair (S–I plane)")
        dialog.resect_button.click()
        wait_idle(qtbot, window)
        return dialog

    show_spheres(window)  # the liver z 5–45 mm, in images of z 0–49 mm
    whole = resect()
    assert "Resected" in whole.note.text() and "<b>" not in whole.note.text().split("</table>")[1]
    assert not [m for m in window.messages.messages() if "imaged part" in m]
    case = show_spheres(window, _ball(LIVER + [0.0, 0.0, 15.0], LIVER_R))  # z 20–60 mm
    cut_off = resect()
    warning = (
        "Liver reaches the superior end of the images: its volumes and percentages are of the imaged part "
        "only (the resected part reaches it, the remnant does not)"
    )
    assert f"<b>{warning}.</b>" in cut_off.note.text()
    assert window.messages.messages().count(f"Resection of Liver: {warning}") == 1
    assert window.messages.button.text().startswith("⚠")
    imaged = "(imaged part only: it reaches the superior end of the images)"
    assert imaged in case.structures["Liver_remnant"].description
    assert imaged in case.structures["Liver_resected"].description


def test_plane_resection_through_the_crosshair(window, qtbot):
    case = show_spheres(window)
    window.state.set_cursor((25, 30, 35))  # (z, y, x): the liver's centre
    window.surgery.resection.trigger()
    dialog = window.last_dialog
    dialog.organ.setCurrentText("Liver")
    dialog.method.setCurrentText("Plane through the crosshair")
    assert dialog.side.isVisibleTo(dialog) and not dialog.tumour.isVisibleTo(dialog)
    assert "x 35.0  y 30.0  z 25.0" in dialog.crosshair.text()
    dialog.side.setCurrentText("Left of the crosshair (R–L plane)")
    dialog.resect_button.click()
    wait_idle(qtbot, window)
    resected = case.structures["Liver_resected"].mask.full()
    assert resected.any() and np.all(POINTS[resected][:, 0] > 35.0)  # +x is the patient's left
    expected = _ball(LIVER, LIVER_R) & (POINTS[..., 0] > 35.0)  # voxels by their centres
    assert np.array_equal(resected, expected)
    assert "Resected" in dialog.note.text() and not window.jobs.errors
    assert dialog.result.resected_cc == pytest.approx(expected.sum() / 1000)


def test_a_second_resection_does_not_list_the_parts_of_the_first_as_reached(window, qtbot):
    case = show_spheres(window)
    window.state.set_cursor((25, 30, 35))  # (z, y, x): the liver's centre

    def resect(organ: str) -> list[str]:
        window.surgery.resection.trigger()
        dialog = window.last_dialog
        dialog.organ.setCurrentText(organ)
        dialog.method.setCurrentText("Plane through the crosshair")
        dialog.side.setCurrentText("Left of the crosshair (R–L plane)")
        dialog.resect_button.click()
        wait_idle(qtbot, window)
        dialog.close()
        return [r.name for r in dialog.result.reached]

    first = resect("Liver")
    assert set(first) == {"GTV", "Vessel"}
    # the liver's parts fill the region cut again: they are the organ, not structures reached
    assert resect("Liver") == first and "Liver_resected_2" in case.structures
    case.set_properties("Liver_resected", name="Liver_piece")  # the description, not the name, counts
    assert resect("Liver_piece") == first  # nor the liver it was cut from, nor the other parts


def test_resection_failures_are_said_and_change_nothing(window, qtbot):
    case = show_spheres(window)
    window.surgery.resection.trigger()
    dialog = window.last_dialog
    dialog.organ.setCurrentText("Liver")
    dialog.tumour.setCurrentText("Kidney_R")  # 12 mm away: a 5 mm margin does not reach the liver
    dialog.margin.setValue(5.0)
    names = case.structures.names()
    dialog.resect_button.click()
    wait_idle(qtbot, window)
    assert "does not reach 'Liver'" in dialog.note.text() and case.structures.names() == names
    assert any("does not reach" in m for m in window.messages.messages())
    dialog.tumour.setCurrentText("Liver")
    dialog.resect_button.click()
    assert "another structure than Liver" in dialog.note.text()
    # a structure deleted while a dialog is open: no longer offered, nothing computed
    distance = window.surgery.open_distance()
    distance.first.setCurrentText("GTV")
    distance.second.setCurrentText("Kidney_R")
    case.remove_structure("Kidney_R")
    assert distance.second.currentText() == "" and "Kidney_R" not in listed(distance.second)
    distance.measure_button.click()
    assert not window.jobs.busy and distance.note.text() == "Choose two different structures."
    # another case opened meanwhile: said (the window closes only the last dialog opened)
    window.surgery.open_margin_map()
    show_spheres(window)
    distance.measure_button.click()
    assert not window.jobs.busy and "Another case is open" in distance.note.text()


def test_mesh_export_writes_files_and_never_overwrites_without_asking(window, qtbot, tmp_path):
    case = show_spheres(window)
    case.set_visible("Vessel", False)
    window.surgery.export.trigger()
    dialog = window.last_dialog
    assert dialog.chosen() == ["Liver", "GTV", "Kidney_R"]  # the visible structures
    dialog.check_where(lambda s: s.name in ("Liver", "GTV"))
    folder = tmp_path / "models"
    dialog.folder.setText(str(folder))
    dialog.format.setCurrentIndex(0)  # STL
    dialog.for_printing.setChecked(True)
    dialog.export_button.click()
    wait_idle(qtbot, window)
    assert sorted(p.name for p in folder.iterdir()) == ["GTV.stl", "Liver.stl"]
    checks = {c.name: c for c in dialog.checks}
    assert checks["Liver"].shells == 1
    assert checks["Liver"].volume_cc == pytest.approx(4 / 3 * np.pi * LIVER_R**3 / 1000, rel=0.03)
    assert "Liver: " in dialog.output.toPlainText() and "closed" in dialog.output.toPlainText()
    # exporting again: asked first; "no" keeps the files as they were and leaves nothing behind
    (folder / "Liver.stl").write_bytes(b"the surgeon's own file")
    asked = []
    dialog.confirm_replace = lambda where, names: asked.append(sorted(names)) or False
    dialog.export_button.click()
    wait_idle(qtbot, window)
    assert asked == [["GTV.stl", "Liver.stl"]]
    assert (folder / "Liver.stl").read_bytes() == b"the surgeon's own file"
    assert sorted(p.name for p in folder.iterdir()) == ["GTV.stl", "Liver.stl"]
    assert "Nothing written" in dialog.output.toPlainText()
    # "yes" replaces them
    dialog.confirm_replace = lambda where, names: True
    dialog.export_button.click()
    wait_idle(qtbot, window)
    header = (folder / "Liver.stl").read_bytes()[:80]
    assert header.startswith(b"Delineo, SPACE=LPS, mm, DICOM patient LPS: Liver")
    assert [p.name for p in dialog.written] == ["Liver.stl", "GTV.stl"]
    # an OBJ export writes one file and its materials
    dialog.format.setCurrentIndex(1)
    dialog.export_button.click()
    wait_idle(qtbot, window)
    assert (folder / "surfaces.obj").exists() and (folder / "surfaces.mtl").exists()


def test_mesh_export_names_a_liver_the_images_cut_off(window, qtbot, tmp_path):
    """A liver whose top is above the last slice is capped flat there: the dialog and the
    Messages panel say that face is the edge of the scan; the kidney, imaged whole, is not named."""
    high_liver = _ball(LIVER + [0.0, 0.0, 20.0], LIVER_R)  # centre at z 45 mm, the images end at 49
    show_spheres(window, liver=high_liver)
    window.surgery.export.trigger()
    dialog = window.last_dialog
    dialog.check_where(lambda s: s.name in ("Liver", "Kidney_R"))
    dialog.folder.setText(str(tmp_path / "models"))
    dialog.for_printing.setChecked(True)
    dialog.export_button.click()
    wait_idle(qtbot, window)
    warning = (
        "Liver: cut by the superior end of the images; the flat face there is the edge of the scan, "
        "not anatomy"
    )
    output = dialog.output.toPlainText()
    assert f"Cut off by the images:\n  {warning}\n" in output and "Kidney_R: cut" not in output
    assert window.messages.messages()[-1] == f"3D model export: {warning}"
    assert "1 cut off by the images, flat there (see Messages)" in window.statusBar().currentMessage()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["Kidney_R.stl", "Liver.stl"]


def test_structure_volume_and_surface_area(window, qtbot):
    show_spheres(window)
    window.surgery.sizes.trigger()
    dialog = window.last_dialog
    wait_idle(qtbot, window)
    rows = {dialog.table.item(r, 0).text(): r for r in range(dialog.table.rowCount())}
    assert list(rows) == ["Liver", "GTV", "Vessel", "Kidney_R"]
    measures = {m.name: m for m in dialog.measures}
    liver = measures["Liver"]
    assert liver.mesh_volume_cc == pytest.approx(4 / 3 * np.pi * LIVER_R**3 / 1000, rel=0.03)
    assert liver.area_cm2 == pytest.approx(4 * np.pi * LIVER_R**2 / 100, rel=0.05)
    assert dialog.table.item(rows["Liver"], 3).text() == f"{liver.area_cm2:.1f}"
    assert dialog.as_text().splitlines()[0].startswith("Structure\tVolume (cc)")
    window.case.set_visible("GTV", False)  # no change of size: the table stays current
    assert "Out of date" not in dialog.note.text()
    window.case.edit_region("Brush", "GTV", (slice(0, 1),) * 3, np.ones((1, 1, 1), bool))
    assert dialog.note.text() == "Out of date: GTV changed since the table was measured. Recompute."
    dialog.refresh_button.click()
    window.case.edit_region("Brush", "GTV", (slice(0, 1), slice(0, 1), slice(1, 2)), np.ones((1, 1, 1), bool))
    wait_idle(qtbot, window)  # drawn while it measured: said when the table shows
    assert dialog.note.text() == "Out of date: GTV changed since the table was measured. Recompute."
    dialog.refresh_button.click()
    wait_idle(qtbot, window)
    assert "Out of date" not in dialog.note.text()
    assert {m.name: m for m in dialog.measures}["GTV"].voxel_volume_cc == pytest.approx(
        measures["GTV"].voxel_volume_cc + 0.002
    )
    window.commands.add_structure("Spleen")  # empty: not listed, the table stays current
    assert "Out of date" not in dialog.note.text()
    window.case.remove_structure("Spleen")
    assert "Out of date" not in dialog.note.text()
    window.case.remove_structure("Vessel")
    assert dialog.note.text() == "Out of date: Vessel was deleted since the table was measured. Recompute."
    window.undo()
    assert dialog.note.text() == "Out of date: Vessel was added since the table was measured. Recompute."


def test_3d_snapshot_at_a_chosen_resolution(window, qtbot, tmp_path, monkeypatch):
    from workstation.view3d import snapshot_dialog
    from workstation.view3d.snapshot_dialog import SnapshotSizeDialog

    show_spheres(window)
    wait_3d(qtbot, window)
    dialog = SnapshotSizeDialog((640, 480))
    assert dialog.chosen_size() == (1920, 1080)
    dialog.choose("3840")
    assert dialog.chosen_size() == (3840, 2160) and not dialog.width_box.isEnabled()
    dialog.preset.setCurrentIndex(0)
    assert dialog.chosen_size() == (640, 480)

    def accept(self):
        self.set_custom(800, 500)
        return SnapshotSizeDialog.DialogCode.Accepted

    monkeypatch.setattr(snapshot_dialog.SnapshotSizeDialog, "exec", accept)
    typed, asked = [], []
    choose_file(monkeypatch, snapshot_dialog.QFileDialog, typed, asked)
    typed.append(str(tmp_path / "shot"))  # no extension: saved as shot.png
    written = window.surgery.snapshot_3d()
    image = QImage(str(written))
    assert written.name == "shot.png" and (image.width(), image.height()) == (800, 500)
    # typing "shot" again: the file dialog's own "replace?" question names shot.png; no keeps it
    before = (tmp_path / "shot.png").read_bytes()
    typed.append(str(tmp_path / "shot"))
    assert window.surgery.snapshot_3d() is None
    assert len(asked) == 1 and "shot.png already exists" in asked[0]
    assert (tmp_path / "shot.png").read_bytes() == before


def choose_file(monkeypatch, dialog_class, typed: list[str], asked: list[str]) -> None:
    """Drive Qt's own file dialog: type the next name of `typed` and save; a "replace?" question
    is recorded in `asked` and answered no, which cancels the dialog."""
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QMessageBox

    real_exec = dialog_class.exec

    def answer_no() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            asked.append(box.text())
            box.button(QMessageBox.StandardButton.No).click()

    def exec_(self):
        def drive() -> None:
            self.selectFile(typed.pop(0))
            QTimer.singleShot(0, answer_no)  # runs inside the question's own event loop, if asked
            self.accept()
            if self.isVisible():  # answered no: the dialog stays open; cancel it
                self.reject()

        self.setOption(dialog_class.Option.DontUseNativeDialog, True)
        QTimer.singleShot(0, drive)
        return real_exec(self)

    monkeypatch.setattr(dialog_class, "exec", exec_)
    # the static chooser returns the name as typed (its own "replace?" check saw "shot")
    monkeypatch.setattr(dialog_class, "getSaveFileName", lambda *a, **k: (typed.pop(0), ""))


def blocked(monkeypatch, module, name: str):
    """Make `module.name` wait in the worker until the returned event is set (then run)."""
    import threading

    release = threading.Event()
    real = getattr(module, name)

    def waiting(*args, **kwargs):
        assert release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, waiting)
    return release


def test_a_closed_surgery_dialog_stops_refreshing_and_lets_its_case_go(window, qtbot, monkeypatch):
    import gc
    import weakref

    from PyQt6.QtCore import QEvent

    from workstation.app.resection_dialog import ResectionDialog

    refreshed = []
    real_refresh = ResectionDialog._refresh
    monkeypatch.setattr(
        ResectionDialog, "_refresh", lambda self, *a: refreshed.append(1) or real_refresh(self, *a)
    )
    old_case = weakref.ref(show_spheres(window))
    wait_3d(qtbot, window)
    menu = window.surgery
    for action in (menu.distance, menu.margin_map, menu.sizes, menu.resection, menu.export):
        action.trigger()
        wait_idle(qtbot, window)
        window.last_dialog.close()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    refreshed.clear()
    window.state.set_cursor((20, 25, 30))
    assert not refreshed  # the closed resection dialog no longer follows the crosshair
    show_spheres(window)
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)  # PyQt's slot proxies
    gc.collect()
    assert old_case() is None  # no closed dialog keeps the previous case (images, masks) alive


def test_a_result_for_a_case_no_longer_shown_is_discarded_and_said(window, qtbot, monkeypatch):
    from workstation.app import distance_dialogs, resection_dialog

    show_spheres(window)
    distance = window.surgery.open_distance()
    distance.first.setCurrentText("Liver")
    distance.second.setCurrentText("Kidney_R")
    release = blocked(monkeypatch, distance_dialogs, "minimum_distance")
    distance.measure_button.click()
    resection = window.surgery.open_resection()
    release_resection = blocked(monkeypatch, resection_dialog, "resect_with_margin")
    resection.resect_button.click()
    window.surgery.open_margin_map()  # the last dialog, which the window closes with its case
    new_case = show_spheres(window)
    release.set()
    release_resection.set()
    wait_idle(qtbot, window)
    assert distance.result is None and not window.view3d._overlay  # not drawn in the new case
    assert "The result was discarded: another case was opened" in distance.note.text()
    assert "The result was discarded: another case was opened" in resection.note.text()
    assert "Liver_resected" not in new_case.structures
    assert not [m for m in window.messages.messages() if "Kidney_R:" in m or "Resection of" in m]


def test_the_default_organ_is_an_organ_not_a_resected_part(window, qtbot):
    show_spheres(window)
    window.surgery.resection.trigger()
    window.last_dialog.resect_button.click()
    wait_idle(qtbot, window)
    window.surgery.resection.trigger()
    assert window.last_dialog.organ.currentText() in ("Liver", "Liver_remnant")  # not Liver_resected


def test_the_organ_proposed_is_the_one_most_of_which_lies_near_the_tumour(window):
    """A rib curving round the tumour 11 mm away has the tightest box holding the tumour's
    centre; the liver holding the tumour is proposed, not the rib nor the body outline."""
    distance = np.linalg.norm(POINTS - GTV, axis=-1)
    rib = (distance >= GTV_R + 11.0) & (distance <= GTV_R + 13.0) & (POINTS[..., 0] >= GTV[0] - 3.0)
    rib &= np.abs(POINTS[..., 2] - GTV[2]) <= 1.0
    structures = StructureSet(GRID, "1.2.3")
    for name, full, roi_type in (
        ("External", np.ones(GRID.shape, bool), RoiType.EXTERNAL),
        ("Liver", _ball(LIVER, LIVER_R), RoiType.ORGAN),
        ("Rib", rib, RoiType.ORGAN),
        ("GTV", _ball(GTV, GTV_R), RoiType.GTV),
    ):
        structures.add(Structure(name, Mask.from_full(GRID, full), (200, 100, 50), roi_type))
    show_structures(window, structures)
    centre = [(s.start + s.stop) / 2 for s in structures["GTV"].mask.box]
    assert all(s.start < c < s.stop for s, c in zip(structures["Rib"].mask.box, centre, strict=True))
    assert structures["Rib"].mask.array.size < structures["Liver"].mask.array.size  # the tightest box
    window.surgery.resection.trigger()
    assert window.last_dialog.organ.currentText() == "Liver"


def test_resection_copies_only_what_it_can_reach_and_says_when_another_structure_changed(
    window, qtbot, monkeypatch
):
    from workstation.app import resection_dialog

    case = show_spheres(window)
    window.surgery.resection.trigger()
    dialog = window.last_dialog
    seen = []
    real = resection_dialog.resect_with_margin
    monkeypatch.setattr(
        resection_dialog, "resect_with_margin", lambda *a, **k: seen.append(a[3]) or real(*a, **k)
    )
    dialog.resect_button.click()
    wait_idle(qtbot, window)
    # the kidney, far from the tumour and its margin, was not copied; the vessel only around it
    [others] = seen
    assert [s.name for s in others] == ["Vessel"]
    assert others[0].mask.array.shape[0] < case.structures["Vessel"].mask.array.shape[0]
    [vessel] = dialog.result.reached
    whole = case.structures["Vessel"].mask.volume_cc
    assert vessel.crossed and vessel.fraction == pytest.approx(vessel.resected_cc / whole)
    # another structure edited in the resected region while the job ran: said
    window.undo()
    release = blocked(monkeypatch, resection_dialog, "resect_with_margin")
    dialog.resect_button.click()
    box = (slice(20, 30), slice(25, 35), slice(45, 55))  # a piece of the vessel, near the tumour
    case.edit_region("Erase", "Vessel", box, np.zeros((10, 10, 10), bool))
    release.set()
    wait_idle(qtbot, window)
    assert "Liver_resected" in case.structures
    assert "Vessel changed while the resection ran: the structures reached may be out of date" in (
        dialog.note.text()
    )


def test_margin_map_reports_once_per_show_with_the_reference_then(window, qtbot):
    case = show_spheres(window)
    wait_3d(qtbot, window)
    window.surgery.margin_map.trigger()
    dialog = window.last_dialog
    dialog.structure.setCurrentText("GTV")
    dialog.reference.setCurrentText("Kidney_R")
    with qtbot.waitSignal(window.view3d.margin_map_shown, timeout=60_000):
        dialog.show_button.click()
    reported = [m for m in window.messages.messages() if m.startswith("Margin map")]
    assert len(reported) == 1 and "from Kidney_R" in reported[0]
    dialog.reference.setCurrentText("Vessel")  # changed, not shown
    with qtbot.waitSignal(window.view3d.margin_map_shown, timeout=60_000):  # a brush stroke on the GTV
        case.edit_region(
            "Brush", "GTV", (slice(25, 26), slice(30, 31), slice(47, 48)), np.ones((1, 1, 1), bool)
        )
    assert [m for m in window.messages.messages() if m.startswith("Margin map")] == reported
    assert "from Kidney_R" in dialog.note.text()


def test_mesh_export_lists_the_structures_it_did_not_write(window, qtbot, tmp_path, monkeypatch):
    import planning.mesh_export as mesh_export
    from planning.errors import FormatError

    case = show_spheres(window)
    window.surgery.export.trigger()
    dialog = window.last_dialog
    dialog.check_where(lambda s: s.name in ("Liver", "GTV", "Kidney_R"))
    folder = tmp_path / "models"
    dialog.folder.setText(str(folder))
    dialog.for_printing.setChecked(True)
    real = mesh_export.printable

    def printable(surface, spacing):
        if surface.name == "GTV":
            raise FormatError("GTV: the mesh encloses no volume and cannot be printed")
        return real(surface, spacing)

    monkeypatch.setattr(mesh_export, "printable", printable)
    kidney = case.structures["Kidney_R"].mask.box
    case.edit_region("Erase", "Kidney_R", kidney, np.zeros([s.stop - s.start for s in kidney], bool))
    dialog.export_button.click()
    wait_idle(qtbot, window)
    shown = dialog.output.toPlainText()
    assert "Wrote 1 file(s)" in shown and "Kidney_R: empty" in shown
    assert "GTV: the mesh encloses no volume" in shown
    assert "not written: Kidney_R (empty), GTV (not printable)" in window.messages.messages()[-1]
    assert sorted(p.name for p in folder.iterdir()) == ["Liver.stl"]


def test_closing_the_export_dialog_while_it_runs_leaves_the_folder_as_it_was(
    window, qtbot, tmp_path, monkeypatch
):
    from workstation.app import mesh_export_dialog

    show_spheres(window)
    window.surgery.export.trigger()
    dialog = window.last_dialog
    folder = tmp_path / "models"
    dialog.folder.setText(str(folder))
    real = mesh_export_dialog.export_surfaces
    release = None

    def export_then_wait(*args, **kwargs):
        export = real(*args, **kwargs)  # written into the staging folder
        assert release.wait(60)
        return export

    import threading

    release = threading.Event()
    monkeypatch.setattr(mesh_export_dialog, "export_surfaces", export_then_wait)
    dialog.export_button.click()
    qtbot.waitUntil(
        lambda: folder.exists() and any(any(p.iterdir()) for p in folder.iterdir()),
        timeout=60_000,
    )
    dialog.close()  # e.g. the window closing: the job is cancelled
    release.set()
    wait_idle(qtbot, window)
    assert list(folder.iterdir()) == []


def _liver_cut_marked_at(window, points_zyx):
    """The resection dialog on the spheres' liver, cutting away the left, marked at each voxel
    (z, y, x) of `points_zyx` in turn."""
    window.surgery.resection.trigger()
    dialog = window.last_dialog
    dialog.organ.setCurrentText("Liver")
    dialog.method.setCurrentText("Plane through the crosshair")
    dialog.side.setCurrentText("Left of the crosshair (R–L plane)")
    for zyx in points_zyx:
        window.state.set_cursor(zyx)
        dialog.mark_button.click()
    return dialog


def test_plane_resection_bent_through_marked_points(window, qtbot):
    case = show_spheres(window)
    dialog = _liver_cut_marked_at(window, [(15, 30, 30), (35, 30, 40)])  # x 30 mm low, x 40 mm high
    assert window.views["axial"].marks == [(15.0, 30.0, 30.0), (35.0, 30.0, 40.0)]
    assert "Bent through the 2 marked points" in dialog.bends_label.text()
    dialog.resect_button.click()
    wait_idle(qtbot, window)
    resected = case.structures["Liver_resected"].mask.full()
    assert resected[15, 30, 31] and not resected[15, 30, 29]  # the cut passes x 30 at z 15
    assert resected[35, 30, 41] and not resected[35, 30, 39]  # and x 40 at z 35
    assert "left of the cut through 2 marked points" in dialog.note.text()
    dialog.close()
    assert window.views["axial"].marks == []  # the marks go with the dialog


def test_marked_points_one_behind_the_other_are_refused_by_name(window, qtbot):
    case = show_spheres(window)
    dialog = _liver_cut_marked_at(window, [(20, 30, 30), (20, 30, 40)])  # along the cutting direction
    dialog.resect_button.click()
    wait_idle(qtbot, window)
    assert "points 1 and 2 of the cut lie 0.0 mm apart" in dialog.note.text()
    assert "Liver_resected" not in case.structures
    dialog.clear_marks_button.click()
    assert window.views["axial"].marks == [] and "flat plane" in dialog.bends_label.text()
    window.state.set_cursor((25, 30, 35))
    dialog.resect_button.click()
    wait_idle(qtbot, window)
    assert "Liver_resected" in case.structures
