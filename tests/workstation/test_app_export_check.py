"""The RTSTRUCT export's check is of what the case holds: any change after it makes Write and Send
wait for a new one, it reads a snapshot of the structures, and it names auto-contours not reviewed
and derived structures out of date."""

import threading

import numpy as np
import pydicom
import pytest
from PyQt6.QtCore import Qt
from support.app import show_sample, wait_idle

from planning.structures import Structure

pytestmark = pytest.mark.gui


def _report(export) -> list[str]:
    return [export.report.item(i).text() for i in range(export.report.count())]


def _checked_export(window, qtbot, path):
    export = window.export_rtstruct()
    export.path_edit.setText(str(path))
    qtbot.waitUntil(lambda: export.write_button.isEnabled(), timeout=60_000)
    wait_idle(qtbot, window)
    return export


def _written_names(path) -> list[str]:
    return [roi.ROIName for roi in pydicom.dcmread(path).StructureSetROISequence]


def test_a_contour_deleted_after_the_check_is_not_written(window, qtbot, tmp_path):
    case = show_sample(window, shape=(40, 128, 128))
    target = tmp_path / "RS.dcm"
    export = _checked_export(window, qtbot, target)
    case.remove_structure("Heart")  # rejected, deleted: after the check
    assert not export.write_button.isEnabled() and not export.send_button.isEnabled()
    assert "check again before writing or sending" in _report(export)[0]
    export.write_button.click()
    assert not target.exists()
    export.run_check()
    qtbot.waitUntil(lambda: export.write_button.isEnabled(), timeout=60_000)
    export.write_button.click()
    assert "Heart" not in _written_names(target) and "GTV" in _written_names(target)


def test_an_undo_after_the_check_makes_it_stale_and_the_list_follows_the_case(window, qtbot, tmp_path):
    case = show_sample(window, shape=(40, 128, 128))
    case.set_properties("Heart", name="Heart_clinical")
    export = _checked_export(window, qtbot, tmp_path / "RS.dcm")
    window.undo()  # back to "Heart"
    assert not export.write_button.isEnabled()
    listed = [export.structure_list.item(i).text() for i in range(export.structure_list.count())]
    assert any(item.startswith("Heart  (") for item in listed)
    assert "Heart" in export.selected_names()


def test_the_check_reads_the_structures_as_they_were_when_it_started(window, qtbot, tmp_path, monkeypatch):
    from workstation.app import services

    case = show_sample(window, shape=(40, 128, 128))
    heart = case.structures["Heart"].mask.full()
    edited, read = threading.Event(), []
    write_rtstruct = services.write_rtstruct

    def write_after_an_edit(structures, *args, **kwargs):
        edited.wait(10)
        read.append(structures["Heart"].mask.full())
        return write_rtstruct(structures, *args, **kwargs)

    monkeypatch.setattr(services, "write_rtstruct", write_after_an_edit)
    window.export_rtstruct()
    box = case.structures["Heart"].mask.box
    case.edit_region("Erase", "Heart", box, case.structures["Heart"].mask.region(box) & False)
    edited.set()
    wait_idle(qtbot, window)
    assert (read[0] == heart).all()


def test_auto_contours_not_reviewed_are_named_in_the_check(window, qtbot, tmp_path):
    case = show_sample(window, shape=(40, 128, 128))
    found = [
        Structure(name, case.structures[source].mask.copy())
        for name, source in (("Heart_auto", "Heart"), ("Lung_auto", "Lung_R"))
    ]
    for structure in found:
        structure.awaiting_review = True
    case.add_structures(found, "Auto-segmentation")
    export = _checked_export(window, qtbot, tmp_path / "RS.dcm")
    # unticked until reviewed: exported, an unreviewed contour reads as delineated
    assert "Heart_auto" not in export.selected_names() and "Lung_auto" not in export.selected_names()
    left_out = "WARNING: not exported, not reviewed (accept them, or tick them): Heart_auto, Lung_auto"
    assert left_out in _report(export)
    case.accept_auto_contours(["Lung_auto"], "Accept Lung_auto")
    wait_idle(qtbot, window)
    assert "Lung_auto" in export.selected_names() and "Heart_auto" not in export.selected_names()
    heart = next(
        i
        for i in range(export.structure_list.count())
        if "Heart_auto" in export.structure_list.item(i).text()
    )
    assert export.structure_list.item(heart).text().endswith("not reviewed)")
    export.structure_list.item(heart).setCheckState(Qt.CheckState.Checked)  # the user's choice
    export.run_check()
    qtbot.waitUntil(lambda: export.write_button.isEnabled(), timeout=60_000)
    exported = "WARNING: 1 auto-contour not reviewed, exported as they are (their ROI Description says "
    assert exported + "'not reviewed when exported'): Heart_auto" in _report(export)
    export.write()
    wait_idle(qtbot, window)
    descriptions = {
        r.ROIName: r.get("ROIDescription", "")
        for r in pydicom.dcmread(tmp_path / "RS.dcm").StructureSetROISequence
    }
    assert descriptions["Heart_auto"].endswith("not reviewed when exported")
    assert "not reviewed" not in descriptions["Lung_auto"]


def test_a_check_overtaken_by_an_edit_says_so_instead_of_checking(window, qtbot, monkeypatch):
    """The report kept "Checking…" under the stale note after a check the case changed under."""
    from workstation.app import services

    case = show_sample(window, shape=(40, 128, 128))
    edited = threading.Event()
    write_rtstruct = services.write_rtstruct

    def write_after_an_edit(*args, **kwargs):
        edited.wait(10)
        return write_rtstruct(*args, **kwargs)

    monkeypatch.setattr(services, "write_rtstruct", write_after_an_edit)
    export = window.export_rtstruct()
    assert "Checking…" in _report(export)
    box = case.structures["Heart"].mask.box
    case.edit_region("Erase", "Heart", box, case.structures["Heart"].mask.region(box) & False)
    edited.set()
    wait_idle(qtbot, window)
    assert "Checking…" not in _report(export)
    assert "NOTE: changed while checking: check again" in _report(export)
    assert export.check_button.isEnabled() and not export.write_button.isEnabled()


def test_brush_strokes_neither_relist_nor_count_the_structures_on_the_gui_thread(
    window, qtbot, tmp_path, monkeypatch
):
    """Each history change rebuilt the export's structure list and counted every mask's voxels on
    the GUI thread (100–150 ms per stroke with 118 structures): the list now follows names and
    types, and shows the volumes the structure table counts in its worker."""
    from planning.structures import Mask

    case = show_sample(window, shape=(40, 128, 128))
    export = _checked_export(window, qtbot, tmp_path / "RS.dcm")
    listed, counted_on = [], []
    list_structures = export._list_structures
    monkeypatch.setattr(export, "_list_structures", lambda ticks: listed.append(1) or list_structures(ticks))
    voxel_count = Mask.voxel_count
    monkeypatch.setattr(
        Mask,
        "voxel_count",
        property(lambda m: counted_on.append(threading.current_thread()) or voxel_count.fget(m)),
    )
    heart = case.structures["Heart"]
    box = heart.mask.box
    for _ in range(3):  # three strokes, each erasing a little more
        region = heart.mask.region(box)
        z = next(z for z in range(region.shape[0]) if region[z].any())
        region[z] = False
        case.edit_region("Erase", "Heart", box, region)
    assert not listed and threading.main_thread() not in counted_on
    row = case.structures.names().index("Heart")
    expected = (
        f"Heart  ({heart.roi_type.value}, {voxel_count.fget(heart.mask) * case.grid.voxel_volume_cc:.1f} cc)"
    )
    qtbot.waitUntil(lambda: export.structure_list.item(row).text() == expected, timeout=10_000)
    assert not export.write_button.isEnabled()  # the volume shown is no edit: the check stays stale
    case.set_properties("Heart", name="Heart_clinical")
    assert listed == [1] and export.structure_list.item(row).text().startswith("Heart_clinical  (")
    assert threading.main_thread() not in counted_on


def test_derived_structures_out_of_date_are_named_and_may_still_be_exported(window, qtbot, tmp_path):
    """A CTV and PTV grown from a GTV edited since were exported without a word (the table showed
    ⟳, the check listed only names and dciodvfy notes): each exported one is now a warning saying
    what it was derived from; Write and Send stay enabled."""
    from workstation.app import services

    case = show_sample(window, shape=(40, 128, 128))
    for name, source in (("CTV", "GTV"), ("PTV", "CTV")):
        recipe = {"op": "expand", "source": source, "margins": 5}
        case.derive_into(name, services.derive(recipe, case.structures, name=name), f"Expand {source}")
    k = case.structures["GTV"].mask.offset[0]
    case.edit_region("Brush", "GTV", (slice(k, k + 1), slice(2, 6), slice(2, 6)), np.ones((1, 4, 4), bool))
    advice = "; rebuild it (Structures ▸ Rebuild derived structures) or it is exported as it is"
    ctv = "WARNING: CTV: derived from GTV, which changed since" + advice
    ptv = "WARNING: PTV: derived from CTV, which is out of date itself" + advice
    export = _checked_export(window, qtbot, tmp_path / "RS.dcm")
    assert _report(export)[:2] == [ctv, ptv]
    assert export.send_button.isEnabled()
    row = case.structures.names().index("CTV")
    export.structure_list.item(row).setCheckState(Qt.CheckState.Unchecked)  # its source is the case's
    export.run_check()
    qtbot.waitUntil(lambda: export.write_button.isEnabled(), timeout=60_000)
    assert ptv in _report(export) and not any(line.startswith("WARNING: CTV") for line in _report(export))
    export.write_button.click()
    assert "PTV" in _written_names(tmp_path / "RS.dcm")


def test_simplifying_that_changes_a_volume_is_a_warning_of_the_check(window, qtbot, tmp_path):
    """Contours simplified at export changed volumes without a word: the check says by how much."""
    from planning.structures import Mask

    case = show_sample(window, shape=(40, 256, 256))  # 1.95 mm pixels
    notched = np.zeros(case.grid.shape, bool)
    notched[18:22, 60:130, 60:130] = True
    for start in (5, 20, 35, 50):  # 1 pixel deep, 10 wide: a 2 mm simplified outline runs over them
        notched[18:22, (60, 129), 60 + start : 70 + start] = False
        notched[18:22, 60 + start : 70 + start, (60, 129)] = False
    case.new_structure("Notched", mask=Mask.from_full(case.grid, notched))
    export = window.export_rtstruct()
    for row in range(export.structure_list.count()):  # the notched one alone: a quick check
        if export.structure_list.item(row).text().split()[0] != "Notched":
            export.structure_list.item(row).setCheckState(Qt.CheckState.Unchecked)
    export.simplify.setValue(2.0)
    export.run_check()
    qtbot.waitUntil(lambda: export.write_button.isEnabled(), timeout=60_000)
    [warning] = [line for line in _report(export) if line.startswith("WARNING: Notched: simplifying")]
    before, after = notched.sum() * case.grid.voxel_volume_cc, 4 * 70 * 70 * case.grid.voxel_volume_cc
    assert f"(2 mm) changes its volume from {before:.3f} to {after:.3f} cc (+3.4 %)" in warning  # filled
