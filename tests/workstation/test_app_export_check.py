"""The RTSTRUCT export's check is of what the case holds: any change after it makes Write and Send
wait for a new one, it reads a snapshot of the structures, and it names auto-contours not reviewed."""

import threading

import pydicom
import pytest
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
    assert "WARNING: 2 auto-contours not reviewed: Heart_auto, Lung_auto" in _report(export)
    case.accept_auto_contours(["Lung_auto"], "Accept Lung_auto")
    export.run_check()
    qtbot.waitUntil(lambda: export.write_button.isEnabled(), timeout=60_000)
    assert "WARNING: 1 auto-contour not reviewed: Heart_auto" in _report(export)
