"""File ▸ Retrieve from PACS… in the real window against a real PACS product, Orthanc (Debian's
package): a name typed the everyday way, the timeout setting, a C-MOVE retrieve opened as the
original images and structures."""

import numpy as np
import pytest
from support.app import wait_idle
from support.orthanc import HUMAN_STUDY, Orthanc, load, prepare_case
from support.pacs import free_port

from workstation.app.pacs_dialog import TIMEOUT_SETTING

pytestmark = pytest.mark.gui


def test_search_by_everyday_name_and_retrieve_by_c_move(window, qtbot, tmp_path):
    case = prepare_case(tmp_path / "case")
    with Orthanc(tmp_path / "orthanc") as pacs:
        load(pacs, case)
        dialog = window.open_pacs()
        assert dialog.timeout_spin.value() == 30  # the default
        dialog.timeout_spin.setValue(7)
        dialog.node_edit.setText(f"{pacs.ae_title}@127.0.0.1:{free_port()}")  # nobody listens there
        dialog.search_button.click()
        qtbot.waitUntil(lambda: "cannot be reached" in dialog.status.text(), timeout=30_000)
        assert "no answer within 7 s" in dialog.status.text()
        assert window.settings.value(TIMEOUT_SETTING) in (7, "7")

        dialog.node_edit.setText(str(pacs.node))
        dialog.name_edit.setText("øster, åse")
        dialog.search_button.click()
        qtbot.waitUntil(lambda: dialog.study_table.rowCount() == 1, timeout=30_000)
        assert "(patient name searched as øster^åse* or ØSTER^ÅSE* or Øster^Åse*)" in dialog.status.text()
        assert dialog.study_table.item(0, 1).text() == "Øster, Åse"

        dialog.name_edit.setText("")
        dialog.modality_box.setCurrentText("RTSTRUCT")
        dialog.search_button.click()
        qtbot.waitUntil(lambda: dialog.studies and dialog.studies[0].study_uid == HUMAN_STUDY, timeout=30_000)
        qtbot.waitUntil(lambda: dialog.series_table.rowCount() == 2, timeout=30_000)
        dialog.method_box.setCurrentIndex(1)  # C-MOVE to this computer, where Orthanc knows DELINEO
        dialog.port_spin.setValue(pacs.move_port)
        asked = []
        dialog.ask_open = lambda folder, result: asked.append(len(result.received)) or True
        dialog.retrieve_button.click()
        qtbot.waitUntil(lambda: bool(asked), timeout=60_000)
        assert asked == [5]
        wait_idle(qtbot, window)
    np.testing.assert_array_equal(window.case.volume.array, case["volume"].array)
    assert sorted(s.name for s in window.case.structures) == sorted(s.name for s in case["structures"])
