"""Compare structures: the metrics of `delineo compare` for two structures of the case."""

import numpy as np
import pytest
from support.app import show_sample, wait_idle

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


def test_the_dialog_closes_with_its_case(window):
    show_sample(window)
    window.open_compare()
    dialog = window.last_dialog
    assert dialog.isVisible()
    show_sample(window)
    assert not dialog.isVisible() and window.last_dialog is None
