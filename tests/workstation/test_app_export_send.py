"""The export dialog sends the checked RTSTRUCT to a DICOM node, and says when it cannot."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pynetdicom import evt
from support.app import wait_idle
from support.dicom_factory import ct_phantom, write_ct_series

from planning.dicom.network import Receiver
from planning.structures import Mask
from workstation.app.export_dialog import NODE_SETTING
from workstation.app.pacs_dialog import AE_SETTING

pytestmark = pytest.mark.gui


@pytest.fixture
def checked_export(window, qtbot, tmp_path):
    write_ct_series(tmp_path / "ct", ct_phantom((6, 32, 36)))
    window.opening.open_path(tmp_path / "ct")
    wait_idle(qtbot, window)
    z, y, x = np.indices(window.case.grid.shape)
    window.case.new_structure(
        "GTV", mask=Mask.from_full(window.case.grid, (y - 16) ** 2 + (x - 18) ** 2 < 40)
    )
    export = window.export_rtstruct()
    qtbot.waitUntil(lambda: export.send_button.isEnabled(), timeout=60_000)
    return export


def _report(export) -> list[str]:
    return [export.report.item(i).text() for i in range(export.report.count())]


def test_the_checked_file_is_sent_and_the_node_remembered(window, qtbot, tmp_path, checked_export):
    export = checked_export
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with Receiver(inbox, port=0, ae_title="TPS") as receiver:
        node = f"TPS@127.0.0.1:{receiver.port}"
        export.node_edit.setText(node)
        export.send_button.click()
        qtbot.waitUntil(lambda: any("Sent to TPS@" in line for line in _report(export)), timeout=30_000)
    [received] = receiver.received
    assert pydicom.dcmread(received) == pydicom.dcmread(export._checked_file)  # the data set, not the meta
    assert window.settings.value(NODE_SETTING) == node


def test_a_bad_node_or_an_unwritable_path_is_reported_not_fatal(window, qtbot, tmp_path, checked_export):
    export = checked_export
    export.node_edit.setText("TPS at 10.0.0.5")
    export.send_button.click()
    assert "not a DICOM node" in _report(export)[-1]
    (tmp_path / "a_file").write_text("")
    export.path_edit.setText(str(tmp_path / "a_file" / "RS.dcm"))  # a folder that cannot be made
    export.write_button.click()
    assert _report(export)[-1].startswith("ERROR: not written:") and export.isVisible()


def test_a_check_started_before_the_last_one_ended_writes_its_own_file(checked_export, qtbot):
    """Two checks in a row (opening the dialog checks, then the user changes an option): each
    writes and checks its own file. Numbered by the files already there, a second check could
    write the file the first was still reading."""
    export = checked_export
    export.run_check()
    export.run_check()
    qtbot.waitUntil(lambda: export.check_button.isEnabled() and not export.window_.jobs.busy, timeout=60_000)
    name = Path(export.path_edit.text()).name
    written = sorted(str(p.relative_to(export._temp)) for p in export._temp.glob("*/*"))
    assert written == [f"1/{name}", f"2/{name}", f"3/{name}"]
    assert export.write_button.isEnabled() and not [f for f in export.findings if f[0] == "error"]


def test_findings_wrap_and_name_the_exported_file(window, qtbot, tmp_path):
    """The writer's warnings in the Messages panel named the check's temporary file ('check-1.dcm:
    ...'), not the export's; its notes (holes filled) did not reach the panel; long findings ran
    off the dialog's edge (a horizontal scroll)."""
    write_ct_series(tmp_path / "ct", ct_phantom((6, 32, 36)))
    window.opening.open_path(tmp_path / "ct")
    wait_idle(qtbot, window)
    speck = np.zeros(window.case.grid.shape, bool)
    speck[2, 3, 3] = True  # one voxel on its own: a speck under 1 mm², dropped with a warning
    window.case.new_structure("Speck", mask=Mask.from_full(window.case.grid, speck))
    capped = np.zeros(window.case.grid.shape, bool)
    capped[1:4, 10:20, 10:20] = True
    capped[4, 15, 15] = True  # one voxel on the box: its end slice, kept without a word
    capped[2, 12, 12] = False  # a one-voxel hole: filled, said in a note, not a warning
    window.case.new_structure("Capped", mask=Mask.from_full(window.case.grid, capped))
    export = window.export_rtstruct()
    qtbot.waitUntil(lambda: export.check_button.isEnabled() and bool(export.findings), timeout=60_000)
    name = Path(export.path_edit.text()).name
    assert any(m.startswith(f"{name}: Speck: 1 island(s) dropped") for m in window.messages.messages())
    assert not any("check" in m for m in window.messages.messages())
    note = (
        "holes under 1 mm² filled in 1 structure(s) (Capped); a hole that small changes no structure's extent"
    )
    assert ("note", note) in export.findings
    # kept in the Messages panel once the dialog is closed, as information: not counted in the badge
    assert f"{name}: {note}" in window.messages.messages()
    assert window.messages.button.text() == f"⚠ {window.messages.count() - 1}"

    export._add_finding("note", "a finding far longer than the dialog is wide, " * 6)
    qtbot.wait(50)
    report = export.report
    line = report.fontMetrics().height()
    assert report.horizontalScrollBar().maximum() == 0
    assert report.visualItemRect(report.item(report.count() - 1)).height() > 2 * line


def test_a_second_export_does_not_replace_the_first_unasked(window, qtbot, checked_export):
    """Two exports in the same minute had the same default name: the second replaced the first
    without a word, as did writing to a file the user had typed in."""
    checked_export.write_button.click()
    first = Path(checked_export.path_edit.text())
    kept = pydicom.dcmread(first).SOPInstanceUID
    second = window.export_rtstruct()
    qtbot.waitUntil(second.write_button.isEnabled, timeout=60_000)
    assert not Path(second.path_edit.text()).exists()  # a name of its own
    asked = []
    second.ask_replace = lambda path: asked.append(path) or False
    second.path_edit.setText(str(first))  # the user types the first one's name
    second.write_button.click()
    assert asked == [first] and second.isVisible()
    assert _report(second)[-1].startswith("NOTE: not written")
    assert pydicom.dcmread(first).SOPInstanceUID == kept
    second.ask_replace = lambda path: True
    second.write_button.click()
    assert not second.isVisible() and pydicom.dcmread(first).SOPInstanceUID != kept


def test_the_rtstruct_is_sent_as_the_ae_title_set_for_this_computer(window, qtbot, checked_export):
    """The AE title set in File ▸ Retrieve from PACS… (the one the hospital's nodes know this
    computer by) was ignored by Send, which always called as DELINEO: a planning system that
    accepts known callers only rejected every RTSTRUCT."""
    from pynetdicom import AE

    stored = []
    tps = AE(ae_title="TPS")
    tps.require_calling_aet = ["CT_SIM_WS1"]
    tps.add_supported_context("1.2.840.10008.5.1.4.1.1.481.3")
    handler = (evt.EVT_C_STORE, lambda event: stored.append(event.dataset.SOPInstanceUID) or 0x0000)
    server = tps.start_server(("127.0.0.1", 0), block=False, evt_handlers=[handler])
    try:
        window.settings.setValue(AE_SETTING, "CT_SIM_WS1")
        checked_export.node_edit.setText(f"TPS@127.0.0.1:{server.server_address[1]}")
        checked_export.send_button.click()
        qtbot.waitUntil(
            lambda: any("Sent to TPS@" in line for line in _report(checked_export)), timeout=30_000
        )
    finally:
        server.shutdown()
    assert stored == [pydicom.dcmread(checked_export._checked_file).SOPInstanceUID]
