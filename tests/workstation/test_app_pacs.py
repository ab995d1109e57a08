"""File ▸ Retrieve from PACS… in the real window, against a Query/Retrieve SCP on this machine
serving real DICOM files: search, list series, retrieve (C-GET and C-MOVE), cancel, open."""

import os
import socket
from pathlib import Path

import numpy as np
import pytest
from support.app import wait_idle
from support.data import data_path
from support.pacs import TestPacs

from planning.imageio import load_volume
from workstation.app.pacs_dialog import MOVE_PORT_SETTING, NODE_SETTING

pytestmark = pytest.mark.gui

LUNG_STUDY = "1.3.6.1.4.1.9590.100.1.2.96328687310426543129572151154132284399"
SCREENSHOTS = Path(os.environ.get("DELINEO_SCREENSHOTS", "/work/scratch/h_pacs"))


def _folders():
    return [data_path("dicom", "ibsi1-lung-ct"), data_path("dicom", "dicompyler-breast")]


def _cells(table) -> list[list[str]]:
    return [
        [table.item(row, column).text() for column in range(table.columnCount())]
        for row in range(table.rowCount())
    ]


def _menu_action(window, text):
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    return next(a for a in file_menu.actions() if a.text() == text)


def test_search_retrieve_and_open_a_study(window, qtbot):
    with TestPacs(_folders()) as pacs:
        node = pacs.node
        _menu_action(window, "Retrieve from &PACS…").trigger()
        dialog = window.pacs_dialog
        assert dialog.isVisible() and not dialog.isModal()
        dialog.node_edit.setText(str(pacs.node))
        dialog.search_button.click()
        qtbot.waitUntil(lambda: dialog.study_table.rowCount() == 2, timeout=30_000)
        assert "2 study(ies) of 2 patient(s) on PACS@" in dialog.status.text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        dialog.grab().save(str(SCREENSHOTS / "pacs_dialog_studies.png"))
        dialog.patient_id_edit.setText("1")
        dialog.search_button.click()
        qtbot.waitUntil(lambda: dialog.study_table.rowCount() == 1, timeout=30_000)
        assert _cells(dialog.study_table) == [["", "PAT1", "1", "", "", "CT/RTSTRUCT", "2", "61"]]
        qtbot.waitUntil(lambda: dialog.series_table.rowCount() == 2, timeout=30_000)  # the only study: listed
        assert [row[1:] for row in _cells(dialog.series_table)] == [["CT", "", "60"], ["RTSTRUCT", "", "1"]]
        assert dialog.retrieve_button.text() == "Retrieve study"
        dialog.grab().save(str(SCREENSHOTS / "pacs_dialog_search.png"))

        asked = []
        dialog.ask_open = lambda folder, result: asked.append((folder, len(result.received))) or True
        dialog.retrieve_button.click()
        qtbot.waitUntil(lambda: bool(asked), timeout=60_000)
        dialog.grab().save(str(SCREENSHOTS / "pacs_dialog_retrieved.png"))
    folder = window.data_dir / "pacs" / LUNG_STUDY
    assert asked == [(folder, 61)]
    assert sorted(p.stem for p in folder.glob("*.dcm")) == pacs.instances_of(LUNG_STUDY)
    assert dialog.status.text().startswith(f"Retrieved 61 instance(s) from {node} into {folder}")
    assert dialog.progress.value() == 1000
    wait_idle(qtbot, window)
    source = load_volume(data_path("dicom", "ibsi1-lung-ct", "image"))
    np.testing.assert_array_equal(window.case.volume.array, source.array)
    assert [s.name for s in window.case.structures] == ["GTV-1"]  # its RTSTRUCT came along
    assert window.settings.value(NODE_SETTING) == str(node)


def test_series_by_c_move_cancel_and_errors_in_the_dialog(window, qtbot):
    dialog = window.open_pacs()
    dialog.node_edit.setText("PACS at 10.0.0.9")
    dialog.search_button.click()
    assert "not a DICOM node" in dialog.status.text()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dialog.node_edit.setText(f"PACS@127.0.0.1:{port}")
    dialog.search_button.click()
    qtbot.waitUntil(lambda: "cannot be reached" in dialog.status.text(), timeout=60_000)

    with TestPacs(_folders(), delay_s=0.05) as pacs:
        pacs.destinations["DELINEO"] = ("127.0.0.1", port)
        dialog.node_edit.setText(str(pacs.node))
        dialog.date_edit.setText("2024-01-31")
        dialog.search_button.click()
        assert "is not a study date" in dialog.status.text()
        dialog.date_edit.setText("")
        dialog.name_edit.setText("nobody*")
        dialog.search_button.click()
        qtbot.waitUntil(lambda: "No study on PACS@" in dialog.status.text(), timeout=30_000)
        assert "patient name 'nobody*' (patient name searched as nobody* or NOBODY* or Nobody*)" in (
            dialog.status.text()
        )
        dialog.name_edit.setText("PAT*")
        dialog.method_box.setCurrentIndex(1)  # C-MOVE to this computer
        dialog.port_spin.setValue(port)
        dialog.search_button.click()
        qtbot.waitUntil(lambda: dialog.series_table.rowCount() == 2, timeout=30_000)
        assert window.settings.value(MOVE_PORT_SETTING) in (port, str(port))

        dialog.series_table.selectRow(0)  # the CT only
        assert dialog.retrieve_button.text() == "Retrieve 1 series"
        dialog.ask_open = lambda folder, result: pytest.fail("a cancelled retrieve offered to open")
        dialog.retrieve_button.click()
        assert dialog.cancel_button.isEnabled() and not dialog.retrieve_button.isEnabled()
        qtbot.waitUntil(lambda: dialog.progress.value() > 50, timeout=30_000)
        dialog.grab().save(str(SCREENSHOTS / "pacs_dialog_retrieving.png"))
        dialog.cancel_button.click()
        qtbot.waitUntil(lambda: dialog.status.text().startswith("Cancelled"), timeout=10_000)
        assert pacs.cancelled and len(pacs.sent) < 60 and dialog.retrieve_button.isEnabled()

        pacs.delay_s = 0
        opened = []
        dialog.ask_open = lambda folder, result: opened.append(result) and False
        dialog.retrieve_button.click()
        qtbot.waitUntil(lambda: bool(opened), timeout=60_000)
        ct = pacs.instances_of(LUNG_STUDY, dialog.series[0].series_uid)
        assert sorted(p.stem for p in opened[0].received) == ct
        assert window.case is None  # not opened when the user says no


def test_an_incomplete_retrieve_says_so_before_opening(window, qtbot, monkeypatch):
    """A study with instances the PACS could not send was offered to open like a whole one (no
    word in the question), and a PACS's study UID was taken as a folder name as it came
    ('../..' put the instances outside the data folder)."""
    from PyQt6.QtWidgets import QMessageBox

    from planning.dicom.query import StudyMatch

    dialog = window.open_pacs()
    study = StudyMatch("../../1.2", "", "", "", "", "", "", "", (), None, None)
    assert dialog.folder_for(study) == window.data_dir / "pacs" / "_.._1.2"
    served = TestPacs(_folders()).instances_of(LUNG_STUDY)
    with TestPacs(_folders(), unsendable={served[0]}) as pacs:
        node = pacs.node
        dialog.node_edit.setText(str(node))
        dialog.patient_id_edit.setText("1")
        dialog.search_button.click()
        qtbot.waitUntil(lambda: dialog.series_table.rowCount() == 2, timeout=30_000)
        asked = []
        monkeypatch.setattr(
            QMessageBox,
            "question",
            lambda parent, title, text, *a: asked.append(text) or QMessageBox.StandardButton.No,
        )
        dialog.retrieve_button.click()
        qtbot.waitUntil(lambda: bool(asked), timeout=60_000)
    assert f"Incomplete: 1 instance(s) failed at {node}" in asked[0]
    assert "Retrieve the whole study again to complete it" in asked[0]
    assert f"Incomplete: 1 instance(s) failed at {node}." in dialog.status.text()
    assert window.case is None


def test_selecting_another_study_cancels_the_series_listing_still_running(window, qtbot, monkeypatch):
    """Arrowing through the studies started a series C-FIND per study without cancelling the one
    before: each kept its association open until the PACS answered, and a late answer was ignored."""
    import threading

    from planning.dicom.query import SeriesMatch, StudyMatch
    from planning.errors import Cancelled
    from workstation.app import pacs_dialog

    listings: list[tuple[str, threading.Event]] = []
    answer = threading.Event()

    def find_series(node, study_uid, calling_ae, timeout_s, cancel):
        listings.append((study_uid, cancel))
        while not answer.is_set():  # a PACS slow to answer
            if cancel.wait(0.01):
                raise Cancelled("series listing")
        return [SeriesMatch(study_uid, f"{study_uid}.1", "CT", "", 1, 3)]

    monkeypatch.setattr(pacs_dialog, "find_series", find_series)
    dialog = window.open_pacs()
    dialog.node_edit.setText("PACS@127.0.0.1:11112")
    studies = [StudyMatch(f"1.2.{i}", f"P{i}", str(i), "", "", "", "", "", ("CT",), 1, 3) for i in range(3)]
    dialog._show_studies(studies)
    for row in range(3):
        dialog.study_table.selectRow(row)
        qtbot.waitUntil(lambda row=row: len(listings) == row + 1, timeout=10_000)
    assert [uid for uid, _ in listings] == ["1.2.0", "1.2.1", "1.2.2"]
    assert [cancel.is_set() for _, cancel in listings] == [True, True, False]
    answer.set()
    qtbot.waitUntil(lambda: dialog.series_table.rowCount() == 1, timeout=10_000)
    assert dialog.series[0].study_uid == "1.2.2"
    assert dialog.series_job is None
    wait_idle(qtbot, window)
    assert "error" not in dialog.status.text().lower()
