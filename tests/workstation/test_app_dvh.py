"""The DVH panel: the numbers of `delineo dvh`, computed in a worker, redone after an edit."""

import csv

import numpy as np
import pytest
from support.app import show_sample, wait_idle

from planning.dose import Dose
from planning.dvh import compute_dvh
from planning.geometry import Grid

pytestmark = pytest.mark.gui


def test_dvhs_of_the_case_on_its_dose_and_after_an_edit(window, qtbot, tmp_path):
    case = show_sample(window)
    panel = window.dvh_panel
    window.dvh_dock.show()
    assert not panel.compute_button.isEnabled() and "Load a dose" in panel.status.text()
    grid = case.grid  # a dose twice as coarse, rising linearly from 0 to 60 Gy right to left
    dose_grid = Grid((20, 64, 64), tuple(2 * s for s in grid.spacing_xyz), grid.origin_xyz, grid.direction)
    ramp = np.broadcast_to(np.linspace(0, 60, 64, dtype=np.float32), dose_grid.shape).copy()
    dose = Dose(ramp, dose_grid, frame_of_reference_uid=case.volume.frame_of_reference_uid)
    dose.warnings.append("RD.dcm: the dose of one fraction (DoseSummationType FRACTION)")
    window.set_dose(dose)
    qtbot.waitUntil(lambda: bool(panel.dvhs), timeout=60_000)
    wait_idle(qtbot, window)
    shown = panel.values()
    assert set(shown) == {s.name for s in case.structures if not s.mask.is_empty}
    for name in ("Lung_R", "Heart", "GTV"):
        expected = compute_dvh(dose, case.structures[name]).statistics(percents=(95, 50, 2))
        assert shown[name] == pytest.approx(expected)
    assert shown["Lung_R"]["Dmean"] < 30 < shown["Lung_L"]["Dmean"]  # the dose rises to the left
    assert panel.table.rowCount() == len(shown) and panel.table.item(0, 0).text() == panel.dvhs[0].name
    assert panel.table.horizontalHeaderItem(2).text() == "Dmean (Gy)"

    panel.compute()
    panel.compute()  # the first is cancelled; only the second's curves are shown
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=60_000)
    again = panel.values()
    assert set(again) == set(shown) and all(again[n] == pytest.approx(shown[n]) for n in shown)
    assert "DVHs not computed" not in panel.status.text()

    assert panel.save_csv(tmp_path / "dvh.csv")
    rows = list(csv.DictReader(open(tmp_path / "dvh.csv", encoding="utf-8")))
    assert [r["structure"] for r in rows] == [d.name for d in panel.dvhs]
    assert float(rows[0]["Dmean_Gy"]) == pytest.approx(panel.dvhs[0].mean, abs=1e-4)
    assert all(r["warnings"].startswith("RD.dcm: the dose of one fraction") for r in rows)
    assert not panel.save_csv(tmp_path / "missing" / "dvh.csv") and "Not saved" in panel.status.text()

    window.table.select("GTV")
    window.delete_structure()
    assert "Structures edited" in panel.status.text()
    qtbot.waitUntil(lambda: "GTV" not in panel.values(), timeout=60_000)
    wait_idle(qtbot, window)


def test_the_panel_warns_when_the_loaded_images_cut_the_structures(window, qtbot):
    """Structures read onto a part of their series (contours beyond it left out at import, or no
    voxel at all on it) give DVHs of a part, or none: the panel says so, not only the status bar
    for 15 seconds."""
    from planning.structures import Mask

    case = show_sample(window)
    case.structures.warnings = [
        "RS.dcm: 40 contour(s) of BODY lie on no image plane; those contours were left out"
    ]
    case.new_structure("Beyond", mask=Mask(case.grid))
    grid = case.grid
    dose = Dose(
        np.full(grid.shape, 2.0, np.float32), grid, frame_of_reference_uid=case.volume.frame_of_reference_uid
    )
    window.dvh_dock.show()
    window.set_dose(dose)
    qtbot.waitUntil(lambda: bool(window.dvh_panel.dvhs), timeout=60_000)
    wait_idle(qtbot, window)
    status = window.dvh_panel.status.text()
    assert "contours beyond the loaded images were left out at import" in status
    assert "no DVH for Beyond (no voxel on these images)" in status
