"""Compare structures: the metrics of `delineo compare` for two structures of the case."""

import csv

import numpy as np
import pytest
from support.app import show_sample, wait_idle
from support.data import data_path

from planning.metrics import compare
from planning.structures import Mask

pytestmark = pytest.mark.gui


def test_a_shifted_copy_is_compared_with_its_original(window, qtbot):
    case = show_sample(window)
    gtv = case.structures["GTV"].mask.full()
    shifted = np.roll(gtv, 2, axis=2)  # two voxels towards the patient's left
    case.new_structure("GTV_auto", mask=Mask.from_full(case.grid, shifted))
    window.open_compare()
    dialog = window.last_dialog
    dialog.reference.setCurrentText("GTV")
    dialog.test.setCurrentText("GTV_auto")
    dialog.tolerance.setValue(1.5)
    dialog.compare_button.click()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=60_000)
    wait_idle(qtbot, window)
    expected = compare(case.structures["GTV"].mask, case.structures["GTV_auto"].mask, tolerance_mm=1.5)
    assert dialog.result == expected and 0.5 < expected.dice < 0.95
    shown = {
        dialog.table.item(r, 0).text(): dialog.table.item(r, 1).text() for r in range(dialog.table.rowCount())
    }
    assert shown["Dice"] == f"{expected.dice:.3f}" and shown["HD95"] == f"{expected.hd95_mm:.2f} mm"
    assert "GTV_auto against GTV; surface tolerance 1.5 mm" in dialog.note.text()

    case.new_structure("Empty")  # offered by the open dialog too
    dialog.reference.setCurrentText("Empty")
    dialog.compare_button.click()
    qtbot.waitUntil(lambda: dialog.result.test_cc > 0 and dialog.result.reference_cc == 0, timeout=60_000)
    assert dialog.table.item(8, 1).text() == "∞" and "empty structure" in dialog.note.text()
    dialog.test.setCurrentText("Empty")
    dialog.compare_button.click()
    assert dialog.note.text() == "Choose two different structures."
    case.new_structure("Empty_2")
    dialog.test.setCurrentText("Empty_2")
    dialog.compare_button.click()
    qtbot.waitUntil(lambda: "both structures are empty" in dialog.note.text(), timeout=60_000)


def test_the_dialog_closes_with_its_case(window):
    show_sample(window)
    window.open_compare()
    dialog = window.last_dialog
    assert dialog.isVisible()
    show_sample(window)
    assert not dialog.isVisible() and window.last_dialog is None


def test_the_case_against_a_reference_structure_set_file(window, qtbot, tmp_path):
    """An expert's structure set (here a label map) against every structure of the case, paired
    by name, written as the HTML and CSV report of `delineo compare`."""
    import csv

    from planning.structure_io import save_structures
    from planning.structures import Structure, StructureSet

    case = show_sample(window)
    expert = StructureSet(case.grid, case.structures.frame_of_reference_uid)
    gtv = np.roll(case.structures["GTV"].mask.full(), 2, axis=2)
    expert.add(Structure("GTV", Mask.from_full(case.grid, gtv)))
    expert.add(Structure("Heart", case.structures["Heart"].mask.copy()))
    save_structures(expert, case.volume, tmp_path / "expert.nii.gz")
    window.open_compare()
    dialog = window.last_dialog
    dialog.report_against(tmp_path / "expert.nii.gz", tmp_path / "report.html")
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=60_000)
    wait_idle(qtbot, window)
    table = list(csv.DictReader(open(tmp_path / "report.csv", encoding="utf-8")))
    rows = {r["reference_structure"]: r for r in table if r["reference_structure"]}
    assert set(rows) == {"GTV", "Heart"} and float(rows["Heart"]["dice"]) == 1.0
    # the case's structures the expert did not draw: rows without numbers, said so
    assert [r["test_structure"] for r in table if not r["reference_structure"]] == [
        "External",
        "Lung_R",
        "Lung_L",
        "SpinalCord",
        "Bone",
    ]
    expected = compare(Mask.from_full(case.grid, gtv), case.structures["GTV"].mask, tolerance_mm=2.0)
    assert float(rows["GTV"]["dice"]) == pytest.approx(expected.dice)
    assert "data:image/png" in (tmp_path / "report.html").read_text(encoding="utf-8")
    note = dialog.report_note.text()
    assert "2 structure pair(s) compared, mean Dice" in note and "report.html" in note
    assert "Not in this case (not compared, not in the mean): none" in note
    assert "not in expert.nii.gz: External, Lung_R, Lung_L, SpinalCord, Bone" in note


def test_the_report_pairs_names_the_user_pairs(window, qtbot, tmp_path):
    """The expert's "Lt Lung" is the case's Lung_L when the pairs field says so; a pair that is
    not one is said in the note and nothing is run."""
    import csv

    from planning.structure_io import save_structures
    from planning.structures import Structure, StructureSet

    case = show_sample(window)
    expert = StructureSet(case.grid, case.structures.frame_of_reference_uid)
    expert.add(Structure("Lt Lung", case.structures["Lung_L"].mask.copy()))
    save_structures(expert, case.volume, tmp_path / "expert.nii.gz")
    window.open_compare()
    dialog = window.last_dialog
    dialog.pairs.setText("Lt Lung")
    dialog.report_against(tmp_path / "expert.nii.gz", tmp_path / "report.html")
    assert "'Lt Lung' is not a pair" in dialog.report_note.text() and dialog.report_button.isEnabled()
    dialog.pairs.setText("Lt Lung=Lung_L; ")
    dialog.report_against(tmp_path / "expert.nii.gz", tmp_path / "report.html")
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=60_000)
    wait_idle(qtbot, window)
    rows = list(csv.DictReader(open(tmp_path / "report.csv", encoding="utf-8")))
    assert (rows[0]["reference_structure"], rows[0]["test_structure"]) == ("Lt Lung", "Lung_L")
    assert float(rows[0]["dice"]) == 1.0 and rows[0]["note"] == "paired explicitly"
    assert "1 structure pair(s) compared, mean Dice 1.000" in dialog.report_note.text()


def test_a_reference_with_contours_beyond_the_images_is_read_as_the_case_was(window, qtbot, tmp_path):
    """dicompyler-breast holds 1 of its 98 CT images: the case opens with the contours beyond it
    left out, so its own RTSTRUCT as the reference must read the same way (it was refused, in an
    error box full of image UIDs), with the warning in the note and the report."""
    folder = data_path("dicom", "dicompyler-breast")
    window.opening.open_path(folder)
    wait_idle(qtbot, window)
    window.open_compare()
    dialog = window.last_dialog
    dialog.report_against(folder / "rtss.dcm", tmp_path / "report.html")
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=60_000)
    wait_idle(qtbot, window)
    rows = list(csv.DictReader(open(tmp_path / "report.csv", encoding="utf-8")))
    assert {r["reference_structure"] for r in rows} == set(window.case.structures.names())
    body = next(r for r in rows if r["reference_structure"] == "BODY")
    assert float(body["dice"]) == 1.0
    note = dialog.report_note.text()
    # two reading warnings: the contours beyond the images, and the ROI Areola, which has none
    assert "(2 in View ▸ Messages): rtss.dcm: contours beyond the loaded images left out" in note
    assert "the comparison covers the loaded images only" in note
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "rtss.dcm (contours beyond the loaded images left out, as when the case was opened)" in report


def test_a_stroke_drawn_while_comparing_is_not_in_the_result(window, qtbot, monkeypatch):
    """The worker read the live masks: a brush stroke written in place while it measured went
    into Dice and the distances, half-applied or not. It now measures copy-on-write snapshots
    taken when Compare was clicked."""
    case = show_sample(window)
    gtv = case.structures["GTV"].mask.full()
    case.new_structure("GTV_auto", mask=Mask.from_full(case.grid, np.roll(gtv, 2, axis=2)))
    expected = compare(case.structures["GTV"].mask, case.structures["GTV_auto"].mask, tolerance_mm=2.0)
    window.open_compare()
    dialog = window.last_dialog
    dialog.reference.setCurrentText("GTV")
    dialog.test.setCurrentText("GTV_auto")
    started = []
    monkeypatch.setattr(window.jobs, "run", lambda title, work, done, failed: started.append(work))
    dialog.compare_button.click()
    test_mask = case.structures["GTV_auto"].mask
    box = test_mask.box
    test_mask.replace_region(box, np.zeros(tuple(s.stop - s.start for s in box), bool))  # erased in place
    assert started[0](lambda *a: None, None) == expected
